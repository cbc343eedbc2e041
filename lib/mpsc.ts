/**
 * The many-producers single-consumer ring protocol, over a RingMemory
 * (lib/memory.ts): a mapped segment, or a SharedArrayBuffer in-process. No OS
 * calls, no waiting, no addon, as lib/spsc.ts; liveness of the producers' slots
 * is asked through an injected function.
 *
 * A producer claims room with one compare-exchange on the tail, writes a
 * claim marker (frame type CLAIMED, its slot) and later commits by replacing
 * that type word with the message's (compare-exchange: the consumer may have
 * revoked it, see below). The consumer reads frames in order from the head,
 * stops at a frame not yet written (type NONE) or not committed (CLAIMED), and
 * zeroes every frame it releases, so that a frame not yet written reads NONE.
 * The tail orders the claims: each producer's messages arrive in its write
 * order, and across producers in claim order.
 *
 * A producer that dies between claim and commit: its CLAIMED frame names its
 * slot; the consumer sees the slot's lock free (lib/liveness.ts), skips the
 * frame and counts it in `lostUncommitted`. One that dies between the
 * compare-exchange and the claim marker left only its claim record (the slot's
 * claim position and bytes, written before the compare-exchange): the consumer
 * finds the dead slot whose record names the stuck position, and skips that.
 * A producer alive but stuck in a claim for longer than `claimTimeout`: the
 * consumer revokes the claim (type REVOKED), counts it in `lostRevoked` and
 * reads on past it, but releases nothing from that frame on until the producer
 * acknowledges (its commit or abort finds the claim revoked, fails, and turns
 * the frame into padding) or dies: a stuck producer that resumes writing never
 * writes into room another producer was given.
 */
import { SideCounts } from './counters'
import { ShmqError } from './errors'
import { corrupt, frameBytes, roomNeeded, tooLarge } from './frames'
import * as L from './layout'
import type { RingMemory } from './memory'
import { loadPositionHigh, type PublishMode, storeWrappedPosition } from './publish-mode'
import type { RawHandler, RingReader, RingWriter } from './ring'

const TAIL = L.word(L.WRITE_POSITION_OFFSET)
const HEAD = L.word(L.READ_POSITION_OFFSET)
const END_OF_STREAM = L.word(L.END_OF_STREAM_OFFSET)
const PRODUCERS_WAITING = L.word(L.PRODUCERS_WAITING_OFFSET)
const FRAME_HEADER_BYTES = L.FRAME_HEADER_BYTES
const FRAME_NONE = L.FRAME_NONE
const FRAME_MESSAGE = L.FRAME_MESSAGE
const FRAME_PADDING = L.FRAME_PADDING
const FRAME_CLAIMED = L.FRAME_CLAIMED
const FRAME_REVOKED = L.FRAME_REVOKED
const WAITING_NONE = L.WAITING_NONE
/** Claims a producer retries after finding a tail behind the head it loaded, before it calls the ring corrupt. */
const MAX_CLAIM_RETRIES = 1 << 20

/** Polls that find the same frame not ready before the reader looks into why (see stalled()). */
const STALL_POLLS = 64

/** How long the read position stands at a claim before the consumer asks whether its producer lives, in ms. */
const LIVENESS_GRACE_MS = 1

/** Default time a live producer may hold a claim before the consumer reads past it, in ms. */
export const DEFAULT_CLAIM_TIMEOUT_MS = 5000

function checkMpsc(memory: RingMemory): void {
  if (!L.runsMpsc(memory.layout.kind)) throw new Error(`ring '${memory.name}' is not laid out as an MPSC ring`)
}

export class MpscWriter implements RingWriter {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly bytes: Uint8Array
  private readonly capacity: number
  private readonly mask: number
  readonly maxMessage: number
  private readonly ringWord: number
  private readonly payloadOffset: number
  private readonly slot: number
  private readonly claimPositionWord: number
  private readonly claimBytesWord: number
  private readonly consumerWaiting: number
  private readonly wakeConsumer: () => void
  private readonly plainPublish: boolean
  /** Type word of this producer's claim marker, padding and (OR-ed with a tag) messages. */
  private readonly claimedWord: number
  private readonly paddingWord: number
  /** Messages, bytes, full rings and padding frames, for the slot's counters line. */
  readonly counts: SideCounts
  private readonly messageWord: number
  /** Last head read; re-read only when the ring looks full. */
  private head: number
  /** Where this producer expects the tail: after its last claim (see claim()). */
  private expectedTail: number
  /** Position of the claimed frame, or -1 when nothing is claimed. */
  private claimedPosition = -1
  private claimedLength = 0

