/**
 * The single-producer single-consumer ring protocol, over a RingMemory
 * (lib/memory.ts): a mapped segment, or a SharedArrayBuffer in-process.
 * No OS calls, no waiting, no async, no addon: SpscWriter and SpscReader only
 * move positions and frames (lib/frames.ts), and call `wakePeer` when the other
 * side has announced that it is parked.
 *
 * Positions are 64-bit byte counts that only grow (lib/layout.ts); the hot
 * paths keep their low 32 bits as int32 and the high word apart. A frame
 * starts at ring index `position & (capacity - 1)`. The producer owns the
 * producer position, the consumer owns the consumer position; each reads only
 * the low word of the other's.
 */
import { SideCounts } from './counters'
import { corrupt, FrameParser, frameBytes, roomNeeded, tooLarge } from './frames'
import * as L from './layout'
import type { RingMemory } from './memory'
import type { RawHandler, RingReader, RingWriter } from './ring'
import { loadPositionHigh, type PublishMode, storeWrappedPosition } from './publish-mode'

export { FENCED_PUBLISH, type PublishMode } from './publish-mode'
export type { RawHandler } from './ring'

// one layout for every SPSC segment: module-local word indices (see lib/layout.ts)
const PRODUCER_SLOT = L.SPSC_LAYOUT.slots[L.FIRST_PRODUCER_SLOT]!
const CONSUMER_SLOT = L.SPSC_LAYOUT.slots[L.CONSUMER_SLOT]!
const PRODUCER_POSITION = L.word(L.WRITE_POSITION_OFFSET)
const CONSUMER_POSITION = L.word(L.READ_POSITION_OFFSET)
const CONSUMER_WAITING = L.word(CONSUMER_SLOT.waiting)
const PRODUCER_WAITING = L.word(PRODUCER_SLOT.waiting)
const END_OF_STREAM = L.word(L.END_OF_STREAM_OFFSET)
const WAITING_NONE = L.WAITING_NONE
const HEADER_BYTES = L.SPSC_LAYOUT.headerBytes
const RING_WORD = HEADER_BYTES >> 2
const PAYLOAD_OFFSET = HEADER_BYTES + L.FRAME_HEADER_BYTES
/** Type word of a message with tag 0 from the producer's slot; a tag is OR-ed in. */
const MESSAGE_TYPE_WORD = L.frameTypeWord(L.FRAME_MESSAGE, 0, L.FIRST_PRODUCER_SLOT)
const PADDING_TYPE_WORD = L.frameTypeWord(L.FRAME_PADDING, 0, L.FIRST_PRODUCER_SLOT)

function checkSpsc(memory: RingMemory): void {
  if (memory.layout !== L.SPSC_LAYOUT) throw new Error(`ring '${memory.name}' is not laid out as an SPSC ring`)
}

export class SpscWriter implements RingWriter {
  /**
   * The type word of the messages it writes (OR-ed with the tag): the producer's
   * slot, or L.WRITER_REDELIVERED while a work queue hands on the messages of a
   * worker that died (lib/work-queue.ts).
   */
  messageWord = MESSAGE_TYPE_WORD
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly bytes: Uint8Array
  private readonly capacity: number
  private readonly mask: number
  readonly maxMessage: number
  private readonly wakePeer: () => void
  /** Publish with a plain store (see PublishMode). */
  private readonly plainPublish: boolean
  private readonly fence: (() => void) | null
  private readonly words64: BigInt64Array
  /** Where the next frame goes (low word); published to the consumer on each write/commit. */
  private position: number
  /** High word of the producer position. */
  private positionHigh: number
  /** Last consumer position read; re-read only when the ring looks full. */
  private consumerPosition: number
  /** Start of the claimed message frame, or -1 when nothing is claimed. */
  private claimedPosition = -1
  private claimedLength = 0
  private stopped = false
  /** Messages, bytes, full rings and padding frames, for the slot's counters line. */
  readonly counts: SideCounts

  constructor(memory: RingMemory, wakePeer: () => void, mode: PublishMode) {
    checkSpsc(memory)
    this.memory = memory
    this.counts = new SideCounts(memory, L.FIRST_PRODUCER_SLOT)
    this.words = memory.words
    this.bytes = memory.bytes
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.wakePeer = wakePeer
    this.plainPublish = mode.plain
    this.fence = mode.plain ? mode.fence : null
    this.words64 = new BigInt64Array(memory.buffer, 0, HEADER_BYTES >> 3)
    this.position = Atomics.load(this.words, PRODUCER_POSITION)
    this.positionHigh = loadPositionHigh(this.words, L.WRITE_POSITION_OFFSET)
    this.consumerPosition = Atomics.load(this.words, CONSUMER_POSITION)
  }

