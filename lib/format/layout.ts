/**
 * The bytes of a shmq format message: the header, and how a schema's fields
 * are placed in the fixed block. Nothing else in lib/format hard-codes an
 * offset. docs/FORMAT.md states the same layout for readers in other languages.
 *
 * All integers are little-endian. Offsets are from the start of the message.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                  Length (whole message, bytes)                |  0
 *   +-------------------------------+-------------------------------+
 *   |           Schema id           |            Version            |  4
 *   +-------------------------------+---------------+---------------+
 *   |      Fixed-block length       | Header length |     Flags     |  8
 *   +-------------------------------+---------------+---------------+
 *   |          Presence bits (bit i: optional field i present)      | 12
 *   +---------------------------------------------------------------+
 *   |  Fixed block: fields at naturally aligned offsets, version    | 16 (= header length)
 *   |  by version, each version's group starting 8-aligned;         |
 *   |  a variable field is an 8-byte slot {u32 offset, u32 count}  ...
 *   +---------------------------------------------------------------+
 *   |  Variable data: strings, bytes, arrays of fixed structs,     ... header + fixed length
 *   |  where the slots point (arrays aligned to their element)     ...
 *   +---------------------------------------------------------------+
 *   |               CRC32C of bytes [0, Length - 4)                 |  Length - 4, only with FLAG_CHECKSUM
 *   +---------------------------------------------------------------+
 */
import type { ScalarType } from './schema'

export const LENGTH_OFFSET = 0
export const SCHEMA_ID_OFFSET = 4
export const VERSION_OFFSET = 6
export const FIXED_LENGTH_OFFSET = 8
export const HEADER_LENGTH_OFFSET = 10
export const FLAGS_OFFSET = 11
export const PRESENCE_OFFSET = 12
/** Header length this version writes; readers accept any multiple of 8 from here up. */
export const HEADER_BYTES = 16

/** Flags: a CRC32C trailer covers the message. */
export const FLAG_CHECKSUM = 1
/** Flags this version understands; a message with any other bit set is refused. */
export const KNOWN_FLAGS = FLAG_CHECKSUM
export const CHECKSUM_BYTES = 4

/** A variable field's slot in the fixed block: u32 offset from the message start, u32 count. */
export const SLOT_BYTES = 8
export const SLOT_OFFSET_OFFSET = 0
export const SLOT_COUNT_OFFSET = 4

export const MAX_SCHEMA_ID = 0xffff
export const MAX_VERSION = 0xffff
export const MAX_FIXED_BYTES = 0xfff8
export const MAX_OPTIONAL_FIELDS = 32
/** Largest message: its length is a u32. */
export const MAX_MESSAGE_BYTES = 0xffffffff

export const SCALAR_BYTES: Readonly<Record<ScalarType, number>> = {
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  f64: 8,
  u64: 8,
  i64: 8,
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment
}

/** Where a field lives and what it holds, computed once per schema. */
export interface FieldLayout {
  readonly name: string
  readonly kind: 'scalar' | 'char' | 'enum' | 'struct' | 'string' | 'bytes' | 'array'
  /** Storage type of scalars and enums. */
  readonly scalar: ScalarType | null
  /** u64/i64 read and written as numbers (refused beyond 2^53). */
  readonly asNumber: boolean
  /** Offset in the fixed block (for the struct's fields: in the struct). */
  readonly offset: number
  /** Bytes in the fixed block (a slot for variable fields). */
  readonly size: number
  readonly align: number
  readonly since: number
  readonly optional: boolean
  /** Presence bit of an optional field, else -1. */
  readonly presenceBit: number
  /** char: its width; string/bytes: the largest byte length; array: the most elements. */
  readonly max: number
  /** struct fields, and array elements. */
  readonly struct: StructLayout | null
  /** enum: name by value and value by name. */
  readonly enumValues: Readonly<Record<string, number>> | null
  /** Value an older message without this field reads as (for non-optional fields). */
  readonly defaultValue: unknown
}

export interface StructLayout {
  readonly fields: readonly FieldLayout[]
  /** Size rounded to the struct's alignment: the stride of an array of it. */
  readonly size: number
  readonly align: number
}

export interface MessageLayout {
  readonly name: string
  readonly id: number
  readonly version: number
  readonly checksum: boolean
  readonly fields: readonly FieldLayout[]
  /** Fixed-block length this schema writes (a multiple of 8). */
  readonly fixedLength: number
  /** Fixed-block length every message of this schema id has at least (its first version's fields). */
  readonly baseFixedLength: number
  readonly optionalCount: number
}

export function isVariable(field: FieldLayout): boolean {
  return field.kind === 'string' || field.kind === 'bytes' || field.kind === 'array'
}
