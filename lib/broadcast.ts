/**
 * The broadcast ring protocol (kind 3): one publisher, up to maxSubscribers
 * subscribers that each read every message, over a RingMemory (a mapped
 * segment, or a SharedArrayBuffer in-process). No OS calls, no waiting: the
 * caller injects liveness (`slotAlive`) and wake-ups.
 *
 * Frames are the frames of every kind (lib/frames.ts). The publisher owns the
 * tail (WRITE_POSITION) and the oldest line (lib/layout.ts): before it writes
 * over the previous lap, it walks the frames it is about to overwrite and
 * publishes, under a sequence lock, OLDEST_POSITION (every frame from there on
 * is intact) and OLDEST_SEQUENCE (messages before it). It does so a chunk
 * (capacity / 8) ahead, so the oldest line changes once per chunk, not per
 * message. Each subscriber owns its slot's position and state.
 *
 * Policies:
 * - backpressure: the publisher never moves OLDEST_POSITION past a joined
 *   subscriber's position, so it waits for the slowest; views are zero-copy and
 *   valid until released, as in SPSC. A subscriber that died is dropped
 *   (`unblock`), one that stalls past `subscriberTimeout` is evicted (its state
 *   word says so; it resumes at the oldest intact message and counts the rest
 *   as lost).
 * - lossy: the publisher never waits. A subscriber copies each message into
 *   its own buffer, then checks OLDEST_POSITION: a frame that was overwritten
 *   while it copied is thrown away and counted, never handed out (agrona's
 *   CopyBroadcastReceiver does the same). Views are of the copy.
 *
 * Joining (DEKKER PAIR with the publisher's chunk step): a backpressure
 * subscriber stores its position, marks itself joined, adds one to JOINS, then
 * loads OLDEST_POSITION; the publisher stores OLDEST_POSITION, then loads JOINS
 * and, if it changed, re-reads the positions before it writes anything. Either
 * the subscriber sees the new oldest (and, if it is past its position, starts
 * again there) or the publisher sees the subscriber.
 */
import { SideCounts } from './counters'
import { corrupt, frameBytes, roomNeeded, tooLarge } from './frames'
import * as L from './layout'
import type { RingMemory } from './memory'
import type { RawHandler, RingReader, RingWriter } from './ring'
import { loadPositionHigh, type PublishMode, storeWrappedPosition } from './publish-mode'

const TAIL = L.word(L.WRITE_POSITION_OFFSET)
const END_OF_STREAM = L.word(L.END_OF_STREAM_OFFSET)
const SUBSCRIBERS_WAITING = L.word(L.SUBSCRIBERS_WAITING_OFFSET)
const JOINS = L.word(L.JOINS_OFFSET)
const VERSION = L.word(L.OLDEST_VERSION_OFFSET)
const OLDEST = L.word(L.OLDEST_POSITION_OFFSET)
const OLDEST_SEQUENCE = L.word(L.OLDEST_SEQUENCE_OFFSET)
const CHECKPOINT = L.word(L.CHECKPOINT_POSITION_OFFSET)
const CHECKPOINT_SEQUENCE = L.word(L.CHECKPOINT_SEQUENCE_OFFSET)
const FRAME_HEADER_BYTES = L.FRAME_HEADER_BYTES
const FRAME_MESSAGE = L.FRAME_MESSAGE
const FRAME_PADDING = L.FRAME_PADDING
const MESSAGE_TYPE_WORD = L.frameTypeWord(L.FRAME_MESSAGE, 0, L.PUBLISHER_SLOT)
const PADDING_TYPE_WORD = L.frameTypeWord(L.FRAME_PADDING, 0, L.PUBLISHER_SLOT)
const TWO_32 = 2 ** 32

/** Default time a live backpressure subscriber may hold the publisher back before it is evicted, in ms. */
export const DEFAULT_SUBSCRIBER_TIMEOUT_MS = 5000

/** Tries a joining subscriber makes while the publisher keeps overrunning its start (each one a few loads). */
const MAX_JOIN_TRIES = 1 << 16

function checkBroadcast(memory: RingMemory): void {
  if (memory.layout.kind !== L.KIND_BROADCAST) throw new Error(`ring '${memory.name}' is not laid out as a broadcast ring`)
}

/** A 64-bit position or count as a number of 2^32 units plus a low word: (high, low) exact, compared as unsigned. */
function isBefore(aHigh: number, aLow: number, bHigh: number, bLow: number): boolean {
  return aHigh !== bHigh ? aHigh < bHigh : aLow >>> 0 < bLow >>> 0
}

/** Stores the 64-bit value (high, low) at word index `at` as two words, high first (the sequence lock covers both). */
function storePair(words: Int32Array, at: number, high: number, low: number): void {
  Atomics.store(words, at + 1, high)
  Atomics.store(words, at, low)
}

