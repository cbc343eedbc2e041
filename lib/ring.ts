/**
 * The single-producer single-consumer ring protocol, over a segment's memory.
 * No OS calls, no waiting, no async: RingWriter and RingReader only move
 * positions and frames (lib/layout.ts), and call `wakePeer` when the other side
 * has announced that it is parked.
 *
 * Positions are byte counts that only grow (mod 2^32, kept as int32); a frame
 * starts at ring index `position & (capacity - 1)`. The producer owns the
 * producer position, the consumer owns the consumer position; each only reads
 * the other's.
 */
import { ShmqError } from './errors'
import { usePlainPublish } from './fence'
import * as L from './layout'

const PRODUCER_POSITION = L.word(L.PRODUCER_POSITION_OFFSET)
const CONSUMER_POSITION = L.word(L.CONSUMER_POSITION_OFFSET)
const CONSUMER_WAITING = L.word(L.CONSUMER_WAITING_OFFSET)
const PRODUCER_WAITING = L.word(L.PRODUCER_WAITING_OFFSET)
const END_OF_STREAM = L.word(L.END_OF_STREAM_OFFSET)
const RING_WORD = L.HEADER_BYTES >> 2
// Frame sizes are written out here as (length + 15) & ~7, the formula of
// layout.frameBytes(): calling it through the module object measured 5-8% slower
// 64 B streams than the inline form (npm run bench, interleaved runs).
const WAITING_NONE = L.WAITING_NONE

// Sizes of a caller's bytes come from the engine's own TypedArray internals,
// never from properties a caller can redefine (an own `length`, a subclass
// getter, a Proxy): a lying size would overwrite unread frames.
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object
const intrinsicByteLength = Object.getOwnPropertyDescriptor(typedArrayPrototype, 'byteLength')!.get as (this: unknown) => number
const intrinsicTag = Object.getOwnPropertyDescriptor(typedArrayPrototype, Symbol.toStringTag)!.get as (this: unknown) => string | undefined

/**
 * The byte length of `message` if it is a real Uint8Array (a Buffer counts), read from the
 * engine's internal slot; -1 for anything else, a Proxy of a Uint8Array included.
 */
export function uint8ArrayLength(message: unknown): number {
  // the tag getter returns undefined, without throwing, for anything that is not a TypedArray
  return intrinsicTag.call(message) === 'Uint8Array' ? intrinsicByteLength.call(message) : -1
}

/** The memory a ring runs on: one segment's words and bytes. */
export interface RingMemory {
  readonly name: string
  readonly buffer: ArrayBuffer
  readonly words: Int32Array
  readonly bytes: Uint8Array
  readonly capacity: number
  readonly maxMessage: number
}

function corrupt(memory: RingMemory, what: string): ShmqError {
  return new ShmqError('ERR_SHMQ_CORRUPT', `segment '${memory.name}' is corrupt: ${what}; unlink it and create it anew`, { segment: memory.name })
}

export class RingWriter {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly bytes: Uint8Array
  private readonly capacity: number
  private readonly mask: number
  readonly maxMessage: number
  private readonly wakePeer: () => void
  /** Where the next frame goes; published to the consumer on each write/commit. */
  private position: number
  /** Last consumer position read; re-read only when the ring looks full. */
  private consumerPosition: number
  /** Start of the claimed message frame, or -1 when nothing is claimed. */
  private claimedPosition = -1
  private claimedLength = 0
  private stopped = false
  /** Publish with a plain store; the peer's park supplies the fence (lib/fence.ts). */
  private readonly plainPublish = usePlainPublish()

  constructor(memory: RingMemory, wakePeer: () => void) {
    this.memory = memory
    this.words = memory.words
    this.bytes = memory.bytes
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.wakePeer = wakePeer
    this.position = Atomics.load(this.words, PRODUCER_POSITION)
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
    const frameBytes = (length + 15) & ~7
    const position = this.position
    const index = position & this.mask
    const untilEnd = this.capacity - index
    const needed = frameBytes <= untilEnd ? frameBytes : untilEnd + frameBytes
    if (((position - this.consumerPosition) | 0) + needed > this.capacity) {
      // SYNC POINT: the consumer released everything before this position; we may overwrite it
      const consumerPosition = Atomics.load(this.words, CONSUMER_POSITION)
      const fill = (position - consumerPosition) | 0
      if (fill < 0 || fill > this.capacity || (consumerPosition & 7) !== 0) {
        throw corrupt(this.memory, `consumer position ${consumerPosition >>> 0} is not within the ring behind the producer position ${position >>> 0}`)
      }
      this.consumerPosition = consumerPosition
      if (fill + needed > this.capacity) return -1
    }
    if (frameBytes <= untilEnd) return position
    // the frame would cross the end: a padding frame covers the rest of the ring
    const paddingWord = RING_WORD + (index >> 2)
    this.words[paddingWord] = untilEnd - L.FRAME_HEADER_BYTES
    this.words[paddingWord + 1] = L.FRAME_PADDING
    return (position + untilEnd) | 0
  }