  constructor(memory: RingMemory, slot: number, wakeConsumer: () => void, mode: PublishMode) {
    checkMpsc(memory)
    if (!(slot >= L.FIRST_PRODUCER_SLOT && slot < memory.layout.slotCount)) throw new Error(`slot ${slot} is not a producer slot of '${memory.name}'`)
    this.memory = memory
    this.words = memory.words
    this.bytes = memory.bytes
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.ringWord = memory.layout.headerBytes >> 2
    this.payloadOffset = memory.layout.headerBytes + FRAME_HEADER_BYTES
    this.slot = slot
    const slotLayout = memory.layout.slots[slot]!
    this.claimPositionWord = L.word(slotLayout.claimPosition)
    this.claimBytesWord = L.word(slotLayout.claimBytes)
    this.consumerWaiting = L.word(memory.layout.slots[L.CONSUMER_SLOT]!.waiting)
    this.wakeConsumer = wakeConsumer
    this.plainPublish = mode.plain
    this.claimedWord = L.frameTypeWord(FRAME_CLAIMED, 0, slot)
    this.paddingWord = L.frameTypeWord(FRAME_PADDING, 0, slot)
    this.counts = new SideCounts(memory, slot)
    this.messageWord = L.frameTypeWord(FRAME_MESSAGE, 0, slot)
    this.head = Atomics.load(this.words, HEAD)
    this.expectedTail = Atomics.load(this.words, TAIL)
    // a slot taken over from a dead producer whose claim was resolved: no claim of ours is open
    Atomics.store(this.words, this.claimBytesWord, 0)
  }

  get hasClaim(): boolean {
    return this.claimedPosition !== -1
  }

  get claimLength(): number {
    return this.claimedLength
  }

  /** Bytes claimed by all producers and not yet released by the consumer. */
  get fill(): number {
    return (Atomics.load(this.words, TAIL) - Atomics.load(this.words, HEAD)) | 0
  }

  checkLength(length: number): void {
    if (length > this.maxMessage) throw tooLarge(this.memory, length)
  }

  /**
   * Claims room for a `length`-byte message: returns the position of its frame
   * (after a padding frame, if one was needed), marked CLAIMED, or -1 when full.
   */
  private claim(length: number): number {
    const words = this.words
    const size = frameBytes(length)
    // the tail our last claim left: right whenever no other producer claimed since, and
    // the compare-exchange below returns the real one when it is not (no load first)
    let tail = this.expectedTail
    let untilEnd: number
    let needed: number
    for (let retries = 0; ; retries++) {
      const index = tail & this.mask
      untilEnd = this.capacity - index
      needed = roomNeeded(size, untilEnd)
      let fill = (tail - this.head) | 0
      if (fill < 0 || fill + needed > this.capacity) {
        // SYNC POINT (release → reuse): the consumer released and zeroed everything before the head
        const head = Atomics.load(words, HEAD)
        fill = (tail - head) | 0
        if (fill < 0) {
          // the tail moved on since we saw it, and the consumer with it: load both again
          if (retries > MAX_CLAIM_RETRIES || (head & 7) !== 0) throw corrupt(this.memory, `head ${head >>> 0} is ahead of the tail ${tail >>> 0}`)
          tail = Atomics.load(words, TAIL)
          continue
        }
        if (fill > this.capacity || (head & 7) !== 0) throw corrupt(this.memory, `head ${head >>> 0} is not within the ring behind the tail ${tail >>> 0}`)
        this.head = head
        if (fill + needed > this.capacity) {
          this.counts.noRoom()
          return -1
        }
        this.counts.roomFound()
      }
      // the claim record first: a consumer that finds the claim before its marker learns whose it is
      words[this.claimPositionWord] = tail
      words[this.claimBytesWord] = needed
      // SYNC POINT (claim): the record above is visible to whoever loads the new tail
      const seen = Atomics.compareExchange(words, TAIL, tail, (tail + needed) | 0)
      if (seen === tail) break
      tail = seen
    }
    this.expectedTail = (tail + needed) | 0
    const position = size > untilEnd ? (tail + untilEnd) | 0 : tail
    const at = this.ringWord + ((position & this.mask) >> 2)
    words[at] = length
    // SYNC POINT (claim marker): the claimed length above is visible to whoever sees CLAIMED
    if (this.plainPublish) words[at + 1] = this.claimedWord
    else Atomics.store(words, at + 1, this.claimedWord)
    if (position !== tail) {
      // the frame would cross the end: a padding frame, committed at once, covers the rest of the ring.
      // After the marker: a consumer that meets the padding unwritten finds our claim record there
      const paddingAt = this.ringWord + ((tail & this.mask) >> 2)
      words[paddingAt] = untilEnd - FRAME_HEADER_BYTES
      Atomics.store(words, paddingAt + 1, this.paddingWord)
      this.counts.extra++
    }
    return position
  }