/** What the oldest line said, read consistently. */
interface OldestLine {
  versionLow: number
  versionHigh: number
  oldestHigh: number
  oldestLow: number
  /** Messages before the oldest position (exact below 2^53). */
  oldestSequence: number
  checkpointHigh: number
  checkpointLow: number
  checkpointSequence: number
}

/** Tries at the sequence lock before a reader starts sleeping between tries (an update is a dozen stores). */
const SEQLOCK_SPINS = 1 << 12
/** How long the version may stay odd before the line is called corrupt, in ms: longer than any update takes, short of a hang. */
const SEQLOCK_PATIENCE_MS = 1000
const nap = new Int32Array(new SharedArrayBuffer(4))

/**
 * Reads the oldest line under its sequence lock (see lib/layout.ts); `into` is
 * filled and returned. A version that stays odd (a publisher stopped or killed
 * mid-update, or a forged word) is ERR_SHMQ_CORRUPT after SEQLOCK_PATIENCE_MS,
 * slept in 1 ms naps after the first SEQLOCK_SPINS tries, never a spin forever.
 */
function readOldestLine(memory: RingMemory, into: OldestLine): OldestLine {
  const words = memory.words
  let giveUpAt = 0
  for (let tries = 0; ; tries++) {
    if (tries >= SEQLOCK_SPINS) {
      const now = performance.now()
      if (giveUpAt === 0) giveUpAt = now + SEQLOCK_PATIENCE_MS
      else if (now > giveUpAt) throw corrupt(memory, `the oldest line's version stayed odd for ${SEQLOCK_PATIENCE_MS} ms (a publisher stopped mid-update, or a forged word)`)
      Atomics.wait(nap, 0, 0, 1)
    }
    // SYNC POINT (sequence lock): an even version read before and after the words means they are one update's
    const versionLow = Atomics.load(words, VERSION)
    const versionHigh = Atomics.load(words, VERSION + 1)
    if ((versionLow & 1) !== 0) continue
    into.oldestLow = Atomics.load(words, OLDEST)
    into.oldestHigh = Atomics.load(words, OLDEST + 1) >>> 0
    into.oldestSequence = (Atomics.load(words, OLDEST_SEQUENCE + 1) >>> 0) * TWO_32 + (Atomics.load(words, OLDEST_SEQUENCE) >>> 0)
    into.checkpointLow = Atomics.load(words, CHECKPOINT)
    into.checkpointHigh = Atomics.load(words, CHECKPOINT + 1) >>> 0
    into.checkpointSequence = (Atomics.load(words, CHECKPOINT_SEQUENCE + 1) >>> 0) * TWO_32 + (Atomics.load(words, CHECKPOINT_SEQUENCE) >>> 0)
    if (Atomics.load(words, VERSION) === versionLow && Atomics.load(words, VERSION + 1) === versionHigh) {
      into.versionLow = versionLow
      into.versionHigh = versionHigh
      return into
    }
  }
}

function emptyLine(): OldestLine {
  return { versionLow: 0, versionHigh: 0, oldestHigh: 0, oldestLow: 0, oldestSequence: 0, checkpointHigh: 0, checkpointLow: 0, checkpointSequence: 0 }
}

/**
 * One step of a walk over frames already published (the publisher's over the
 * previous lap, a joining subscriber's from the checkpoint): the bytes the
 * frame at ring `index` takes, read once and checked, or -1 when its header is
 * not a padding or message frame inside the ring. A message frame's size has
 * its low bit set (sizes are multiples of 8): `size & ~1` is the size, `size & 1`
 * counts the message.
 */
function walkStep(memory: RingMemory, index: number): number {
  const at = (memory.layout.headerBytes >> 2) + (index >> 2)
  const length = memory.words[at]!
  const type = (memory.words[at + 1]! >>> 16) & 0xff
  let size = -1
  if (type === FRAME_PADDING) size = memory.capacity - index
  else if (type === FRAME_MESSAGE && length >= 0 && length <= memory.maxMessage) size = frameBytes(length) | 1
  return size <= 0 || index + (size & ~1) > memory.capacity ? -1 : size
}

export interface BroadcastWriterOptions {
  /** Whether a live endpoint holds subscriber slot `slot` (its lock); in-process: its owner word is set. */
  slotAlive: (slot: number) => boolean
  /** Backpressure: ms a live subscriber may hold the publisher back before it is evicted. */
  subscriberTimeout?: number
  /** The clock of the timeout, in ms; performance.now() unless a test drives time. */
  now?: () => number
}

