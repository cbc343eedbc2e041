/**
 * shmq/format: compact messages read and written in place (docs/FORMAT.md).
 */
export { defineMessage, type EncodeOptions, type MessageSchema, type SchemaInfo, type ViewOptions, type WriterOptions } from './message'
export type {
  ArrayReader,
  Decoded,
  FieldSpec,
  Fields,
  MessageDefinition,
  Reader,
  ReaderMeta,
  ScalarType,
  StructFields,
  StructReader,
  StructValues,
  Values,
  Writer,
} from './schema'
export { checkCompatible, compatibilityProblems } from './compat'
export { readHeader, schemaIdOf, type MessageHeader } from './decode'
export { crc32c } from './crc32c'
export { HEADER_BYTES as MESSAGE_HEADER_BYTES, FLAG_CHECKSUM } from './layout'
export { drainMessages, messageStats, tryWriteMessage, writeMessage, type DrainMessagesOptions, type MessageStats } from './channel'
