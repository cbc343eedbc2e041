/**
 * Per-message commit stamps (segments created with `timestamps: true`,
 * L.INCOMPATIBLE_TIMESTAMPS): the writer puts the time of its commit in the
 * first 8 bytes of each payload, the reader takes them off, records
 * now − stamp in the consumer's latency histogram (lib/latency.ts) and hands
 * its user the rest. Both are decorators over a ring's halves, so the rings
 * themselves (lib/spsc.ts, lib/mpsc.ts) and segments without stamps are unchanged.
 *
 *   payload as the ring carries it:  | stamp u64 LE (8) | the user's message ... |
 *
 * The stamp is CLOCK_MONOTONIC in ns, one clock for every process of the host
 * (a C peer writes clock_gettime(CLOCK_MONOTONIC)). Node reads it through
 * performance.now() (about 50 ns, no allocation, where process.hrtime.bigint()
 * costs about 70 ns and a BigInt) plus an offset measured once per process
 * against process.hrtime.bigint(): measured on the development host, that
 * conversion agrees with the kernel's clock to within 0.1-0.3 µs, so
 * latencies below about 1 µs are at the clock's resolution.
 */
import { performance } from 'node:perf_hooks'
import { ShmqError } from './errors'
import { corrupt } from './frames'
import * as L from './layout'
import type { LatencyRecorder } from './latency'
import type { RingMemory } from './memory'
import type { RawHandler, RingReader, RingWriter } from './ring'

const STAMP_BYTES = L.STAMP_BYTES
const TWO_32 = 4294967296

let clockOffsetMs: number | null = null

/** CLOCK_MONOTONIC ns at performance.now() = 0 in this process, in ms: the pair read closest together wins. */
function measureClockOffset(): number {
  let best = Infinity
  let offset = 0
  for (let attempt = 0; attempt < 200; attempt++) {
    const before = performance.now()
    const kernel = Number(process.hrtime.bigint()) / 1e6
    const after = performance.now()
    if (after - before < best) {
      best = after - before
      offset = kernel - (before + after) / 2
    }
  }
  return offset
}

/** CLOCK_MONOTONIC now, in ns (a double: exact to the ns for 104 days of uptime, to 2-4 ns beyond). */
export function monotonicNs(): number {
  clockOffsetMs ??= measureClockOffset()
  return Math.round((clockOffsetMs + performance.now()) * 1e6)
}

function tooLarge(memory: RingMemory, length: number, maxMessage: number): ShmqError {
  return new ShmqError(
    'ERR_SHMQ_TOO_LARGE',
    `message of ${length} bytes exceeds the maximum of ${maxMessage} for segment '${memory.name}' (its capacity / 2 - 16: each message carries an 8-byte timestamp): split it, or create the segment with a larger capacity`,
    { segment: memory.name },
  )
}

/** The writing half of a stamped segment: claims 8 bytes more and stamps at commit. */
export class StampedWriter implements RingWriter {
  private readonly inner: RingWriter
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly bytes: Uint8Array
  readonly maxMessage: number
  /** Where the stamp of the open claim goes (a byte offset in the segment), or -1. */
  private stampAt = -1

  constructor(inner: RingWriter, memory: RingMemory) {
    this.inner = inner
    this.memory = memory
    this.words = memory.words
    this.bytes = memory.bytes
    this.maxMessage = inner.maxMessage - STAMP_BYTES
  }

  get counts() {
    return this.inner.counts
  }

  get hasClaim(): boolean {
    return this.inner.hasClaim
  }

  get claimLength(): number {
    return this.inner.claimLength - STAMP_BYTES
  }

  get fill(): number {
    return this.inner.fill
  }

  get blockingSlot(): number | undefined {
    return this.inner.blockingSlot
  }

  checkLength(length: number): void {
    if (length > this.maxMessage) throw tooLarge(this.memory, length, this.maxMessage)
  }

  tryWrite(message: Uint8Array, length: number, type = 0): boolean {
    const offset = this.tryClaimRaw(length)
    if (offset === -1) return false
    this.bytes.set(message, offset)
    this.commit(length, type)
    return true
  }