export class BroadcastWriter implements RingWriter {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly bytes: Uint8Array
  private readonly words64: BigInt64Array
  private readonly capacity: number
  private readonly mask: number
  readonly maxMessage: number
  private readonly ringWord: number
  private readonly payloadOffset: number
  private readonly slotCount: number
  readonly lossy: boolean
  private readonly wakeSubscribers: () => void
  private readonly slotAlive: (slot: number) => boolean
  private readonly subscriberTimeout: number
  private readonly now: () => number
  private readonly plainPublish: boolean
  private readonly fence: (() => void) | null
  private readonly chunk: number
  /** Tail (low word) and its high word. */
  private position: number
  private positionHigh: number
  /** Messages published. */
  private sequence = 0
  /** Oldest intact frame (low word; never more than capacity behind the tail) and the messages before it. */
  private oldest: number
  private oldestSequence = 0
  private version = 0
  /** Where this writer may write up to without looking again (low word): min(oldest, slowest joined) + capacity. */
  private limit: number
  /** JOINS when the positions were last read. */
  private joins: number
  private claimedPosition = -1
  private claimedLength = 0
  private stopped = false
  /** Messages, bytes, full rings and padding frames, for the publisher slot's counters line. */
  readonly counts: SideCounts
  /** The backpressure subscriber found holding the publisher back, its position, and since when (this.now()); -1 when none. */
  blockingSlot = -1
  private blockedPosition = 0
  private blockedSince = -1
  /** Subscribers dropped: dead (reclaimed) and stalled (evicted). */
  readonly dropped = { dead: 0, evicted: 0 }

  constructor(memory: RingMemory, wakeSubscribers: () => void, mode: PublishMode, options: BroadcastWriterOptions) {
    checkBroadcast(memory)
    this.counts = new SideCounts(memory, L.PUBLISHER_SLOT)
    this.memory = memory
    this.words = memory.words
    this.bytes = memory.bytes
    this.words64 = new BigInt64Array(memory.buffer, 0, memory.layout.headerBytes >> 3)
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.ringWord = memory.layout.headerBytes >> 2
    this.payloadOffset = memory.layout.headerBytes + FRAME_HEADER_BYTES
    this.slotCount = memory.layout.slotCount
    this.lossy = Atomics.load(this.words, L.word(L.POLICY_OFFSET)) === L.POLICY_LOSSY
    this.wakeSubscribers = wakeSubscribers
    this.slotAlive = options.slotAlive
    this.subscriberTimeout = options.subscriberTimeout ?? DEFAULT_SUBSCRIBER_TIMEOUT_MS
    this.now = options.now ?? performance.now.bind(performance)
    this.plainPublish = mode.plain
    this.fence = mode.plain ? mode.fence : null
    this.chunk = memory.capacity / 8
    this.position = Atomics.load(this.words, TAIL)
    this.positionHigh = loadPositionHigh(this.words, L.WRITE_POSITION_OFFSET)
    const line = readOldestLine(this.memory, emptyLine())
    this.oldest = line.oldestLow
    this.oldestSequence = line.oldestSequence
    this.sequence = line.checkpointSequence
    this.version = line.versionLow >>> 0
    const behind = (this.position - this.oldest) | 0
    if (behind < 0 || behind > this.capacity || (this.oldest & 7) !== 0) {
      throw corrupt(memory, `oldest position ${this.oldest >>> 0} is not within the ring behind the tail ${this.position >>> 0}`)
    }
    this.joins = Atomics.load(this.words, JOINS)
    this.limit = this.limitFor(this.slowestSubscriber())
  }

  get hasClaim(): boolean {
    return this.claimedPosition !== -1
  }

  get claimLength(): number {
    return this.claimedLength
  }

  /** Bytes from the slowest joined subscriber (lossy: the oldest intact frame) to the tail. */
  get fill(): number {
    return (this.position - (this.lossy ? this.oldest : this.slowestSubscriber())) | 0
  }

  checkLength(length: number): void {
    if (length > this.maxMessage) throw tooLarge(this.memory, length)
  }

  /**
   * Backpressure: the low word of the slowest joined subscriber's position,
   * nothing before which may be overwritten (the tail when none, and always
   * when lossy). Sets blockingSlot to that subscriber, or -1.
   */
  private slowestSubscriber(): number {
    let slowest = this.position
    let behind = 0
    let blocking = -1
    if (!this.lossy) {
      const slots = this.memory.layout.slots
      for (let slot = 1; slot < this.slotCount; slot++) {
        const record = slots[slot]!
        // SYNC POINT (release → reuse): a joined subscriber is done with every frame before its position
        if (Atomics.load(this.words, L.word(record.state)) !== L.SUBSCRIBER_JOINED) continue
        const position = Atomics.load(this.words, L.word(record.position))
        const distance = (this.position - position) | 0
        // a position outside the ring behind the tail is not a joined subscriber's (a hostile or half-written one): ignored
        if (distance < 0 || distance > this.capacity) continue
        if (distance > behind) {
          behind = distance
          slowest = position
          blocking = slot
        }
      }
    }
    this.blockingSlot = blocking
    return slowest
  }