  get hasClaim(): boolean {
    return this.claimedPosition !== -1
  }

  /** Bytes published and not yet released by the consumer. */
  get fill(): number {
    return (this.position - Atomics.load(this.words, CONSUMER_POSITION)) | 0
  }

  /**
   * Room check for a message of `length` bytes: returns the position where its
   * frame goes (after a padding frame, if one is needed), or -1 when full.
   */
  private reserve(length: number): number {
    const size = frameBytes(length)
    const position = this.position
    const index = position & this.mask
    const untilEnd = this.capacity - index
    const needed = roomNeeded(size, untilEnd)
    if (((position - this.consumerPosition) | 0) + needed > this.capacity) {
      // SYNC POINT (release → reuse): the consumer released everything before this position; we may overwrite it
      const consumerPosition = Atomics.load(this.words, CONSUMER_POSITION)
      const fill = (position - consumerPosition) | 0
      if (fill < 0 || fill > this.capacity || (consumerPosition & 7) !== 0) {
        throw corrupt(this.memory, `consumer position ${consumerPosition >>> 0} is not within the ring behind the producer position ${position >>> 0}`)
      }
      this.consumerPosition = consumerPosition
      if (fill + needed > this.capacity) {
        this.counts.noRoom()
        return -1
      }
      this.counts.roomFound()
    }
    if (size <= untilEnd) return position
    // the frame would cross the end: a padding frame covers the rest of the ring
    const at = RING_WORD + (index >> 2)
    this.words[at] = untilEnd - L.FRAME_HEADER_BYTES
    this.words[at + 1] = PADDING_TYPE_WORD
    this.counts.extra++
    return (position + untilEnd) | 0
  }

  /** Publishes everything up to `position` and wakes the consumer if it sleeps. */
  private publish(position: number): void {
    const wrapped = position >= 0 && this.position < 0
    this.position = position
    // SYNC POINT (publish → acquire): frames (headers and payloads) written before this store are visible to the consumer that loads it
    if (wrapped) storeWrappedPosition(this.words64, L.WRITE_POSITION_OFFSET, ++this.positionHigh, position)
    else if (this.plainPublish) {
      this.words[PRODUCER_POSITION] = position
      if (this.fence !== null) this.fence()
    } else Atomics.store(this.words, PRODUCER_POSITION, position)
    // DEKKER PAIR (consumer park): the consumer announces itself, fences, then re-reads our
    // position: either it sees this position, or we see its announcement here. (Fenced mode
    // pairs an Atomics.store with an Atomics.load, sequentially consistent on every CPU.)
    const waiting = this.plainPublish ? this.words[CONSUMER_WAITING] : Atomics.load(this.words, CONSUMER_WAITING)
    if (waiting !== WAITING_NONE) this.wakePeer()
  }

  checkLength(length: number): void {
    if (length > this.maxMessage) throw tooLarge(this.memory, length)
  }

  /**
   * Copies `message` into the ring as one frame; false when there is no room.
   * `length` is its intrinsic byte length (uint8ArrayLength), `type` its message
   * type tag (0 to 65535), both checked by the caller.
   */
  tryWrite(message: Uint8Array, length: number, type = 0): boolean {
    if (length > this.maxMessage) this.checkLength(length)
    const position = this.reserve(length)
    if (position === -1) return false
    const index = position & this.mask
    const at = RING_WORD + (index >> 2)
    this.words[at] = length
    this.words[at + 1] = this.messageWord | type
    this.bytes.set(message, PAYLOAD_OFFSET + index)
    this.publish((position + frameBytes(length)) | 0)
    this.counts.count(length)
    return true
  }

  /**
   * Whether a message of `length` bytes would fit now, with `slack` bytes to
   * spare (re-reads the consumer position).
   */
  hasRoomFor(length: number, slack = 0): boolean {
    const index = this.position & this.mask
    const needed = roomNeeded(frameBytes(length), this.capacity - index)
    const fill = (this.position - Atomics.load(this.words, CONSUMER_POSITION)) | 0
    return fill < 0 || fill > this.capacity || fill + needed + slack <= this.capacity
  }

