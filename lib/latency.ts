/**
 * The consumer's latency histogram: producer commit → consumer read, in ns,
 * for segments created with `timestamps: true` (lib/timestamps.ts stamps and
 * strips). Log-linear buckets, HDR style: values below 32 ns have a bucket
 * each; above, every power of two is cut into 16 buckets, so a bucket is at
 * most 1/16 (6.25%) of its values wide. 720 buckets reach 2^48 ns (78 hours);
 * larger values land in the last one. min, max, count and sum are exact.
 *
 *   region after the ring (docs/LAYOUT.md §16), little-endian u64 each:
 *
 *     +0     count          latencies recorded
 *     +8     sum            their sum, ns (mean = sum / count)
 *     +16    min            smallest, ns (0 when count is 0)
 *     +24    max            largest, ns
 *     +32    bucket count   LATENCY_BUCKETS (720): a reader checks it
 *     +40    reserved       0
 *     +64    buckets        720 counts; bucket b covers [lowOf(b), lowOf(b + 1))
 *
 * Only the consumer writes it, from its own counts in plain fields, at the
 * same moments it stores its counters (lib/counters.ts: every 100 ms when they
 * changed, on stats() and on close). Each value is a whole 64-bit store; a
 * reader (`shmq stat`, pread) sees each value old or new, so a snapshot may mix
 * two flushes: percentiles from it are off by at most what one flush added.
 */
import * as L from './layout'

const LINEAR = 32
const SUB_BUCKETS = 16
const SUB_BITS = 4
const FIRST_OCTAVE = 5
const LAST_BUCKET = L.LATENCY_BUCKETS - 1
const TWO_32 = 4294967296

export const COUNT_OFFSET = 0
export const SUM_OFFSET = 8
export const MIN_OFFSET = 16
export const MAX_OFFSET = 24
export const BUCKET_COUNT_OFFSET = 32
export const BUCKETS_OFFSET = 64

/** The bucket of `ns` (>= 0). */
export function bucketOf(ns: number): number {
  if (ns < LINEAR) return ns < 0 ? 0 : Math.floor(ns)
  let octave: number
  let sub: number
  if (ns < 2147483648) {
    const value = ns | 0
    octave = 31 - Math.clz32(value)
    sub = (value >>> (octave - SUB_BITS)) & (SUB_BUCKETS - 1)
  } else {
    octave = Math.floor(Math.log2(ns))
    // log2 rounds near powers of two: keep 2^octave <= ns < 2^(octave + 1)
    if (2 ** octave > ns) octave--
    else if (2 ** (octave + 1) <= ns) octave++
    sub = Math.floor(ns / 2 ** (octave - SUB_BITS)) - SUB_BUCKETS
  }
  const bucket = LINEAR + (octave - FIRST_OCTAVE) * SUB_BUCKETS + sub
  return bucket > LAST_BUCKET ? LAST_BUCKET : bucket
}

/** The smallest value of bucket `bucket`. */
export function lowOf(bucket: number): number {
  if (bucket < LINEAR) return bucket
  const octave = FIRST_OCTAVE + ((bucket - LINEAR) >> SUB_BITS)
  const sub = (bucket - LINEAR) & (SUB_BUCKETS - 1)
  return (SUB_BUCKETS + sub) * 2 ** (octave - SUB_BITS)
}

/** Latency percentiles, in ns. */
export interface LatencyStats {
  /** Latencies recorded (one per message read). */
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

/**
 * Percentiles from `buckets`: each is the highest value its bucket holds
 * (bounded by the exact max), so it is never below the true percentile and
 * at most 6.25% above it.
 */
export function percentiles(buckets: ArrayLike<number>, count: number, sum: number, min: number, max: number): LatencyStats {
  const at = (quantile: number): number => {
    if (count === 0) return 0
    const rank = Math.max(1, Math.ceil(quantile * count))
    let seen = 0
    for (let bucket = 0; bucket < buckets.length; bucket++) {
      seen += buckets[bucket]!
      if (seen >= rank) return Math.max(min, Math.min(max, bucket === LAST_BUCKET ? max : lowOf(bucket + 1) - 1))
    }
    return max
  }
  return { count, min, mean: count === 0 ? 0 : sum / count, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max }
}

/** The histogram a consumer records into, in plain fields, and stores into the segment's region. */
export class LatencyRecorder {
  private readonly buckets = new Float64Array(L.LATENCY_BUCKETS)
  count: number
  private sum: number
  private min: number
  private max: number
  private flushedCount: number
  /** The region's 64-bit words. */
  private readonly words64: BigInt64Array