  /** min(oldest, `subscribers`) + capacity: how far the tail may go. */
  private limitFor(subscribers: number): number {
    return (((subscribers - this.oldest) | 0) < 0 ? subscribers : this.oldest) + this.capacity | 0
  }

  /**
   * Makes room for `needed` more bytes at the tail: re-reads the subscribers'
   * positions and, if that is not enough, moves the oldest line a chunk past
   * what this write needs (never past a joined subscriber or the tail). False
   * when a subscriber holds it back (backpressure).
   */
  private makeRoom(needed: number): boolean {
    const end = (this.position + needed) | 0
    let subscribers = this.slowestSubscriber()
    this.limit = this.limitFor(subscribers)
    if (((end - this.limit) | 0) <= 0) {
      this.blockedSince = -1
      return true
    }
    let target = (end - this.capacity + this.chunk) | 0
    if (((target - subscribers) | 0) > 0) target = subscribers
    if (((end - this.capacity - target) | 0) > 0) {
      this.noteBlocked(subscribers)
      return false
    }
    this.walkOldest(target)
    this.publishOldest()
    // DEKKER PAIR (join): the oldest line is stored; now look for subscribers that joined meanwhile
    const joins = Atomics.load(this.words, JOINS)
    if (joins !== this.joins) {
      this.joins = joins
      subscribers = this.slowestSubscriber()
    }
    this.limit = this.limitFor(subscribers)
    if (((end - this.limit) | 0) > 0) {
      this.noteBlocked(subscribers)
      return false
    }
    this.blockedSince = -1
    return true
  }

  /** Moves `oldest` frame by frame to the first frame boundary at or after `target`, counting messages. */
  private walkOldest(target: number): void {
    let oldest = this.oldest
    let sequence = this.oldestSequence
    while (((oldest - target) | 0) < 0) {
      const index = oldest & this.mask
      const size = walkStep(this.memory, index)
      if (size === -1) throw corrupt(this.memory, `frame at ring index ${index} of the previous lap is neither a message nor padding inside the ring`)
      sequence += size & 1
      oldest = (oldest + (size & ~1)) | 0
    }
    this.oldest = oldest
    this.oldestSequence = sequence
  }

  /** Publishes the oldest line and a checkpoint at the tail under the sequence lock. */
  private publishOldest(): void {
    const words = this.words
    const oldestHigh = this.highOf(this.oldest)
    this.version += 1
    const versionHigh = Math.floor(this.version / TWO_32)
    // SYNC POINT (sequence lock): odd while the line changes; a reader that sees the same even version around its reads has one update
    storePair(words, VERSION, versionHigh, this.version | 0)
    storePair(words, OLDEST, oldestHigh, this.oldest)
    storePair(words, OLDEST_SEQUENCE, Math.floor(this.oldestSequence / TWO_32), this.oldestSequence >>> 0)
    storePair(words, CHECKPOINT, this.positionHigh, this.position)
    storePair(words, CHECKPOINT_SEQUENCE, Math.floor(this.sequence / TWO_32), this.sequence >>> 0)
    this.version += 1
    // SYNC POINT (sequence lock, and DEKKER PAIR with a join): the line is complete; frames before OLDEST may be overwritten from here on
    storePair(words, VERSION, Math.floor(this.version / TWO_32), this.version | 0)
  }

  /** The high word of a position at most capacity behind the tail. */
  private highOf(low: number): number {
    return (low < 0 && this.position >= 0 ? this.positionHigh - 1 : this.positionHigh) >>> 0
  }

  private noteBlocked(position: number): void {
    if (this.blockingSlot === -1) return
    if (this.blockedSince === -1 || this.blockedPosition !== position) {
      this.blockedSince = this.now()
      this.blockedPosition = position
    }
  }

  /**
   * Backpressure, while full: drops the subscriber that holds the publisher
   * back if it died (its slot is free again), or evicts it if it has not moved
   * for subscriberTimeout. True when one was dropped (look for room again).
   * Asks `slotAlive` (a syscall) only for that one subscriber.
   */
  unblock(): boolean {
    if (this.lossy) return false
    this.slowestSubscriber()
    const slot = this.blockingSlot
    if (slot === -1) return false
    const state = L.word(this.memory.layout.slots[slot]!.state)
    if (!this.slotAlive(slot)) {
      if (Atomics.compareExchange(this.words, state, L.SUBSCRIBER_JOINED, L.SUBSCRIBER_FREE) === L.SUBSCRIBER_JOINED) this.dropped.dead++
      this.blockedSince = -1
      return true
    }
    if (this.blockedSince !== -1 && this.now() - this.blockedSince >= this.subscriberTimeout) {
      // SYNC POINT: the subscriber reads its state before each message it hands out, and rejoins
      if (Atomics.compareExchange(this.words, state, L.SUBSCRIBER_JOINED, L.SUBSCRIBER_EVICTED) === L.SUBSCRIBER_JOINED) this.dropped.evicted++
      this.blockedSince = -1
      return true
    }
    return false
  }

