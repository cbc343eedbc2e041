/**
 * The memory a ring protocol runs on, and a segment header laid out in any
 * buffer. No addon: a mapped segment (lib/segment.ts) is one RingMemory, a
 * SharedArrayBuffer of headerBytes + capacity bytes is another, so the
 * protocols (lib/spsc.ts, lib/mpsc.ts) run in-process, across worker threads,
 * without the OS.
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
  /** The header as 64-bit words: owner words and counters (lib/counters.ts). */
  readonly header64: BigInt64Array
  readonly layout: L.RingLayout
  readonly capacity: number
  readonly maxMessage: number
}

/** What a new segment header says. */
export interface HeaderFields {
  layout: L.RingLayout
  capacity: number
  maxMessage: number
  /** Incompatible flags (L.INCOMPATIBLE_*). */
  incompatibleFlags: number
  /** Broadcast: L.POLICY_*. */
  policy?: number
}

/**
 * Writes a ready segment header into the first headerBytes of `buffer` (zeroed,
 * as a new file or SharedArrayBuffer is), the header Segment.create writes into
 * a new mapping.
 */
export function writeHeader(buffer: ArrayBufferLike, fields: HeaderFields): void {
  const { layout } = fields
  const words = new Int32Array(buffer, 0, layout.headerBytes >> 2)
  const view = new DataView(buffer, 0, layout.headerBytes)
  words[L.word(L.MAGIC_OFFSET)] = L.MAGIC
  view.setUint16(L.VERSION_OFFSET, L.VERSION_MAJOR, true)
  view.setUint16(L.VERSION_OFFSET + 2, L.VERSION_MINOR, true)
  words[L.word(L.KIND_OFFSET)] = layout.kind
  words[L.word(L.HEADER_BYTES_OFFSET)] = layout.headerBytes
  words[L.word(L.CAPACITY_OFFSET)] = fields.capacity
  words[L.word(L.MAX_MESSAGE_OFFSET)] = fields.maxMessage
  words[L.word(L.SLOT_COUNT_OFFSET)] = layout.slotCount
  words[L.word(L.COMPATIBLE_FLAGS_OFFSET)] = 0
  words[L.word(L.INCOMPATIBLE_FLAGS_OFFSET)] = fields.incompatibleFlags
  if (layout.kind === L.KIND_BROADCAST) words[L.word(L.POLICY_OFFSET)] = fields.policy ?? L.POLICY_BACKPRESSURE
  // SYNC POINT: every header field above is visible to whoever sees READY
  Atomics.store(words, L.word(L.STATE_OFFSET), L.STATE_READY)
}

/** A RingMemory over `buffer` laid out as `layout` (its header validated by the caller). */
export function ringMemory(name: string, buffer: ArrayBufferLike, layout: L.RingLayout, capacity: number, maxMessage: number): RingMemory {
  if (buffer.byteLength !== layout.headerBytes + capacity) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `ring memory '${name}' has ${buffer.byteLength} bytes, its layout needs ${layout.headerBytes + capacity}`)
  }
  return { name, buffer, words: new Int32Array(buffer), bytes: new Uint8Array(buffer), header64: new BigInt64Array(buffer, 0, layout.headerBytes >> 3), layout, capacity, maxMessage }
}

/**
 * A RingMemory over a SharedArrayBuffer whose header is already written
 * (sharedRingMemory in another thread): its shape comes from the header.
 */
export function attachRingMemory(name: string, buffer: SharedArrayBuffer): RingMemory {
  const words = new Int32Array(buffer)
  const kind = words[L.word(L.KIND_OFFSET)]!
  const layout = L.ringLayout(kind, words[L.word(L.SLOT_COUNT_OFFSET)]!)
  return ringMemory(name, buffer, layout, words[L.word(L.CAPACITY_OFFSET)]!, words[L.word(L.MAX_MESSAGE_OFFSET)]!)
}

export interface SharedRingOptions {
  kind?: L.KindName
  capacity: number
  maxMessage?: number
  /** MPSC only. Default L.DEFAULT_MAX_PRODUCERS. */
  maxProducers?: number
  /** Broadcast only. Default L.DEFAULT_MAX_SUBSCRIBERS. */
  maxSubscribers?: number
  /** Broadcast only. Default 'backpressure'. */
  policy?: L.PolicyName
}

/** A new SharedArrayBuffer with a ready header: the memory of an in-process ring. */
export function sharedRingMemory(name: string, options: SharedRingOptions): RingMemory {
  const { capacity } = options
  const maxMessage = options.maxMessage ?? L.maxMessageFor(capacity)
  const kindName = options.kind ?? 'spsc'
  const kind = kindName === 'spsc' ? L.KIND_SPSC : kindName === 'mpsc' ? L.KIND_MPSC : kindName === 'broadcast' ? L.KIND_BROADCAST : kindName === 'server' ? L.KIND_SERVER : L.KIND_WORK_QUEUE
  const others = kind === L.KIND_SPSC ? 1 : L.runsMpsc(kind) ? options.maxProducers ?? L.DEFAULT_MAX_PRODUCERS : options.maxSubscribers ?? L.DEFAULT_MAX_SUBSCRIBERS
  const problem =
    L.checkCapacity(capacity) ?? L.checkMaxMessage(maxMessage, capacity) ?? (kind === L.KIND_BROADCAST ? L.checkMaxSubscribers(others) : L.checkMaxProducers(others))
  if (problem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', problem)
  const layout = L.ringLayout(kind, 1 + others)
  const buffer = new SharedArrayBuffer(layout.headerBytes + capacity)
  const policy = options.policy === 'lossy' ? L.POLICY_LOSSY : L.POLICY_BACKPRESSURE
  writeHeader(buffer, { layout, capacity, maxMessage, incompatibleFlags: L.INCOMPATIBLE_PLAIN_PUBLISH, policy })
  return ringMemory(name, buffer, layout, capacity, maxMessage)
}