  /** A view of `length` writable bytes in the ring, or null when full. Publish with commit(). */
  tryClaim(length: number): Uint8Array | null {
    const offset = this.tryClaimRaw(length)
    return offset === -1 ? null : new Uint8Array(this.memory.buffer, offset, length)
  }

  /**
   * tryClaim() without a view: the byte offset in the segment's bytes where the
   * `length` claimed bytes start, or -1 when full (no allocation per message).
   */
  tryClaimRaw(length: number): number {
    this.checkLength(length)
    const position = this.reserve(length)
    if (position === -1) return -1
    this.claimedPosition = position
    this.claimedLength = length
    return PAYLOAD_OFFSET + (position & this.mask)
  }

  /** Publishes the claimed frame, keeping its first `length` bytes, with message type tag `type`. */
  commit(length: number = this.claimedLength, type = 0): void {
    const position = this.claimedPosition
    this.claimedPosition = -1
    const at = RING_WORD + ((position & this.mask) >> 2)
    this.words[at] = length
    this.words[at + 1] = this.messageWord | type
    this.publish((position + frameBytes(length)) | 0)
    this.counts.count(length)
  }

  /** Drops the claim: nothing is published; a padding frame written by the claim is overwritten later. */
  abort(): void {
    this.claimedPosition = -1
  }

  get claimLength(): number {
    return this.claimedLength
  }

  /** Marks the end of the stream: the consumer drains what was published, then ends. */
  end(): void {
    if (this.stopped) return
    this.stopped = true
    this.claimedPosition = -1
    // SYNC POINT (end of stream): a consumer that sees END_OF_STREAM also sees every position published before it
    Atomics.store(this.words, END_OF_STREAM, 1)
    if (Atomics.load(this.words, CONSUMER_WAITING) !== WAITING_NONE) this.wakePeer()
  }
}

export class SpscReader implements RingReader {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly buffer: ArrayBufferLike
  private readonly capacity: number
  private readonly mask: number
  private readonly frames: FrameParser
  private readonly wakePeer: () => void
  /** Publish with a plain store (see PublishMode). */
  private readonly plainPublish: boolean
  private readonly fence: (() => void) | null
  private readonly words64: BigInt64Array
  /** Position after the last message handed out (released or not). */
  private position: number
  /** Position published to the producer: everything before it may be overwritten. */
  private releasedPosition: number
  /** High word of the released position. */
  private releasedHigh: number
  /** Message type tag of the last message tryRead() returned. */
  lastType = 0
  /** Whether the message last handed out (tryRead, or the one in a drain handler) was marked redelivered (work queues). */
  lastRedelivered = false
  /** Messages handed out that were marked redelivered. */
  redelivered = 0
  /** Last producer position read. */
  private producerPosition: number
  private stopped = false
  /** Messages, bytes and redeliveries, for the slot's counters line. */
  readonly counts: SideCounts

  constructor(memory: RingMemory, wakePeer: () => void, mode: PublishMode) {
    checkSpsc(memory)
    this.memory = memory
    this.counts = new SideCounts(memory, L.CONSUMER_SLOT)
    this.words = memory.words
    this.buffer = memory.buffer
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.frames = new FrameParser(memory)
    this.wakePeer = wakePeer
    this.plainPublish = mode.plain
    this.fence = mode.plain ? mode.fence : null
    this.words64 = new BigInt64Array(memory.buffer, 0, HEADER_BYTES >> 3)
    this.position = Atomics.load(this.words, CONSUMER_POSITION)
    this.releasedHigh = loadPositionHigh(this.words, L.READ_POSITION_OFFSET)
    this.releasedPosition = this.position
    this.producerPosition = this.position
  }

  /**
   * Loads the producer position and checks it. SYNC POINT (publish → acquire):
   * every frame the producer wrote before publishing this position is visible from here on.
   */
  private loadProducerPosition(): number {
    const producerPosition = Atomics.load(this.words, PRODUCER_POSITION)
    const fill = (producerPosition - this.position) | 0
    if (fill < 0 || fill > this.capacity || (producerPosition & 7) !== 0) {
      throw corrupt(this.memory, `producer position ${producerPosition >>> 0} is not within the ring ahead of the consumer position ${this.position >>> 0}`)
    }
    this.producerPosition = producerPosition
    return producerPosition
  }