  /** Room check: the position where a `length`-byte message's frame goes (after padding), or -1. */
  private reserve(length: number): number {
    const size = frameBytes(length)
    const position = this.position
    const index = position & this.mask
    const untilEnd = this.capacity - index
    const needed = roomNeeded(size, untilEnd)
    if (((((position + needed) | 0) - this.limit) | 0) > 0) {
      if (!this.makeRoom(needed)) {
        this.counts.noRoom()
        return -1
      }
      this.counts.roomFound()
    }
    if (size <= untilEnd) return position
    // the frame would cross the end: a padding frame covers the rest of the ring
    const at = this.ringWord + (index >> 2)
    this.words[at] = untilEnd - FRAME_HEADER_BYTES
    this.words[at + 1] = PADDING_TYPE_WORD
    this.counts.extra++
    return (position + untilEnd) | 0
  }

  private publish(position: number, messages: number): void {
    const wrapped = position >= 0 && this.position < 0
    this.position = position
    this.sequence += messages
    // SYNC POINT (publish → acquire): frames written before this store are visible to a subscriber that loads it
    if (wrapped) storeWrappedPosition(this.words64, L.WRITE_POSITION_OFFSET, ++this.positionHigh, position)
    else if (this.plainPublish) {
      this.words[TAIL] = position
      if (this.fence !== null) this.fence()
    } else Atomics.store(this.words, TAIL, position)
    // DEKKER PAIR (subscriber park): a subscriber announces itself, raises this flag, fences, re-reads the tail
    const waiting = this.plainPublish ? this.words[SUBSCRIBERS_WAITING] : Atomics.load(this.words, SUBSCRIBERS_WAITING)
    if (waiting !== 0) this.wakeSubscribers()
  }

  tryWrite(message: Uint8Array, length: number, type = 0): boolean {
    if (length > this.maxMessage) this.checkLength(length)
    const position = this.reserve(length)
    if (position === -1) return false
    const index = position & this.mask
    const at = this.ringWord + (index >> 2)
    this.words[at] = length
    this.words[at + 1] = MESSAGE_TYPE_WORD | type
    this.bytes.set(message, this.payloadOffset + index)
    this.publish((position + frameBytes(length)) | 0, 1)
    this.counts.count(length)
    return true
  }

  hasRoomFor(length: number, slack = 0): boolean {
    const index = this.position & this.mask
    const needed = roomNeeded(frameBytes(length), this.capacity - index) + slack
    if (((((this.position + needed) | 0) - this.limit) | 0) <= 0) return true
    if (this.makeRoom(Math.min(needed, this.capacity))) return true
    // a stalled subscriber past its timeout is evicted here too: a parked publisher re-checks this
    return this.blockedSince !== -1 && this.now() - this.blockedSince >= this.subscriberTimeout && this.unblock() && this.makeRoom(needed)
  }

  tryClaim(length: number): Uint8Array | null {
    const offset = this.tryClaimRaw(length)
    return offset === -1 ? null : new Uint8Array(this.memory.buffer, offset, length)
  }

  tryClaimRaw(length: number): number {
    this.checkLength(length)
    const position = this.reserve(length)
    if (position === -1) return -1
    this.claimedPosition = position
    this.claimedLength = length
    return this.payloadOffset + (position & this.mask)
  }

  commit(length: number = this.claimedLength, type = 0): void {
    const position = this.claimedPosition
    this.claimedPosition = -1
    const at = this.ringWord + ((position & this.mask) >> 2)
    this.words[at] = length
    this.words[at + 1] = MESSAGE_TYPE_WORD | type
    this.publish((position + frameBytes(length)) | 0, 1)
    this.counts.count(length)
  }

  abort(): void {
    this.claimedPosition = -1
  }

  /** Messages published by this writer's stream so far. */
  get published(): number {
    return this.sequence
  }

  /** Ends the stream: subscribers read what was published, then end. */
  end(): void {
    if (this.stopped) return
    this.stopped = true
    this.claimedPosition = -1
    // SYNC POINT (end of stream): a subscriber that sees END_OF_STREAM sees every tail published before it
    Atomics.store(this.words, END_OF_STREAM, 1)
    this.wakeSubscribers()
  }
}

export type JoinFrom = 'next' | 'oldest'