  /**
   * Publishes the frame at `position`, claimed for `claimed` bytes, as a
   * message of `length` bytes with tag `type`. Throws ERR_SHMQ_TIMEOUT when the
   * consumer revoked the claim (it is dropped).
   */
  private publish(position: number, claimed: number, length: number, type: number): void {
    const words = this.words
    const at = this.ringWord + ((position & this.mask) >> 2)
    const size = frameBytes(length)
    const claimedSize = frameBytes(claimed)
    if (size < claimedSize) {
      // a shorter commit: padding covers the rest of the claim, before the length that tells where it starts
      const rest = at + (size >> 2)
      words[rest] = claimedSize - size - FRAME_HEADER_BYTES
      Atomics.store(words, rest + 1, this.paddingWord)
    }
    words[at] = length
    // SYNC POINT (commit → acquire): payload and length written before this exchange are visible to the consumer that sees MESSAGE
    const seen = Atomics.compareExchange(words, at + 1, this.claimedWord, this.messageWord | type)
    words[this.claimBytesWord] = 0
    if (seen !== this.claimedWord) {
      this.acknowledgeRevocation(at, seen, claimedSize)
      throw this.revokedError()
    }
    // DEKKER PAIR (consumer park): the exchange above is a full barrier before this load, which
    // may then be plain in plain mode (x64 does not move a load before a locked instruction)
    const waiting = this.plainPublish ? words[this.consumerWaiting] : Atomics.load(words, this.consumerWaiting)
    if (waiting !== WAITING_NONE) this.wakeConsumer()
  }

  /** The consumer revoked our claim: tell it we know (padding over the whole claim), so that it may release the room. */
  private acknowledgeRevocation(at: number, seen: number, claimedSize: number): void {
    if (seen === L.frameTypeWord(FRAME_REVOKED, 0, this.slot)) {
      this.words[at] = claimedSize - FRAME_HEADER_BYTES
      Atomics.store(this.words, at + 1, this.paddingWord)
    }
    if (Atomics.load(this.words, this.consumerWaiting) !== WAITING_NONE) this.wakeConsumer()
  }

  private revokedError(): ShmqError {
    return new ShmqError(
      'ERR_SHMQ_TIMEOUT',
      `the claim on '${this.memory.name}' was held longer than its consumer's claimTimeout: the consumer read past it and the message was dropped; write it again (and keep claims short)`,
      { segment: this.memory.name },
    )
  }

  tryWrite(message: Uint8Array, length: number, type = 0): boolean {
    if (length > this.maxMessage) this.checkLength(length)
    const position = this.claim(length)
    if (position === -1) return false
    this.bytes.set(message, this.payloadOffset + (position & this.mask))
    this.publish(position, length, length, type)
    this.counts.count(length)
    return true
  }

  hasRoomFor(length: number, slack = 0): boolean {
    const tail = Atomics.load(this.words, TAIL)
    const needed = roomNeeded(frameBytes(length), this.capacity - (tail & this.mask))
    const fill = (tail - Atomics.load(this.words, HEAD)) | 0
    return fill < 0 || fill > this.capacity || fill + needed + slack <= this.capacity
  }

  tryClaim(length: number): Uint8Array | null {
    const offset = this.tryClaimRaw(length)
    return offset === -1 ? null : new Uint8Array(this.memory.buffer, offset, length)
  }

  tryClaimRaw(length: number): number {
    this.checkLength(length)
    const position = this.claim(length)
    if (position === -1) return -1
    this.claimedPosition = position
    this.claimedLength = length
    return this.payloadOffset + (position & this.mask)
  }

  commit(length: number = this.claimedLength, type = 0): void {
    const position = this.claimedPosition
    this.claimedPosition = -1
    this.publish(position, this.claimedLength, length, type)
    this.counts.count(length)
  }

