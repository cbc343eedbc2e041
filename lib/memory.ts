/**
 * The memory a ring protocol runs on, and a segment header laid out in any
 * buffer. No addon: a mapped segment (lib/segment.ts) is one RingMemory, a
 * SharedArrayBuffer of HEADER_BYTES + capacity bytes is another, so the
 * protocols (lib/spsc.ts) run in-process, across worker threads, without the OS.
 */
import { ShmqError } from './errors'
import * as L from './layout'

/** The memory a ring runs on: one segment's words and bytes. */
export interface RingMemory {
  readonly name: string
  readonly buffer: ArrayBufferLike
  /** The whole segment as 32-bit words: header fields and frame headers. */
  readonly words: Int32Array
  /** The whole segment as bytes: payloads. */
  readonly bytes: Uint8Array
  readonly capacity: number
  readonly maxMessage: number
}

/**
 * Writes a ready single-producer single-consumer segment header into the
 * first HEADER_BYTES of `buffer` (zeroed, as a new file or SharedArrayBuffer is),
 * the header Segment.create writes into a new mapping.
 */
export function writeHeader(buffer: ArrayBufferLike, capacity: number, maxMessage: number): void {
  const words = new Int32Array(buffer, 0, L.HEADER_BYTES >> 2)
  const view = new DataView(buffer, 0, L.HEADER_BYTES)
  words[L.word(L.MAGIC_OFFSET)] = L.MAGIC
  view.setUint16(L.VERSION_OFFSET, L.VERSION_MAJOR, true)
  view.setUint16(L.VERSION_OFFSET + 2, L.VERSION_MINOR, true)
  words[L.word(L.KIND_OFFSET)] = L.KIND_SPSC
  words[L.word(L.HEADER_BYTES_OFFSET)] = L.HEADER_BYTES
  words[L.word(L.CAPACITY_OFFSET)] = capacity
  words[L.word(L.MAX_MESSAGE_OFFSET)] = maxMessage
  words[L.word(L.FLAGS_OFFSET)] = 0
  // SYNC POINT: every header field above is visible to whoever sees READY
  Atomics.store(words, L.word(L.STATE_OFFSET), L.STATE_READY)
}

/**
 * A RingMemory over `buffer`, whose header is already written (writeHeader, or a
 * segment validated by lib/segment.ts): capacity and maxMessage come from it.
 */
export function ringMemory(name: string, buffer: ArrayBufferLike): RingMemory {
  const words = new Int32Array(buffer)
  const capacity = words[L.word(L.CAPACITY_OFFSET)]!
  const maxMessage = words[L.word(L.MAX_MESSAGE_OFFSET)]!
  const problem = L.checkCapacity(capacity) ?? L.checkMaxMessage(maxMessage, capacity)
  if (problem !== null || buffer.byteLength !== L.HEADER_BYTES + capacity) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `ring memory '${name}': ${problem ?? `the buffer has ${buffer.byteLength} bytes, its header says ${L.HEADER_BYTES + capacity}`}; lay it out with writeHeader()`)
  }
  return { name, buffer, words, bytes: new Uint8Array(buffer), capacity, maxMessage }
}

/** A new SharedArrayBuffer with a ready header: the memory of an in-process ring. */
export function sharedRingMemory(name: string, capacity: number, maxMessage: number = L.maxMessageFor(capacity)): RingMemory {
  const problem = L.checkCapacity(capacity) ?? L.checkMaxMessage(maxMessage, capacity)
  if (problem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', problem)
  const buffer = new SharedArrayBuffer(L.HEADER_BYTES + capacity)
  writeHeader(buffer, capacity, maxMessage)
  return ringMemory(name, buffer)
}