  /** Publishes everything up to `position` and wakes the consumer if it sleeps. */
  private publish(position: number): void {
    this.position = position
    // SYNC POINT: frames (headers and payloads) written before this store are visible to the consumer that loads it
    if (this.plainPublish) this.words[PRODUCER_POSITION] = position
    else Atomics.store(this.words, PRODUCER_POSITION, position)
    // Dekker pair with the consumer's park(), which announces itself, fences, then re-reads our
    // position: either it sees this position, or we see its announcement here. (Fenced mode
    // pairs an Atomics.store with an Atomics.load, sequentially consistent on every CPU.)
    const waiting = this.plainPublish ? this.words[CONSUMER_WAITING] : Atomics.load(this.words, CONSUMER_WAITING)
    if (waiting !== WAITING_NONE) this.wakePeer()
  }

  checkLength(length: number): void {
    if (length > this.maxMessage) {
      throw new ShmqError(
        'ERR_SHMQ_TOO_LARGE',
        `message of ${length} bytes exceeds the maximum of ${this.maxMessage} for segment '${this.memory.name}': split it, or create the segment with a larger capacity/maxMessage`,
        { segment: this.memory.name },
      )
    }
  }

  /**
   * Copies `message` into the ring as one frame; false when there is no room.
   * `length` is its intrinsic byte length (uint8ArrayLength), checked by the caller.
   */
  tryWrite(message: Uint8Array, length: number): boolean {
    if (length > this.maxMessage) this.checkLength(length)
    const position = this.reserve(length)
    if (position === -1) return false
    const index = position & this.mask
    const headerWord = RING_WORD + (index >> 2)
    this.words[headerWord] = length
    this.words[headerWord + 1] = L.FRAME_MESSAGE
    this.bytes.set(message, L.HEADER_BYTES + index + L.FRAME_HEADER_BYTES)
    this.publish((position + ((length + 15) & ~7)) | 0)
    return true
  }

  /**
   * Whether a message of `length` bytes would fit now, with `slack` bytes to
   * spare (re-reads the consumer position).
   */
  hasRoomFor(length: number, slack = 0): boolean {
    const frameBytes = (length + 15) & ~7
    const index = this.position & this.mask
    const untilEnd = this.capacity - index
    const needed = frameBytes <= untilEnd ? frameBytes : untilEnd + frameBytes
    const fill = (this.position - Atomics.load(this.words, CONSUMER_POSITION)) | 0
    return fill < 0 || fill > this.capacity || fill + needed + slack <= this.capacity
  }

  /** A view of `length` writable bytes in the ring, or null when full. Publish with commit(). */
  tryClaim(length: number): Uint8Array | null {
    this.checkLength(length)
    const position = this.reserve(length)
    if (position === -1) return null
    this.claimedPosition = position
    this.claimedLength = length
    const start = L.HEADER_BYTES + (position & this.mask) + L.FRAME_HEADER_BYTES
    return new Uint8Array(this.memory.buffer, start, length)
  }

  /** Publishes the claimed frame, keeping its first `length` bytes (default: all). */
  commit(length: number = this.claimedLength): void {
    const position = this.claimedPosition
    this.claimedPosition = -1
    const headerWord = RING_WORD + ((position & this.mask) >> 2)
    this.words[headerWord] = length
    this.words[headerWord + 1] = L.FRAME_MESSAGE
    this.publish((position + ((length + 15) & ~7)) | 0)
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
    // SYNC POINT: a consumer that sees END_OF_STREAM also sees every position published before it
    Atomics.store(this.words, END_OF_STREAM, 1)
    if (Atomics.load(this.words, CONSUMER_WAITING) !== L.WAITING_NONE) this.wakePeer()
  }
}

/** A message handler that gets the segment's bytes, the message's offset and length: no allocation. */
export type RawHandler = (bytes: Uint8Array, offset: number, length: number) => void

export class RingReader {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly buffer: ArrayBuffer
  private readonly capacity: number
  private readonly mask: number
  private readonly maxMessage: number
  private readonly wakePeer: () => void
  /** Position after the last message handed out (released or not). */
  private position: number
  /** Position published to the producer: everything before it may be overwritten. */
  private releasedPosition: number
  /** Last producer position read. */
  private producerPosition: number
  /** Set by next(): payload length of the message found. */
  private messageLength = 0
  private stopped = false
  /** Publish with a plain store; the peer's park supplies the fence (lib/fence.ts). */
  private readonly plainPublish = usePlainPublish()