  /**
   * Marks the end of the stream: no producer may attach any more, and the
   * consumer ends once no producer is attached and it read everything.
   * Producers attached now write on.
   */
  end(): void {
    // SYNC POINT (end of stream): a consumer that sees it, then no producer attached, then the tail, has seen every claim
    Atomics.store(this.words, END_OF_STREAM, 1)
    this.wakeIfWaiting()
  }

  /** Wakes the consumer if it is parked: it re-checks whether the stream ended (a producer closed). */
  wakeIfWaiting(): void {
    if (Atomics.load(this.words, this.consumerWaiting) !== WAITING_NONE) this.wakeConsumer()
  }

  /** Drops the claim: its frame becomes padding, which the consumer skips. */
  abort(): void {
    const position = this.claimedPosition
    if (position === -1) return
    this.claimedPosition = -1
    const words = this.words
    const at = this.ringWord + ((position & this.mask) >> 2)
    const claimedSize = frameBytes(this.claimedLength)
    words[at] = claimedSize - FRAME_HEADER_BYTES
    const seen = Atomics.compareExchange(words, at + 1, this.claimedWord, this.paddingWord)
    words[this.claimBytesWord] = 0
    if (seen !== this.claimedWord) this.acknowledgeRevocation(at, seen, claimedSize)
    else if (Atomics.load(words, this.consumerWaiting) !== WAITING_NONE) this.wakeConsumer()
  }
}

/** What the consumer counts of frames that did not arrive. */
export interface MpscLosses {
  /** Claims of producers that died before committing: skipped. */
  lostUncommitted: number
  /** Claims held longer than claimTimeout by a live producer: read past, dropped. */
  lostRevoked: number
}

export interface MpscReaderOptions {
  /** Whether a live endpoint holds producer slot `slot` (its role lock); in-process: true while attached. */
  slotAlive: (slot: number) => boolean
  /** ms a live producer may hold a claim at the head before it is revoked. */
  claimTimeout?: number
  /** The clock the grace and the claim timeout are measured on, in ms; performance.now() unless a test drives time itself. */
  now?: () => number
}

export class MpscReader implements RingReader {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly buffer: ArrayBufferLike
  private readonly bytes: Uint8Array
  private readonly words64: BigInt64Array
  private readonly capacity: number
  private readonly mask: number
  private readonly maxMessage: number
  private readonly ringWord: number
  private readonly ringStart: number
  private readonly slotCount: number
  private readonly wakeProducers: () => void
  private readonly slotAlive: (slot: number) => boolean
  private readonly claimTimeout: number
  private readonly now: () => number
  private readonly plainPublish: boolean
  private readonly fence: (() => void) | null
  /** Position after the last frame handed out or skipped. */
  private position: number
  /** The head: published to the producers, everything before it zeroed and free. */
  private releasedPosition: number
  private releasedHigh: number
  /** The tail last loaded: frames before it were claimed. */
  private knownTail: number
  /** Bytes released since the last sweep of stale claim records. */
  private releasedSinceSweep = 0
  /** Revoked claims not yet acknowledged, oldest first: nothing from the first on is released. */
  private readonly holds: Array<{ position: number; slot: number }> = []
  /** When the frame at `position` was first found claimed by a live producer (this.now()), or -1. */
  private blockedSince = -1
  private blockedPosition = 0
  /** Set by next(): the frame found. */
  private length = 0
  private type = 0
  private stopped = false
  /** Where next() last found nothing, and how many polls in a row it did (see stalled()). */
  private stalledAt = -1
  private stalls = 0
  lastType = 0
  /** Slot whose claim blocks the head, for the consumer to watch; -1 when none. */
  blockingSlot = -1
  readonly losses: MpscLosses = { lostUncommitted: 0, lostRevoked: 0 }
  /** Messages, bytes and losses, for the slot's counters line. */
  readonly counts: SideCounts

  constructor(memory: RingMemory, wakeProducers: () => void, mode: PublishMode, options: MpscReaderOptions) {
    checkMpsc(memory)
    this.memory = memory
    this.counts = new SideCounts(memory, L.CONSUMER_SLOT)
    this.words = memory.words
    this.buffer = memory.buffer
    this.bytes = memory.bytes
    this.words64 = new BigInt64Array(memory.buffer, 0, memory.layout.headerBytes >> 3)
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.ringStart = memory.layout.headerBytes
    this.ringWord = this.ringStart >> 2
    this.slotCount = memory.layout.slotCount
    this.wakeProducers = wakeProducers
    this.slotAlive = options.slotAlive
    this.claimTimeout = options.claimTimeout ?? DEFAULT_CLAIM_TIMEOUT_MS
    this.now = options.now ?? performance.now.bind(performance)
    this.plainPublish = mode.plain
    this.fence = mode.plain ? mode.fence : null
    this.position = Atomics.load(this.words, HEAD)
    this.releasedPosition = this.position
    this.releasedHigh = loadPositionHigh(this.words, L.READ_POSITION_OFFSET)
    this.knownTail = this.position
  }

