/**
 * Reading a message's header without knowing its schema: to dispatch on the
 * schema id, or to walk messages stored back to back in a file.
 */
import { formatError } from './errors'
import { FIXED_LENGTH_OFFSET, FLAG_CHECKSUM, FLAGS_OFFSET, HEADER_BYTES, HEADER_LENGTH_OFFSET, LENGTH_OFFSET, SCHEMA_ID_OFFSET, VERSION_OFFSET } from './layout'

export interface MessageHeader {
  /** Bytes of the whole message. */
  length: number
  schemaId: number
  version: number
  fixedLength: number
  headerLength: number
  checksum: boolean
}

/** The schema id of the message at bytes[offset], or -1 when fewer than a header's bytes are there. */
export function schemaIdOf(bytes: Uint8Array, offset: number = 0): number {
  if (!(offset >= 0 && offset + HEADER_BYTES <= bytes.length)) return -1
  return bytes[offset + SCHEMA_ID_OFFSET]! | (bytes[offset + SCHEMA_ID_OFFSET + 1]! << 8)
}

/** The header of the message at bytes[offset]; ERR_SHMQ_FORMAT when it cannot be one. */
export function readHeader(bytes: Uint8Array, offset: number = 0): MessageHeader {
  if (!(bytes instanceof Uint8Array)) throw formatError('a message is a Uint8Array (or Buffer)')
  if (!(offset >= 0 && offset + HEADER_BYTES <= bytes.length)) throw formatError(`no message header at offset ${offset} of ${bytes.length} bytes`)
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_BYTES)
  const header: MessageHeader = {
    length: dv.getUint32(LENGTH_OFFSET, true),
    schemaId: dv.getUint16(SCHEMA_ID_OFFSET, true),
    version: dv.getUint16(VERSION_OFFSET, true),
    fixedLength: dv.getUint16(FIXED_LENGTH_OFFSET, true),
    headerLength: dv.getUint8(HEADER_LENGTH_OFFSET),
    checksum: (dv.getUint8(FLAGS_OFFSET) & FLAG_CHECKSUM) !== 0,
  }
  if (header.length < HEADER_BYTES || header.length > bytes.length - offset) {
    throw formatError(`the message at offset ${offset} says it has ${header.length} bytes; ${bytes.length - offset} are there`)
  }
  return header
}
