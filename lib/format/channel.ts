/**
 * Format messages over a shmq channel: size, claim, encode in place, commit on
 * the producer (the values are copied once, into the ring); a reused
 * flyweight over each message in the ring on the consumer (nothing copied,
 * nothing allocated per message).
 *
 * The schema id travels in the message header, and writeMessage puts it in
 * the frame's message type tag too (schema ids are 1..65535, tags 16 bits), so
 * that a consumer dispatches on `lastType` or a drainRaw handler's `type`
 * without touching the payload; drainMessages skips another schema's tagged
 * messages so. An untagged message (tag 0: written as plain bytes) is told by
 * its header.
 */
import type { Consumer } from '../consumer'
import type { ShmqError } from '../errors'
import type { Producer } from '../producer'
import { schemaIdOf } from './decode'
import { formatError, isFormatError } from './errors'
import { HEADER_BYTES as MESSAGE_HEADER_BYTES } from './layout'
import type { EncodeOptions, MessageSchema } from './message'
import type { Fields, Reader, Values } from './schema'

export interface DrainMessagesOptions {
  /** At most this many messages (default all waiting). */
  limit?: number
  /** A message of another schema id: 'skip' and count it (default) or 'throw' ERR_SHMQ_FORMAT. */
  otherSchema?: 'skip' | 'throw'
  /**
   * A message that fails its checks (header, checksum, or a field read by the
   * handler): 'drop' and count it (default) or 'throw' ERR_SHMQ_FORMAT.
   */
  invalid?: 'drop' | 'throw'
}

/** What drainMessages() did on a consumer, since it was opened. */
export interface MessageStats {
  delivered: number
  otherSchema: number
  invalid: number
  /** Why the last invalid message was dropped. */
  lastError: ShmqError | null
}

const stats = new WeakMap<Consumer, MessageStats>()

/** The drainMessages() counters of `consumer`. */
export function messageStats(consumer: Consumer): MessageStats {
  let s = stats.get(consumer)
  if (s === undefined) {
    s = { delivered: 0, otherSchema: 0, invalid: 0, lastError: null }
    stats.set(consumer, s)
  }
  return s
}

/** How many bytes to claim: the bound when the channel takes it (no UTF-8 scan), else the exact size. */
function claimSize<F extends Fields>(producer: Producer, schema: MessageSchema<F>, values: Values<F>, options: EncodeOptions | undefined): number {
  const bound = schema.maxSizeOf(values, options)
  return bound <= producer.maxMessage ? bound : schema.sizeOf(values, options)
}

function encodeAndCommit<F extends Fields>(producer: Producer, view: Uint8Array, schema: MessageSchema<F>, values: Values<F>, options: EncodeOptions | undefined): void {
  let length: number
  try {
    length = schema.encodeInto(view, values, options)
  } catch (error) {
    producer.abort()
    throw error
  }
  producer.commit(length, schema.id)
}

/** Encodes `values` straight into the ring; false, writing nothing, when it is full. */
export function tryWriteMessage<F extends Fields>(producer: Producer, schema: MessageSchema<F>, values: Values<F>, options?: EncodeOptions): boolean {
  const size = claimSize(producer, schema, values, options)
  // a raw claim: no view object per message, and the encoder keeps the segment's memory bound
  const offset = producer.tryClaimRaw(size)
  if (offset === -1) return false
  let length: number
  try {
    length = schema.encodeAt(producer.bytes, offset, size, values, options)
  } catch (error) {
    producer.abort()
    throw error
  }
  producer.commit(length, schema.id)
  return true
}

/** tryWriteMessage(), waiting for room. Encodes when room is there: do not change `values` until it settles. */
export async function writeMessage<F extends Fields>(producer: Producer, schema: MessageSchema<F>, values: Values<F>, options?: EncodeOptions): Promise<void> {
  const view = await producer.claim(claimSize(producer, schema, values, options))
  encodeAndCommit(producer, view, schema, values, options)
}

/**
 * Calls `handler` with the schema's reused flyweight over each waiting
 * message (valid only during the call); returns how many it delivered.
 * Messages of other schemas and invalid ones are counted in messageStats().
 */
export function drainMessages<F extends Fields>(consumer: Consumer, schema: MessageSchema<F>, handler: (message: Reader<F>) => void, options?: DrainMessagesOptions): number {
  if (typeof handler !== 'function') throw formatError('drainMessages needs a handler function')
  const s = messageStats(consumer)
  const id = schema.id
  const skipOthers = options?.otherSchema !== 'throw'
  const dropInvalid = options?.invalid !== 'throw'
  let delivered = 0
  consumer.drainRaw((bytes, offset, length, type) => {
    // the frame's tag when the writer set it (no payload read); else the header's id. A message
    // too short for a header has no schema id: wrap() refuses it below
    const seen = type !== 0 ? type : length >= MESSAGE_HEADER_BYTES ? schemaIdOf(bytes, offset) : id
    if (seen !== id) {
      if (!skipOthers) throw formatError(`a message of schema id ${seen} on a channel drained as ${schema.name} (id ${id}): pass { otherSchema: 'skip' } to skip them`)
      s.otherSchema++
      return
    }
    try {
      handler(schema.wrap(bytes, offset, length))
    } catch (error) {
      if (!dropInvalid || !isFormatError(error)) throw error
      s.invalid++
      s.lastError = error
      consumer.countFormatError()
      return
    }
    delivered++
  }, options?.limit ?? Infinity)
  s.delivered += delivered
  return delivered
}

export type { EncodeOptions, MessageSchema } from './message'
export type { Fields, Reader, Values } from './schema'