  constructor(memory: RingMemory, wakePeer: () => void) {
    this.memory = memory
    this.words = memory.words
    this.buffer = memory.buffer
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.wakePeer = wakePeer
    this.position = Atomics.load(this.words, CONSUMER_POSITION)
    this.releasedPosition = this.position
    this.producerPosition = this.position
  }

  /**
   * Loads the producer position and checks it. SYNC POINT: every frame the
   * producer wrote before publishing this position is visible from here on.
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
    // END_OF_STREAM first: seeing it makes the final producer position visible
    return Atomics.load(this.words, END_OF_STREAM) !== 0 && Atomics.load(this.words, PRODUCER_POSITION) === this.position
  }

  /**
   * Finds the message frame at `position` (skipping a padding frame), checks
   * it against `end`, sets messageLength and returns the frame's position.
   * Every value read from the ring is bounds-checked before use.
   */
  private next(position: number, end: number): number {
    let available = (end - position) | 0
    let index = position & this.mask
    let headerWord = RING_WORD + (index >> 2)
    let length = this.words[headerWord]!
    let type = this.words[headerWord + 1]!
    if (type === L.FRAME_PADDING) {
      const skip = this.capacity - index
      if (length !== skip - L.FRAME_HEADER_BYTES || skip >= available) {
        throw corrupt(this.memory, `padding frame at ring index ${index} claims ${length} bytes; the ring end is ${skip - L.FRAME_HEADER_BYTES} bytes away`)
      }
      position = (position + skip) | 0
      available -= skip
      index = 0
      headerWord = RING_WORD
      length = this.words[headerWord]!
      type = this.words[headerWord + 1]!
    }
    if (type !== L.FRAME_MESSAGE || length < 0 || length > this.maxMessage) {
      throw corrupt(this.memory, `frame at ring index ${index} has type ${type} and length ${length}`)
    }
    const frameBytes = (length + 15) & ~7
    if (frameBytes > available || index + frameBytes > this.capacity) {
      throw corrupt(this.memory, `frame at ring index ${index} (${frameBytes} bytes) runs past the published data or the ring end`)
    }
    this.messageLength = length
    return position
  }

  /** Publishes the consumer position: the producer may reuse everything before it. */
  private publish(position: number): void {
    this.releasedPosition = position
    // SYNC POINT: we are done reading every frame before `position`; the producer that loads it may overwrite them
    if (this.plainPublish) this.words[CONSUMER_POSITION] = position
    else Atomics.store(this.words, CONSUMER_POSITION, position)
    // Dekker pair with the producer's park(), as in RingWriter.publish
    const waiting = this.plainPublish ? this.words[PRODUCER_WAITING] : Atomics.load(this.words, PRODUCER_WAITING)
    if (waiting !== WAITING_NONE) this.wakePeer()
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
    const position = this.next(this.position, end)
    const length = this.messageLength
    this.position = (position + ((length + 15) & ~7)) | 0
    return new Uint8Array(this.buffer, L.HEADER_BYTES + (position & this.mask) + L.FRAME_HEADER_BYTES, length)
  }

  /**
   * Calls `handler` with a view of each waiting message, up to `limit`, then
   * releases them all at once. A view is valid only during its call. If the
   * handler throws, the message it threw on counts as read; the rest stay.
   */
  drain(handler: (message: Uint8Array) => void, limit: number): number {
    const buffer = this.buffer
    return this.drainRaw((_bytes, offset, length) => handler(new Uint8Array(buffer, offset, length)), limit)
  }

  /** drain() without a view per message: the handler gets the segment's bytes, an offset and a length. */
  drainRaw(handler: RawHandler, limit: number): number {
    this.release()
    const end = this.loadProducerPosition()
    const bytes = this.memory.bytes
    let position = this.position
    let count = 0
    try {
      while (position !== end && count < limit && !this.stopped) {
        position = this.next(position, end)
        const length = this.messageLength
        const start = L.HEADER_BYTES + (position & this.mask) + L.FRAME_HEADER_BYTES
        position = (position + ((length + 15) & ~7)) | 0
        // handed out: a close() from inside the handler releases up to here
        this.position = position
        count++
        handler(bytes, start, length)
      }
    } finally {
      // one release for the whole batch
      if (!this.stopped && this.releasedPosition !== this.position) this.publish(this.position)
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