export class BroadcastReader implements RingReader {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly buffer: ArrayBufferLike
  private readonly bytes: Uint8Array
  private readonly words64: BigInt64Array
  private readonly capacity: number
  private readonly mask: number
  private readonly maxMessage: number
  private readonly ringWord: number
  private readonly payloadOffset: number
  readonly lossy: boolean
  private readonly slot: number
  private readonly positionWord: number
  private readonly positionOffset: number
  private readonly stateWord: number
  private readonly publisherWaiting: number
  private readonly wakePublisher: () => void
  private readonly plainPublish: boolean
  private readonly fence: (() => void) | null
  /** Lossy: each message is copied here before it is checked and handed out. */
  private readonly copy: Uint8Array
  private readonly line = emptyLine()
  /** Position after the last message handed out (low word), its high word, and the messages before it. */
  private position = 0
  private positionHigh = 0
  private sequence = 0
  /** Position published in the slot. */
  private releasedPosition = 0
  /** Last tail loaded. */
  private tail = 0
  /** Set by next(): the frame found. */
  private frameLength = 0
  private frameType = 0
  private frameStart = 0
  private stopped = false
  lastType = 0
  /** Messages this subscriber missed: overwritten before it read them (lossy), or while it was evicted. */
  lost = 0
  /** Times it was lapped (lossy) or evicted (backpressure) and resumed at the oldest intact message. */
  resumes = 0
  /** Messages, bytes and losses, for the subscriber slot's counters line. */
  readonly counts: SideCounts

  constructor(memory: RingMemory, slot: number, wakePublisher: () => void, mode: PublishMode, from: JoinFrom = 'next') {
    checkBroadcast(memory)
    this.counts = new SideCounts(memory, slot)
    this.memory = memory
    this.words = memory.words
    this.buffer = memory.buffer
    this.bytes = memory.bytes
    this.words64 = new BigInt64Array(memory.buffer, 0, memory.layout.headerBytes >> 3)
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.ringWord = memory.layout.headerBytes >> 2
    this.payloadOffset = memory.layout.headerBytes + FRAME_HEADER_BYTES
    this.lossy = Atomics.load(this.words, L.word(L.POLICY_OFFSET)) === L.POLICY_LOSSY
    this.slot = slot
    const record = memory.layout.slots[slot]!
    this.positionOffset = record.position
    this.positionWord = L.word(record.position)
    this.stateWord = L.word(record.state)
    this.publisherWaiting = L.word(memory.layout.slots[L.PUBLISHER_SLOT]!.waiting)
    this.wakePublisher = wakePublisher
    this.plainPublish = mode.plain
    this.fence = mode.plain ? mode.fence : null
    this.copy = this.lossy ? new Uint8Array(memory.maxMessage) : new Uint8Array(0)
    this.join(from)
  }

  /** The tail as (high, low), read consistently (the publisher stores both at once when the low word wraps). */
  private loadTail(): [number, number] {
    for (;;) {
      const high = Atomics.load(this.words, TAIL + 1) >>> 0
      const low = Atomics.load(this.words, TAIL)
      if ((Atomics.load(this.words, TAIL + 1) >>> 0) === high) return [high, low]
    }
  }

  /**
   * Takes a start position: the tail ('next') or the oldest intact frame
   * ('oldest'), with the count of messages before it, and (backpressure)
   * makes the publisher see it (see the DEKKER PAIR in the module comment).
   */
  private join(from: JoinFrom): void {
    for (let tries = 0; tries < MAX_JOIN_TRIES; tries++) {
      if (!this.startAt(from)) continue
      this.storePosition()
      if (this.lossy) {
        Atomics.store(this.words, this.stateWord, L.SUBSCRIBER_JOINED)
        return
      }
      Atomics.store(this.words, this.stateWord, L.SUBSCRIBER_JOINED)
      // DEKKER PAIR (join): our position and state are stored; announce, then look at the oldest line
      Atomics.add(this.words, JOINS, 1)
      const line = readOldestLine(this.memory, this.line)
      if (!isBefore(this.positionHigh, this.position, line.oldestHigh, line.oldestLow)) return
      // the publisher went past our start before it saw us: take a later one
    }
    throw corrupt(this.memory, `subscriber could not join in ${MAX_JOIN_TRIES} tries: the oldest line or the frames keep changing under it`)
  }

