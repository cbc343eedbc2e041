/**
 * What the bridge says about a message in NATS headers, so a remote reader
 * can decode it with the same schema and verify the same CRC:
 *
 *   Shmq-Schema   the shmq format schema id (decimal)
 *   Shmq-Version  the schema version the writer used (decimal)
 *   Shmq-Crc      1 when a CRC32C trailer covers the message, else 0
 *   Shmq-End      1 on the empty message that carries the end of a local stream
 *   Shmq-Type     the message type tag (decimal), set only when it is not 0:
 *                 a header per message halves core NATS's 64 B throughput
 *
 * Request/response bridges (lib/bridge/rpc.ts) add:
 *
 *   Shmq-Timeout      on a request: milliseconds the requester still waits; the far side gives up after it
 *   Shmq-Error        on an error reply: the error's code (body: its message, UTF-8)
 *   Shmq-Remote-Code  with Shmq-Error: ERR_SHMQ_REMOTE, the code the far handler's error had, if any
 *
 * The first three are set only when the payload's first bytes are a
 * consistent format header (docs/FORMAT.md); arbitrary bytes pass through
 * without them. They are a hint, read from the payload itself: the payload
 * stays authoritative.
 */
import { readHeader } from '../format/decode'
import { FLAGS_OFFSET, HEADER_BYTES, KNOWN_FLAGS, CHECKSUM_BYTES, LENGTH_OFFSET } from '../format/layout'
import type { MsgHdrs } from './client'

export const SCHEMA_HEADER = 'Shmq-Schema'
export const VERSION_HEADER = 'Shmq-Version'
export const CRC_HEADER = 'Shmq-Crc'
export const END_HEADER = 'Shmq-End'
export const TYPE_HEADER = 'Shmq-Type'
export const TIMEOUT_HEADER = 'Shmq-Timeout'
export const ERROR_HEADER = 'Shmq-Error'
export const REMOTE_CODE_HEADER = 'Shmq-Remote-Code'

export interface FormatInfo {
  schemaId: number
  version: number
  checksum: boolean
}

/**
 * The format header of `payload` when it looks like a whole format message:
 * its Length field is the payload's length, its header and fixed block are
 * 8-aligned and fit, and it sets no unknown flag. Otherwise null. Costs a few
 * byte loads for a payload that is not one.
 */
export function peekFormat(payload: Uint8Array): FormatInfo | null {
  const length = payload.length
  if (length < HEADER_BYTES) return null
  const o = LENGTH_OFFSET
  const declared = (payload[o]! | (payload[o + 1]! << 8) | (payload[o + 2]! << 16) | (payload[o + 3]! << 24)) >>> 0
  if (declared !== length || (payload[FLAGS_OFFSET]! & ~KNOWN_FLAGS) !== 0) return null
  const header = readHeader(payload)
  const trailer = header.checksum ? CHECKSUM_BYTES : 0
  if (header.headerLength < HEADER_BYTES || (header.headerLength & 7) !== 0 || (header.fixedLength & 7) !== 0) return null
  if (header.headerLength + header.fixedLength + trailer > length || header.version === 0) return null
  return { schemaId: header.schemaId, version: header.version, checksum: header.checksum }
}

/**
 * The headers a message carries: the type tag when it is not 0, the format's
 * when the payload is a format message; undefined when it needs none (headers
 * cost the NATS client about half its 64 B throughput).
 */
export function messageHeaders(makeHeaders: () => MsgHdrs, type: number, payload: Uint8Array, formatHeaders: boolean): MsgHdrs | undefined {
  const format = formatHeaders ? peekFormat(payload) : null
  if (type === 0 && format === null) return undefined
  const headers = makeHeaders()
  if (type !== 0) headers.set(TYPE_HEADER, String(type))
  if (format !== null) {
    headers.set(SCHEMA_HEADER, String(format.schemaId))
    headers.set(VERSION_HEADER, String(format.version))
    headers.set(CRC_HEADER, format.checksum ? '1' : '0')
  }
  return headers
}