  hasRoomFor(length: number, slack?: number): boolean {
    return this.inner.hasRoomFor(length + STAMP_BYTES, slack)
  }

  tryClaim(length: number): Uint8Array | null {
    const offset = this.tryClaimRaw(length)
    return offset === -1 ? null : new Uint8Array(this.memory.buffer, offset, length)
  }

  tryClaimRaw(length: number): number {
    this.checkLength(length)
    const offset = this.inner.tryClaimRaw(length + STAMP_BYTES)
    if (offset === -1) return -1
    this.stampAt = offset
    return offset + STAMP_BYTES
  }

  commit(length: number = this.claimLength, type = 0): void {
    const at = this.stampAt >> 2
    this.stampAt = -1
    const ns = monotonicNs()
    const high = Math.floor(ns / TWO_32)
    // plain stores: the commit's publish below makes them visible with the payload
    this.words[at] = (ns - high * TWO_32) | 0
    this.words[at + 1] = high | 0
    // the ring counts the stamp as payload; the counters count the user's bytes
    this.inner.counts.bytes -= STAMP_BYTES
    try {
      this.inner.commit(length + STAMP_BYTES, type)
    } catch (error) {
      this.inner.counts.bytes += STAMP_BYTES
      throw error
    }
  }

  abort(): void {
    this.stampAt = -1
    this.inner.abort()
  }

  unblock(): boolean {
    return this.inner.unblock?.() ?? false
  }
}

/** The reading half of a stamped segment: records each message's latency and hands out the payload after its stamp. */
export class StampedReader implements RingReader {
  private readonly inner: RingReader
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly latency: LatencyRecorder
  /** The user's handler during a drain. */
  private handler: RawHandler | null = null

  constructor(inner: RingReader, memory: RingMemory, latency: LatencyRecorder) {
    this.inner = inner
    this.memory = memory
    this.words = memory.words
    this.latency = latency
  }

  get counts() {
    return this.inner.counts
  }

  get lastType(): number {
    return this.inner.lastType
  }

  get isReady(): () => boolean {
    return this.inner.isReady
  }

  get ended(): boolean {
    return this.inner.ended
  }

  get fill(): number {
    return this.inner.fill
  }

  /** Records the latency of the message whose ring payload starts at `offset` (`length` bytes, stamp included). */
  private take(offset: number, length: number): void {
    if (length < STAMP_BYTES) {
      // counted as a corrupt ring by the Consumer that sees the throw
      throw corrupt(this.memory, `a message of ${length} bytes in a segment whose messages start with an 8-byte timestamp`)
    }
    const at = offset >> 2
    const stamp = (this.words[at + 1]! >>> 0) * TWO_32 + (this.words[at]! >>> 0)
    // a stamp from a peer's clock conversion may lie a fraction of a µs ahead of ours; a forged one anywhere
    const latency = monotonicNs() - stamp
    this.latency.record(latency > 0 ? latency : 0)
    this.inner.counts.bytes -= STAMP_BYTES
  }

  tryRead(): Uint8Array | null {
    const view = this.inner.tryRead()
    if (view === null) return null
    this.take(view.byteOffset, view.length)
    return new Uint8Array(view.buffer, view.byteOffset + STAMP_BYTES, view.length - STAMP_BYTES)
  }

  release(): void {
    this.inner.release()
  }

  private readonly strip: RawHandler = (bytes, offset, length, type) => {
    this.take(offset, length)
    this.handler!(bytes, offset + STAMP_BYTES, length - STAMP_BYTES, type)
  }

  drainRaw(handler: RawHandler, limit: number, hold?: boolean): number {
    this.handler = handler
    try {
      return this.inner.drainRaw(this.strip, limit, hold)
    } finally {
      this.handler = null
    }
  }

  drain(handler: (message: Uint8Array) => void, limit: number, hold?: boolean): number {
    const buffer = this.memory.buffer
    return this.drainRaw((_bytes, offset, length) => handler(new Uint8Array(buffer, offset, length)), limit, hold)
  }

  stop(): void {
    this.inner.stop()
  }
}