  /**
   * Sets position and sequence to the oldest intact frame, or to the tail
   * (counting the messages from the publisher's checkpoint to it); false when
   * the frames walked were overwritten meanwhile (try again).
   */
  private startAt(from: JoinFrom): boolean {
    const line = readOldestLine(this.memory, this.line)
    if (from === 'oldest') {
      this.setPosition(line.oldestHigh, line.oldestLow, line.oldestSequence)
      return true
    }
    const [tailHigh, tailLow] = this.loadTail()
    let position = line.checkpointLow
    let high = line.checkpointHigh
    let sequence = line.checkpointSequence
    // from the checkpoint (a frame boundary near the tail) to the tail, counting messages
    while (position !== tailLow) {
      if (((tailLow - position) | 0) < 0 || ((tailLow - position) | 0) > this.capacity) return false
      const size = walkStep(this.memory, position & this.mask)
      if (size === -1) return false
      sequence += size & 1
      const next = (position + (size & ~1)) | 0
      if (position < 0 && next >= 0) high++
      position = next
    }
    if (high >>> 0 !== tailHigh) return false
    // the frames walked must still be intact: the oldest line has not moved past the checkpoint
    const after = readOldestLine(this.memory, this.line)
    if (isBefore(line.checkpointHigh, line.checkpointLow, after.oldestHigh, after.oldestLow)) return false
    this.setPosition(tailHigh, tailLow, sequence)
    return true
  }

  private setPosition(high: number, low: number, sequence: number): void {
    this.positionHigh = high >>> 0
    this.position = low
    this.sequence = sequence
    this.tail = low
  }

  /** Stores our whole 64-bit position in the slot (a join or a resume). */
  private storePosition(): void {
    this.releasedPosition = this.position
    storeWrappedPosition(this.words64, this.positionOffset, this.positionHigh, this.position)
  }

  /** Whether a message (or the end of the stream) is waiting: the wake-up condition. */
  readonly isReady = (): boolean => {
    return Atomics.load(this.words, TAIL) !== this.position || Atomics.load(this.words, END_OF_STREAM) !== 0
  }

  get ended(): boolean {
    // SYNC POINT (end of stream): END_OF_STREAM first: seeing it makes the final tail visible
    return Atomics.load(this.words, END_OF_STREAM) !== 0 && Atomics.load(this.words, TAIL) === this.position
  }

  get fill(): number {
    return (Atomics.load(this.words, TAIL) - this.releasedPosition) | 0
  }

  /** Messages before this subscriber's position: read or lost since the stream began. */
  get messageSequence(): number {
    return this.sequence
  }

  /** Publishes our position to the publisher (backpressure: it may overwrite everything before it). */
  private publish(position: number): void {
    const wrapped = position >= 0 && this.releasedPosition < 0
    this.releasedPosition = position
    // SYNC POINT (release → reuse): we are done with every frame before `position`
    if (wrapped) storeWrappedPosition(this.words64, this.positionOffset, this.positionHigh, position)
    else if (this.plainPublish) {
      this.words[this.positionWord] = position
      if (this.fence !== null) this.fence()
    } else Atomics.store(this.words, this.positionWord, position)
    // DEKKER PAIR (publisher park), as in SpscReader.publish
    const waiting = this.plainPublish ? this.words[this.publisherWaiting] : Atomics.load(this.words, this.publisherWaiting)
    if (waiting !== L.WAITING_NONE) this.wakePublisher()
  }

  release(): void {
    if (this.releasedPosition !== this.position) this.publish(this.position)
  }

  /**
   * Resumes at the oldest intact frame after being lapped (lossy) or evicted
   * (backpressure), counting the messages between our position and it as lost.
   */
  private resume(): void {
    this.resumes++
    const line = readOldestLine(this.memory, this.line)
    if (isBefore(this.positionHigh, this.position, line.oldestHigh, line.oldestLow)) {
      this.countLost(line.oldestSequence - this.sequence)
      this.setPosition(line.oldestHigh, line.oldestLow, line.oldestSequence)
    }
    if (this.lossy) {
      this.storePosition()
      return
    }
    // rejoin where we stand (or at the oldest): the publisher must see us again
    for (let tries = 0; tries < MAX_JOIN_TRIES; tries++) {
      this.storePosition()
      Atomics.store(this.words, this.stateWord, L.SUBSCRIBER_JOINED)
      Atomics.add(this.words, JOINS, 1)
      const after = readOldestLine(this.memory, this.line)
      if (!isBefore(this.positionHigh, this.position, after.oldestHigh, after.oldestLow)) return
      this.countLost(after.oldestSequence - this.sequence)
      this.setPosition(after.oldestHigh, after.oldestLow, after.oldestSequence)
    }
    throw corrupt(this.memory, 'subscriber could not rejoin: the oldest line keeps moving past it')
  }

  /** Lossy: whether the frame at our position may have been overwritten (the oldest line is past it). */
  private overrun(): boolean {
    const line = this.line
    // the version unchanged since the last full read: the oldest line is the one we know
    if (Atomics.load(this.words, VERSION) === line.versionLow && Atomics.load(this.words, VERSION + 1) === line.versionHigh) {
      return isBefore(this.positionHigh, this.position, line.oldestHigh, line.oldestLow)
    }
    readOldestLine(this.memory, line)
    return isBefore(this.positionHigh, this.position, line.oldestHigh, line.oldestLow)
  }