  /**
   * Finds the next message frame from `position`, skipping padding; sets
   * `length` and `type` and returns its position, or -1 when the frame there is
   * not ready (not written, or claimed). Moves `position` past skipped frames.
   */
  private next(): number {
    const words = this.words
    let position = this.position
    for (let skipped = 0; ; ) {
      // nothing is claimed beyond the tail: look at it again only when the frames before it are read
      if (position === this.knownTail && position === this.loadTail()) {
        this.position = position
        return -1
      }
      const index = position & this.mask
      const at = this.ringWord + (index >> 2)
      // SYNC POINT (commit → acquire): the type word first; seeing MESSAGE makes length and payload visible
      const typeWord = Atomics.load(words, at + 1)
      const frameType = (typeWord >>> 16) & 0xff
      if (frameType === FRAME_MESSAGE) {
        const length = words[at]!
        if (length < 0 || length > this.maxMessage || index + frameBytes(length) > this.capacity || (typeWord >>> 24) >= this.slotCount || this.pastTail(position, frameBytes(length))) {
          throw corrupt(this.memory, `frame at ring index ${index} has length ${length}, writer slot ${typeWord >>> 24}`)
        }
        this.position = position
        this.length = length
        this.type = typeWord & 0xffff
        return position
      }
      if (frameType === FRAME_PADDING) {
        const skip = this.skipBytes(index, words[at]! + FRAME_HEADER_BYTES)
        if (this.pastTail(position, skip)) throw corrupt(this.memory, `padding frame at ring index ${index} runs past the tail`)
        position = (position + skip) | 0
        this.position = position
        if ((skipped += skip) > this.capacity) throw corrupt(this.memory, 'padding frames run round the whole ring')
        continue
      }
      if (frameType === FRAME_NONE || frameType === FRAME_CLAIMED) {
        this.position = position
        return -1
      }
      if (frameType === FRAME_REVOKED) {
        // revoked by an earlier consumer of this segment and not yet acknowledged: hold it, read past
        const size = this.skipBytes(index, frameBytes(words[at]!))
        if (this.pastTail(position, size)) throw corrupt(this.memory, `revoked frame at ring index ${index} runs past the tail`)
        const slot = typeWord >>> 24
        if (slot < L.FIRST_PRODUCER_SLOT || slot >= this.slotCount) throw corrupt(this.memory, `revoked frame at ring index ${index} names slot ${slot}`)
        this.hold(position, slot)
        position = (position + size) | 0
        this.position = position
        continue
      }
      throw corrupt(this.memory, `frame at ring index ${index} has type ${frameType}`)
    }
  }

  /**
   * Loads the tail. SYNC POINT (claim → acquire): every claim before it was made;
   * it is checked to be within one ring ahead of the head.
   */
  private loadTail(): number {
    const tail = Atomics.load(this.words, TAIL)
    const ahead = (tail - this.releasedPosition) | 0
    if (ahead < 0 || ahead > this.capacity || (tail & 7) !== 0 || ((tail - this.position) | 0) < 0) {
      throw corrupt(this.memory, `tail ${tail >>> 0} is not within the ring ahead of the head ${this.releasedPosition >>> 0}`)
    }
    this.knownTail = tail
    return tail
  }

  /**
   * Whether a frame of `size` bytes at `position` ends past the tail last
   * loaded: a claim is taken whole, by one compare-exchange, so one that starts
   * before a tail ends at or before it (a frame there was written by no producer).
   */
  private pastTail(position: number, size: number): boolean {
    return ((this.knownTail - position) | 0) < size
  }

  /** Checks that a frame of `size` bytes at ring index `index` is 8-byte sized and ends inside the ring; returns it. */
  private skipBytes(index: number, size: number): number {
    if (!(size >= FRAME_HEADER_BYTES) || (size & 7) !== 0 || index + size > this.capacity) {
      throw corrupt(this.memory, `frame at ring index ${index} covers ${size} bytes`)
    }
    return size
  }

