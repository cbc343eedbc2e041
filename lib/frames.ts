/**
 * Frames in a ring (lib/layout.ts draws their bytes): the one frame-size
 * formula, the frame and padding headers a writer puts down, and the checks a
 * reader runs on every header it reads. Shared by every ring protocol; no
 * positions, no waiting, no addon.
 *
 * A frame starts at a ring index (position mod capacity), 8-byte aligned, and
 * never wraps: one that would cross the ring's end goes to index 0, behind a
 * padding frame that covers the rest of the ring.
 */
import { ShmqError } from './errors'
import * as L from './layout'
import type { RingMemory } from './memory'

// The formula is written with literals: it runs for every message, and a
// module-local function with literals compiles to two instructions once inlined.
// 15 = FRAME_HEADER_BYTES + FRAME_ALIGNMENT - 1, ~7 = ~(FRAME_ALIGNMENT - 1).
if (L.FRAME_HEADER_BYTES !== 8 || L.FRAME_ALIGNMENT !== 8) throw new Error('lib/frames.ts: frameBytes() assumes 8-byte frame headers and alignment')

// module-local copies of the layout's constants: tsc compiles uses of an
// imported const into property loads on the module object
const FRAME_HEADER_BYTES = L.FRAME_HEADER_BYTES
const FRAME_MESSAGE = L.FRAME_MESSAGE
const FRAME_PADDING = L.FRAME_PADDING

/** Bytes a frame with `length` payload bytes takes in the ring: header, payload, padding to 8. */
export function frameBytes(length: number): number {
  return (length + 15) & ~7
}

/**
 * Bytes a frame of `frameSize` bytes needs at a ring index `untilEnd` bytes
 * before the ring's end: the frame, plus the padding frame to the end when it
 * does not fit there.
 */
export function roomNeeded(frameSize: number, untilEnd: number): number {
  return frameSize <= untilEnd ? frameSize : untilEnd + frameSize
}

export function corrupt(memory: RingMemory, what: string): ShmqError {
  return new ShmqError('ERR_SHMQ_CORRUPT', `segment '${memory.name}' is corrupt: ${what}; unlink it and create it anew`, { segment: memory.name })
}

/** ERR_SHMQ_TOO_LARGE for a message of `length` bytes on `memory`. */
export function tooLarge(memory: RingMemory, length: number): ShmqError {
  return new ShmqError(
    'ERR_SHMQ_TOO_LARGE',
    `message of ${length} bytes exceeds the maximum of ${memory.maxMessage} for segment '${memory.name}': split it, or create the segment with a larger capacity/maxMessage`,
    { segment: memory.name },
  )
}

/** Throws ERR_SHMQ_INVALID_ARGUMENT unless `type` is a message type tag (0 to 65535). */
export function checkMessageType(memory: RingMemory, type: unknown): asserts type is number {
  if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > L.MAX_MESSAGE_TYPE) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `message type must be an integer from 0 to ${L.MAX_MESSAGE_TYPE} (got ${String(type)})`, { segment: memory.name })
  }
}

/**
 * Reads the frames of a ring whose frames are published by a position (SPSC):
 * each header word is read once, checked, then used, so a peer that writes
 * garbage (or changes a header while it is read) gets ERR_SHMQ_CORRUPT, never
 * a view outside the ring or past the published data.
 */
export class FrameParser {
  private readonly memory: RingMemory
  private readonly words: Int32Array
  private readonly capacity: number
  private readonly mask: number
  private readonly maxMessage: number
  /** Word index of the ring's first byte. */
  private readonly ringWord: number
  /** Set by next(): payload length of the message found. */
  length = 0
  /** Set by next(): its message type tag. */
  type = 0
  /** Set by next(): whether its writer byte marks it redelivered (work queues: L.WRITER_REDELIVERED). */
  redelivered = false

  constructor(memory: RingMemory) {
    this.memory = memory
    this.words = memory.words
    this.capacity = memory.capacity
    this.mask = memory.capacity - 1
    this.maxMessage = memory.maxMessage
    this.ringWord = memory.layout.headerBytes >> 2
  }

  /**
   * Finds the message frame at `position` (skipping a padding frame) among the
   * data published up to `end`, sets `length` and `type`, and returns the frame's position.
   */
  next(position: number, end: number): number {
    let available = (end - position) | 0
    let index = position & this.mask
    let at = this.ringWord + (index >> 2)
    let length = this.words[at]!
    let typeWord = this.words[at + 1]!
    if (((typeWord >>> 16) & 0xff) === FRAME_PADDING) {
      const skip = this.capacity - index
      if (length !== skip - FRAME_HEADER_BYTES || skip >= available) {
        throw corrupt(this.memory, `padding frame at ring index ${index} claims ${length} bytes; the ring end is ${skip - FRAME_HEADER_BYTES} bytes away`)
      }
      position = (position + skip) | 0
      available -= skip
      index = 0
      at = this.ringWord
      length = this.words[at]!
      typeWord = this.words[at + 1]!
    }
    if (((typeWord >>> 16) & 0xff) !== FRAME_MESSAGE || length < 0 || length > this.maxMessage) {
      throw corrupt(this.memory, `frame at ring index ${index} has type ${(typeWord >>> 16) & 0xff} and length ${length}`)
    }
    const size = frameBytes(length)
    if (size > available || index + size > this.capacity) {
      throw corrupt(this.memory, `frame at ring index ${index} (${size} bytes) runs past the published data or the ring end`)
    }
    this.length = length
    this.type = typeWord & 0xffff
    this.redelivered = typeWord >>> 24 === L.WRITER_REDELIVERED
    return position
  }
}

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