  /**
   * Finds the next message: sets frameStart (its payload's offset in `bytes`,
   * or in `copy` when lossy), frameLength, frameType, and moves the position
   * past it. False when none is waiting.
   */
  private next(): boolean {
    for (;;) {
      if (this.stopped) return false
      if (!this.lossy && Atomics.load(this.words, this.stateWord) !== L.SUBSCRIBER_JOINED) {
        // evicted (or dropped): the publisher no longer waits for us
        this.resume()
        continue
      }
      let available = (this.tail - this.position) | 0
      if (available === 0) {
        // SYNC POINT (publish → acquire): every frame before the tail loaded is visible
        this.tail = Atomics.load(this.words, TAIL)
        available = (this.tail - this.position) | 0
        if (available === 0) {
          if (this.lossy && this.overrun()) {
            this.resume()
            continue
          }
          return false
        }
      }
      if (available < 0 || available > this.capacity || (this.tail & 7) !== 0) {
        if (this.lossy && this.overrun()) {
          this.resume()
          continue
        }
        throw corrupt(this.memory, `tail ${this.tail >>> 0} is not within the ring ahead of subscriber position ${this.position >>> 0}`)
      }
      let index = this.position & this.mask
      let at = this.ringWord + (index >> 2)
      let length = this.words[at]!
      let typeWord = this.words[at + 1]!
      let skip = 0
      if (((typeWord >>> 16) & 0xff) === FRAME_PADDING) {
        skip = this.capacity - index
        if (length !== skip - FRAME_HEADER_BYTES || skip >= available) {
          if (this.lossy && this.overrun()) {
            this.resume()
            continue
          }
          throw corrupt(this.memory, `padding frame at ring index ${index} claims ${length} bytes; the ring end is ${skip - FRAME_HEADER_BYTES} bytes away`)
        }
        index = 0
        at = this.ringWord
        length = this.words[at]!
        typeWord = this.words[at + 1]!
      }
      const size = frameBytes(length)
      if (((typeWord >>> 16) & 0xff) !== FRAME_MESSAGE || length < 0 || length > this.maxMessage || skip + size > available || index + size > this.capacity) {
        if (this.lossy && this.overrun()) {
          this.resume()
          continue
        }
        throw corrupt(this.memory, `frame at ring index ${index} has type ${(typeWord >>> 16) & 0xff} and length ${length}`)
      }
      if (this.lossy) {
        this.copy.set(this.bytes.subarray(this.payloadOffset + index, this.payloadOffset + index + length))
        // the copy is good only if nothing overwrote the frame while we copied it
        if (this.overrun()) {
          this.resume()
          continue
        }
        this.frameStart = 0
      } else this.frameStart = this.payloadOffset + index
      this.frameLength = length
      this.frameType = typeWord & 0xffff
      this.advance(skip + size)
      this.sequence++
      this.counts.count(length)
      return true
    }
  }

  private countLost(messages: number): void {
    if (messages <= 0) return
    this.lost += messages
    this.counts.missed += messages
  }

  private advance(bytes: number): void {
    const next = (this.position + bytes) | 0
    if (this.position < 0 && next >= 0) this.positionHigh = (this.positionHigh + 1) >>> 0
    this.position = next
  }

  tryRead(): Uint8Array | null {
    if (this.releasedPosition !== this.position) this.publish(this.position)
    if (!this.next()) return null
    this.lastType = this.frameType
    return this.lossy ? this.copy.subarray(0, this.frameLength) : new Uint8Array(this.buffer, this.frameStart, this.frameLength)
  }

  drain(handler: (message: Uint8Array) => void, limit: number, hold = false): number {
    const buffer = this.buffer
    if (this.lossy) return this.drainRaw((bytes, offset, length) => handler(bytes.subarray(offset, offset + length)), limit, hold)
    return this.drainRaw((_bytes, offset, length) => handler(new Uint8Array(buffer, offset, length)), limit, hold)
  }

  drainRaw(handler: RawHandler, limit: number, hold = false): number {
    if (!hold) this.release()
    const bytes = this.lossy ? this.copy : this.bytes
    let count = 0
    try {
      while (count < limit && this.next()) {
        count++
        handler(bytes, this.frameStart, this.frameLength, this.frameType)
      }
    } finally {
      if (!hold && !this.stopped && this.releasedPosition !== this.position) this.publish(this.position)
    }
    return count
  }

  /** Releases, leaves (the publisher stops waiting for us) and reads nothing more. */
  stop(): void {
    if (this.stopped) return
    this.release()
    this.stopped = true
    Atomics.store(this.words, this.stateWord, L.SUBSCRIBER_FREE)
    if (Atomics.load(this.words, this.publisherWaiting) !== L.WAITING_NONE) this.wakePublisher()
  }

  /** Slot this reader joined as. */
  get subscriberSlot(): number {
    return this.slot
  }
}