  private hold(position: number, slot: number): void {
    if (this.holds.length === 0 || this.holds[this.holds.length - 1]!.position !== position) this.holds.push({ position, slot })
  }

  /**
   * The frame at the read position is not ready: resolve it if its claimer is
   * dead (skip it, counted) or has held it past claimTimeout (revoke it).
   * True when the read position moved. Cheap when nothing is wrong: one tail load.
   */
  unblock(): boolean {
    const words = this.words
    const position = this.position
    const index = position & this.mask
    const at = this.ringWord + (index >> 2)
    const typeWord = Atomics.load(words, at + 1)
    const frameType = (typeWord >>> 16) & 0xff
    if (frameType === FRAME_CLAIMED) {
      const slot = typeWord >>> 24
      if (slot < L.FIRST_PRODUCER_SLOT || slot >= this.slotCount) throw corrupt(this.memory, `claimed frame at ring index ${index} names slot ${slot}`)
      const size = this.skipBytes(index, frameBytes(Atomics.load(words, at)))
      this.loadTail()
      if (this.pastTail(position, size)) throw corrupt(this.memory, `claimed frame at ring index ${index} runs past the tail`)
      if (!this.blockedLongEnough(position)) {
        this.blockingSlot = slot
        return false
      }
      if (!this.slotAlive(slot)) {
        // its producer died between claim and commit: its bytes are half written, never delivered
        if (Atomics.load(words, at + 1) !== typeWord) return true
        this.skipDead(size, slot)
        return true
      }
      this.blockingSlot = slot
      if (this.now() - this.blockedSince < this.claimTimeout) return false
      // alive but stuck past the timeout: revoke, read past, release nothing from here until it acknowledges
      if (Atomics.compareExchange(words, at + 1, typeWord, L.frameTypeWord(FRAME_REVOKED, 0, slot)) !== typeWord) return true
      this.losses.lostRevoked++
      this.counts.missed++
      this.hold(position, slot)
      this.advancePast(size)
      return true
    }
    // a frame there now: ready if the tail says it was claimed (past the tail nobody wrote it)
    if (frameType !== FRAME_NONE) return (frameType === FRAME_MESSAGE || frameType === FRAME_PADDING) && this.loadTail() !== position
    const tail = this.loadTail()
    if (tail === position) {
      this.blockingSlot = -1
      return false
    }
    // claimed (the tail moved past) but no marker yet: whose claim record names this position?
    if (!this.blockedLongEnough(position)) return false
    const candidates: number[] = []
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < this.slotCount; slot++) {
      const record = this.memory.layout.slots[slot]!
      if (Atomics.load(words, L.word(record.claimBytes)) !== 0 && Atomics.load(words, L.word(record.claimPosition)) === position) candidates.push(slot)
    }
    for (const slot of candidates) {
      if (this.slotAlive(slot)) {
        // writing its marker right now, or a loser of the same compare-exchange about to retry
        this.blockingSlot = slot
        return false
      }
    }
    // every candidate is dead: the frame cannot change any more, unless its marker landed meanwhile
    if (Atomics.load(words, at + 1) !== 0) return true
    const available = (tail - position) | 0
    const fits = candidates.filter((slot) => {
      const bytes = Atomics.load(words, L.word(this.memory.layout.slots[slot]!.claimBytes))
      if (bytes <= 0 || (bytes & 7) !== 0 || bytes > available) return false
      const end = (position + bytes) | 0
      // the claim's end is the tail, or the start of a frame written or claimed since
      return end === tail || Atomics.load(words, this.ringWord + ((end & this.mask) >> 2) + 1) !== 0 || this.recordAt(end)
    })
    if (fits.length === 0) {
      this.blockingSlot = candidates[0] ?? -1
      return false
    }
    // a record of a loser that claimed less ends inside the winner's claim, which nobody wrote (zero);
    // one that claimed more may end inside a later payload: the smallest consistent claim is the winner's
    const bytesOf = (slot: number): number => Atomics.load(words, L.word(this.memory.layout.slots[slot]!.claimBytes))
    const slot = fits.reduce((best, other) => (bytesOf(other) < bytesOf(best) ? other : best))
    const bytes = bytesOf(slot)
    this.skipDead(bytes, slot)
    for (const other of candidates) if (other !== slot) this.clearRecord(other)
    return true
  }

  /**
   * Whether the read position has been blocked at `position` for at least
   * LIVENESS_GRACE_MS: a consumer that catches up with a producer copying its
   * message finds its claim every time, and must not ask the kernel whether
   * the producer lives each time.
   */
  private blockedLongEnough(position: number): boolean {
    if (this.blockedSince === -1 || this.blockedPosition !== position) {
      this.blockedSince = this.now()
      this.blockedPosition = position
      return false
    }
    return this.now() - this.blockedSince >= LIVENESS_GRACE_MS
  }

  /** Whether some producer's claim record names `position`. */
  private recordAt(position: number): boolean {
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < this.slotCount; slot++) {
      const record = this.memory.layout.slots[slot]!
      if (Atomics.load(this.words, L.word(record.claimBytes)) !== 0 && Atomics.load(this.words, L.word(record.claimPosition)) === position) return true
    }
    return false
  }

  private skipDead(size: number, slot: number): void {
    this.losses.lostUncommitted++
    this.counts.missed++
    this.clearRecord(slot)
    this.advancePast(size)
  }

  /** Forgets a dead producer's claim record, so that its slot can be taken again. */
  private clearRecord(slot: number): void {
    Atomics.store(this.words, L.word(this.memory.layout.slots[slot]!.claimBytes), 0)
  }

  private advancePast(size: number): void {
    this.position = (this.position + size) | 0
    this.blockedSince = -1
    this.blockingSlot = -1
  }

  /**
   * Whether the frame at the read position can be handed out or skipped, or a
   * stuck claim's time is up, or the stream ended: the wake-up condition. Only
   * frames before the tail count (what lies past it was written by nobody).
   */
  readonly isReady = (): boolean => {
    // the frame's type word first: while a producer is writing it, the tail (a line all producers write) is not touched
    const typeWord = Atomics.load(this.words, this.ringWord + ((this.position & this.mask) >> 2) + 1)
    const frameType = (typeWord >>> 16) & 0xff
    if (frameType === FRAME_CLAIMED) {
      // a claim held past the timeout can be revoked; a claim without its marker yet cannot (its size is unknown)
      if (this.blockedSince !== -1 && this.now() - this.blockedSince >= this.claimTimeout) return true
    } else if (frameType !== FRAME_NONE && Atomics.load(this.words, TAIL) !== this.position) return true
    return Atomics.load(this.words, END_OF_STREAM) !== 0 && this.ended
  }

  /** True once the stream was ended (Producer end()), no producer is attached, and every message was read. */
  get ended(): boolean {
    if (Atomics.load(this.words, END_OF_STREAM) === 0) return false
    // padding after the last message (a shorter commit, an abort) is not a message still to come
    if (Atomics.load(this.words, TAIL) !== this.position) {
      const caughtUp = this.releasedPosition === this.position
      this.next()
      // Release the padding skipped, unless a view handed out before it is still held: END_OF_STREAM
      // is set by any producer that closes, so a consumer asks this on every empty poll while the
      // others write on, and padding kept unreleased here would hold their room forever
      if (caughtUp && this.position !== this.releasedPosition && !this.stopped) this.release()
    }
    if (Atomics.load(this.words, TAIL) !== this.position) return false
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < this.slotCount; slot++) if (this.slotAlive(slot)) return false
    // a producer may have committed just before it detached
    return Atomics.load(this.words, TAIL) === this.position
  }

  /** How far the head may move now: the read position, or the oldest revoked claim not yet acknowledged. */
  private releasable(): number {
    const holds = this.holds
    while (holds.length > 0) {
      const { position, slot } = holds[0]!
      const typeWord = Atomics.load(this.words, this.ringWord + ((position & this.mask) >> 2) + 1)
      if (((typeWord >>> 16) & 0xff) === FRAME_REVOKED && this.slotAlive(slot)) return position
      holds.shift()
    }
    return this.position
  }

  /** Zeroes the frames before `position` and publishes it as the head: the producers may claim that room. */
  private publish(position: number): void {
    const from = this.releasedPosition
    const bytes = (position - from) | 0
    const start = from & this.mask
    // SYNC POINT (release → reuse): zeroed before the head moves, so a frame not yet written reads NONE
    if (start + bytes <= this.capacity) this.bytes.fill(0, this.ringStart + start, this.ringStart + start + bytes)
    else {
      this.bytes.fill(0, this.ringStart + start, this.ringStart + this.capacity)
      this.bytes.fill(0, this.ringStart, this.ringStart + start + bytes - this.capacity)
    }
    const wrapped = position >= 0 && from < 0
    this.releasedPosition = position
    if (wrapped) storeWrappedPosition(this.words64, L.READ_POSITION_OFFSET, ++this.releasedHigh, position)
    else if (this.plainPublish) {
      this.words[HEAD] = position
      if (this.fence !== null) this.fence()
    } else Atomics.store(this.words, HEAD, position)
    // DEKKER PAIR (producer park): a producer raises PRODUCERS_WAITING and announces itself, fences, then re-reads the head
    const waiting = this.plainPublish ? this.words[PRODUCERS_WAITING] : Atomics.load(this.words, PRODUCERS_WAITING)
    if (waiting !== 0) this.wakeProducers()
    if ((this.releasedSinceSweep += bytes) > this.capacity) this.sweepRecords()
  }

  /**
   * Clears the claim records of dead producers that lost a claim's
   * compare-exchange and died before trying again: the head passed the
   * position they name, so no frame is theirs. Run once a lap, so the 32-bit
   * distance to the head cannot wrap.
   */
  private sweepRecords(): void {
    this.releasedSinceSweep = 0
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < this.slotCount; slot++) {
      const record = this.memory.layout.slots[slot]!
      if (Atomics.load(this.words, L.word(record.claimBytes)) === 0) continue
      const behind = (this.releasedPosition - Atomics.load(this.words, L.word(record.claimPosition))) | 0
      if (behind > 0 && !this.slotAlive(slot)) this.clearRecord(slot)
    }
  }

  /** Position after the last frame handed out or skipped: what release() would give back up to. */
  get readPosition(): number {
    return this.position
  }

  /**
   * Releases the frames before `position` only (a position readPosition had
   * after some frame was handed out): the frames handed out after it stay
   * valid. For readers whose messages are done out of order, releasing the
   * oldest first. Never past readPosition, nor past a revoked claim still held.
   */
  releaseTo(position: number): void {
    const limit = this.holds.length === 0 ? this.position : this.releasable()
    const target = ((limit - position) | 0) < 0 ? limit : position
    if (((target - this.releasedPosition) | 0) > 0) this.publish(target)
  }

  release(): void {
    if (this.releasedPosition === this.position) return
    const position = this.holds.length === 0 ? this.position : this.releasable()
    if (position !== this.releasedPosition) this.publish(position)
  }

  /**
   * Whether the read position has found nothing ready STALL_POLLS times in a
   * row: only then is unblock() worth its clock read and tail load. A consumer
   * that catches up with a producer finds its claim on most polls, and the
   * claim is committed a moment later.
   */
  private stalled(): boolean {
    if (this.position !== this.stalledAt) {
      this.stalledAt = this.position
      this.stalls = 0
      return false
    }
    return ++this.stalls >= STALL_POLLS
  }

  tryRead(): Uint8Array | null {
    if (this.releasedPosition !== this.position) this.release()
    let position = this.next()
    if (position === -1) {
      if (!this.stalled() || !this.unblock()) return null
      position = this.next()
      if (position === -1) return null
    }
    this.lastType = this.type
    this.position = (position + frameBytes(this.length)) | 0
    this.counts.count(this.length)
    return new Uint8Array(this.buffer, this.ringStart + FRAME_HEADER_BYTES + (position & this.mask), this.length)
  }

  drain(handler: (message: Uint8Array) => void, limit: number, hold = false): number {
    const buffer = this.buffer
    return this.drainRaw((_bytes, offset, length) => handler(new Uint8Array(buffer, offset, length)), limit, hold)
  }

  drainRaw(handler: RawHandler, limit: number, hold = false): number {
    if (!hold) this.release()
    const bytes = this.bytes
    let count = 0
    try {
      while (count < limit && !this.stopped) {
        let position = this.next()
        if (position === -1) {
          if (!this.stalled() || !this.unblock()) break
          position = this.next()
          if (position === -1) break
        }
        const length = this.length
        const start = this.ringStart + FRAME_HEADER_BYTES + (position & this.mask)
        // handed out: a close() from inside the handler releases up to here
        this.position = (position + frameBytes(length)) | 0
        count++
        this.counts.count(length)
        handler(bytes, start, length, this.type)
      }
    } finally {
      if (!hold && !this.stopped) this.release()
    }
    return count
  }

  /** Bytes claimed and not yet released. */
  get fill(): number {
    return (Atomics.load(this.words, TAIL) - this.releasedPosition) | 0
  }

  stop(): void {
    if (this.stopped) return
    this.release()
    this.stopped = true
  }
}