  /** `offset`: the region's byte offset in `buffer` (after the ring). Counts go on from what a previous consumer left. */
  constructor(buffer: ArrayBufferLike, offset: number) {
    this.words64 = new BigInt64Array(buffer, offset, L.LATENCY_REGION_BYTES >> 3)
    const load = (at: number): number => Number(BigInt.asUintN(64, Atomics.load(this.words64, at >> 3)))
    // a region a hostile peer filled with nonsense only skews the numbers: read as it is, bounded
    if (load(BUCKET_COUNT_OFFSET) === L.LATENCY_BUCKETS) {
      for (let bucket = 0; bucket < L.LATENCY_BUCKETS; bucket++) this.buckets[bucket] = load(BUCKETS_OFFSET + bucket * 8)
      this.count = load(COUNT_OFFSET)
      this.sum = load(SUM_OFFSET)
      this.min = this.count === 0 ? Infinity : load(MIN_OFFSET)
      this.max = load(MAX_OFFSET)
    } else {
      this.count = 0
      this.sum = 0
      this.min = Infinity
      this.max = 0
    }
    this.flushedCount = -1
  }

  /** One message read `ns` after its commit. */
  record(ns: number): void {
    this.buckets[bucketOf(ns)]!++
    this.count++
    this.sum += ns
    if (ns > this.max) this.max = ns
    if (ns < this.min) this.min = ns
  }

  get dirty(): boolean {
    return this.count !== this.flushedCount
  }

  private store(at: number, value: number): void {
    // SYNC POINT (latency): a whole 64-bit store; a reader sees the old or the new value
    Atomics.store(this.words64, at >> 3, BigInt(Math.round(value < TWO_32 * TWO_32 ? value : TWO_32 * TWO_32 - 1)))
  }

  /** Stores the histogram into the segment's region. */
  flush(): void {
    this.flushedCount = this.count
    this.store(BUCKET_COUNT_OFFSET, L.LATENCY_BUCKETS)
    for (let bucket = 0; bucket < L.LATENCY_BUCKETS; bucket++) {
      const value = this.buckets[bucket]!
      if (value !== 0) this.store(BUCKETS_OFFSET + bucket * 8, value)
    }
    this.store(SUM_OFFSET, this.sum)
    this.store(MIN_OFFSET, this.count === 0 ? 0 : this.min)
    this.store(MAX_OFFSET, this.max)
    this.store(COUNT_OFFSET, this.count)
  }

  stats(): LatencyStats {
    return percentiles(this.buckets, this.count, this.sum, this.count === 0 ? 0 : this.min, this.max)
  }
}

/**
 * Percentiles from a copy of the region (read with pread by `shmq stat`), or
 * null when it does not hold this version's histogram. Counts are untrusted:
 * nonsense gives nonsense numbers, never a throw.
 */
export function readLatency(region: DataView): LatencyStats | null {
  if (region.byteLength < L.LATENCY_REGION_BYTES) return null
  const load = (at: number): number => Number(region.getBigUint64(at, true))
  if (load(BUCKET_COUNT_OFFSET) !== L.LATENCY_BUCKETS) return null
  const buckets = new Float64Array(L.LATENCY_BUCKETS)
  for (let bucket = 0; bucket < L.LATENCY_BUCKETS; bucket++) buckets[bucket] = load(BUCKETS_OFFSET + bucket * 8)
  return percentiles(buckets, load(COUNT_OFFSET), load(SUM_OFFSET), load(MIN_OFFSET), load(MAX_OFFSET))
}
