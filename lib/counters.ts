/**
 * Counters in the segment: each participant slot's second cache line holds
 * eight 64-bit counters that only the slot's holder writes, so that any
 * process with read access sees what passed without attaching (`shmq stat`,
 * `stats()`), and no counter line is shared between two writers.
 *
 *   slot line 2 (slot offset + 64), little-endian u64 each:
 *
 *     index  writing side (producer,           reading side (consumer,
 *            publisher)                        subscriber)
 *     0      messages written                  messages read
 *     1      payload bytes written             payload bytes read
 *     2      times a write found no room       messages lost (MPSC: dead or
 *                                              revoked claims; broadcast: lapped)
 *     3      parks                             parks
 *     4      wake-ups sent (syscalls)          wake-ups sent (syscalls)
 *     5      padding frames written            redelivered messages (work queues)
 *     6      (0)                               corrupt rings refused (a drain or read threw ERR_SHMQ_CORRUPT)
 *     7      (0)                               messages refused by format checks (drainMessages)
 *
 * Which side a slot is: slot 0 reads, the others write, except on a broadcast
 * ring, whose slot 0 (the publisher) writes and the others read.
 *
 * Cost: the hot paths count in plain fields of their ring object (an
 * increment and an add per message, no atomic read-modify-write, no store to
 * shared memory) and store them into the segment every FLUSH_EVERY messages,
 * when they park, every FLUSH_MS when they changed, and when asked (stats(),
 * close). So a reader sees counts at most FLUSH_EVERY messages or FLUSH_MS
 * behind. Each counter is stored whole (a 64-bit atomic store), and counts
 * on from what the slot's previous holder left.
 */
import * as L from './layout'
import type { RingMemory } from './memory'

export const MESSAGES = 0
export const BYTES = 1
export const FULL = 2
export const LOST = 2
export const PARKS = 3
export const WAKEUPS = 4
export const PADDING = 5
export const REDELIVERED = 5
export const CORRUPT = 6
export const FORMAT_ERRORS = 7
export const COUNTER_COUNT = 8

/** Messages a ring side handles between two stores of its counters. */
export const FLUSH_EVERY = 1024

/** Whether slot `slot` of a ring of `kind` is a writing side. */
export function writesSlot(kind: number, slot: number): boolean {
  return kind === L.KIND_BROADCAST ? slot === L.PUBLISHER_SLOT : slot !== L.CONSUMER_SLOT
}

/** One slot's counters line: stores by its holder, loads by anyone. */
export class CounterLine {
  private readonly words64: BigInt64Array
  private readonly base: number

  constructor(memory: RingMemory, slot: number) {
    this.words64 = memory.header64
    this.base = memory.layout.slots[slot]!.counters >> 3
  }

  load(index: number): number {
    return Number(BigInt.asUintN(64, Atomics.load(this.words64, this.base + index)))
  }

  /** SYNC POINT (counters): a whole 64-bit store; readers in other processes see the old or the new value. */
  store(index: number, value: number): void {
    Atomics.store(this.words64, this.base + index, BigInt(value))
  }

  /** Adds one to counter `index` at once (parks and wake-ups: paths that make a syscall anyway). */
  bump(index: number): void {
    this.store(index, this.load(index) + 1)
  }
}

/** Reads the eight counters of slot `slot` from a header (a mapped segment's, or a copy read with pread). */
export function readCounters(header: DataView, layout: L.RingLayout, slot: number): number[] {
  const at = layout.slots[slot]!.counters
  const values: number[] = []
  for (let index = 0; index < COUNTER_COUNT; index++) values.push(Number(header.getBigUint64(at + 8 * index, true)))
  return values
}

/**
 * What one ring side counts on its hot path, in plain fields, and stores into
 * its slot's counters line every FLUSH_EVERY messages and on flush().
 */
export class SideCounts {
  messages: number
  bytes: number
  /** Writers: times a write found no room; readers: messages lost. */
  missed: number
  /** Writers: padding frames; readers: redelivered messages. */
  extra: number
  /** Readers: corrupt rings refused. */
  corrupt: number
  /** Readers: messages refused by format checks (drainMessages). */
  formatErrors: number
  private readonly line: CounterLine
  private full = false
  private flushedMessages = -1
  private flushedMissed = -1

  /** Whether something was counted since the last flush. */
  get dirty(): boolean {
    return this.messages !== this.flushedMessages || this.missed !== this.flushedMissed
  }

  constructor(memory: RingMemory, slot: number) {
    this.line = new CounterLine(memory, slot)
    // a slot's counts go on from its previous holder's: they only grow for the life of the segment
    this.messages = this.line.load(MESSAGES)
    this.bytes = this.line.load(BYTES)
    this.missed = this.line.load(FULL)
    this.extra = this.line.load(PADDING)
    this.corrupt = this.line.load(CORRUPT)
    this.formatErrors = this.line.load(FORMAT_ERRORS)
  }

  /** A write found no room: counted once per spell of full ring, until roomFound(). */
  noRoom(): void {
    if (this.full) return
    this.full = true
    this.missed++
  }

  /** A write that looked for room found it: the next full ring is a new spell. */
  roomFound(): void {
    this.full = false
  }

  /** One message of `length` payload bytes passed. */
  count(length: number): void {
    this.bytes += length
    if ((++this.messages & (FLUSH_EVERY - 1)) === 0) this.flush()
  }

  flush(): void {
    this.flushedMessages = this.messages
    this.flushedMissed = this.missed
    this.line.store(MESSAGES, this.messages)
    this.line.store(BYTES, this.bytes)
    this.line.store(FULL, this.missed)
    this.line.store(PADDING, this.extra)
    this.line.store(CORRUPT, this.corrupt)
    this.line.store(FORMAT_ERRORS, this.formatErrors)
  }
}

/** Milliseconds between two stores of the counts of endpoints that went quiet between FLUSH_EVERY messages. */
export const FLUSH_MS = 100

const quiet = new Set<{ flushIdle(): void }>()
let flushTimer: NodeJS.Timeout | null = null

/**
 * Follows an endpoint whose counts are stored every FLUSH_MS while it is open:
 * one that stopped between FLUSH_EVERY messages without parking (a producer
 * done writing) is then exact within FLUSH_MS. One timer for the process,
 * unref'd: it keeps nothing alive.
 */
export function followCounts(endpoint: { flushIdle(): void }): void {
  quiet.add(endpoint)
  if (flushTimer === null) {
    flushTimer = setInterval(() => {
      for (const each of quiet) each.flushIdle()
    }, FLUSH_MS)
    flushTimer.unref()
  }
}

export function unfollowCounts(endpoint: { flushIdle(): void }): void {
  quiet.delete(endpoint)
  if (quiet.size === 0 && flushTimer !== null) {
    clearInterval(flushTimer)
    flushTimer = null
  }
}