  /** Whether a message (or the end of the stream) is waiting: the wake-up condition. */
  readonly isReady = (): boolean => {
    return Atomics.load(this.words, PRODUCER_POSITION) !== this.position || Atomics.load(this.words, END_OF_STREAM) !== 0
  }

  /** True once the producer has ended the stream and every message was read. */
  get ended(): boolean {
    // SYNC POINT (end of stream): END_OF_STREAM first: seeing it makes the final producer position visible
    return Atomics.load(this.words, END_OF_STREAM) !== 0 && Atomics.load(this.words, PRODUCER_POSITION) === this.position
  }

  /** Publishes the consumer position: the producer may reuse everything before it. */
  private publish(position: number): void {
    const wrapped = position >= 0 && this.releasedPosition < 0
    this.releasedPosition = position
    // SYNC POINT (release → reuse): we are done reading every frame before `position`; the producer that loads it may overwrite them
    if (wrapped) storeWrappedPosition(this.words64, L.READ_POSITION_OFFSET, ++this.releasedHigh, position)
    else if (this.plainPublish) {
      this.words[CONSUMER_POSITION] = position
      if (this.fence !== null) this.fence()
    } else Atomics.store(this.words, CONSUMER_POSITION, position)
    // DEKKER PAIR (producer park), as in SpscWriter.publish
    const waiting = this.plainPublish ? this.words[PRODUCER_WAITING] : Atomics.load(this.words, PRODUCER_WAITING)
    if (waiting !== WAITING_NONE) this.wakePeer()
  }

  private noteRedelivered(redelivered: boolean): void {
    this.lastRedelivered = redelivered
    if (redelivered) {
      this.redelivered++
      this.counts.extra++
    }
  }

  /** Releases the message handed out by tryRead(), if any. */
  release(): void {
    if (this.releasedPosition !== this.position) this.publish(this.position)
  }

  /** The next message as a view into the ring, or null. The view is valid until the next read or release(). */
  tryRead(): Uint8Array | null {
    if (this.releasedPosition !== this.position) this.publish(this.position)
    let end = this.producerPosition
    if (end === this.position) {
      end = this.loadProducerPosition()
      if (end === this.position) return null
    }
    const frames = this.frames
    const position = frames.next(this.position, end)
    const length = frames.length
    this.lastType = frames.type
    if (frames.redelivered || this.lastRedelivered) this.noteRedelivered(frames.redelivered)
    this.position = (position + frameBytes(length)) | 0
    this.counts.count(length)
    return new Uint8Array(this.buffer, PAYLOAD_OFFSET + (position & this.mask), length)
  }

  /**
   * Calls `handler` with a view of each waiting message, up to `limit`, then
   * releases them all at once. A view is valid only during its call. If the
   * handler throws, the message it threw on counts as read; the rest stay.
   */
  drain(handler: (message: Uint8Array) => void, limit: number, hold = false): number {
    const buffer = this.buffer
    return this.drainRaw((_bytes, offset, length) => handler(new Uint8Array(buffer, offset, length)), limit, hold)
  }

  /**
   * drain() without a view per message: the handler gets the segment's bytes, an offset and a length.
   * With `hold`, neither what was handed out before nor this batch is released: release() (or
   * the next read that is not a held drain) gives it all back, so the bytes stay valid until then.
   */
  drainRaw(handler: RawHandler, limit: number, hold = false): number {
    if (!hold) this.release()
    const end = this.loadProducerPosition()
    const bytes = this.memory.bytes
    const frames = this.frames
    let position = this.position
    let count = 0
    try {
      while (position !== end && count < limit && !this.stopped) {
        position = frames.next(position, end)
        const length = frames.length
        const start = PAYLOAD_OFFSET + (position & this.mask)
        position = (position + frameBytes(length)) | 0
        // handed out: a close() from inside the handler releases up to here
        this.position = position
        count++
        if (frames.redelivered || this.lastRedelivered) this.noteRedelivered(frames.redelivered)
        this.counts.count(length)
        handler(bytes, start, length, frames.type)
      }
    } finally {
      // one release for the whole batch
      if (!hold && !this.stopped && this.releasedPosition !== this.position) this.publish(this.position)
    }
    return count
  }

  /** Messages' bytes published and not yet released. */
  get fill(): number {
    return (Atomics.load(this.words, PRODUCER_POSITION) - this.releasedPosition) | 0
  }

  /** Releases what was handed out and stops: later calls read nothing. */
  stop(): void {
    if (this.stopped) return
    this.release()
    this.stopped = true
  }
}
