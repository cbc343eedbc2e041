/**
 * Schemas: what a user declares, the TypeScript types derived from it, and
 * the check that turns a declaration into a layout (lib/format/layout.ts).
 */
import { formatError } from './errors'
import {
  alignUp,
  type FieldLayout,
  HEADER_BYTES,
  MAX_FIXED_BYTES,
  MAX_OPTIONAL_FIELDS,
  MAX_SCHEMA_ID,
  MAX_VERSION,
  type MessageLayout,
  SCALAR_BYTES,
  SLOT_BYTES,
  type StructLayout,
} from './layout'

export type ScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64' | 'u64' | 'i64' | 'bool'
export type IntegerType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32'

interface Common {
  /** The schema version that added this field (default 1). */
  readonly since?: number
  /** Behind a presence bit: absent reads as undefined. Top-level fields only. */
  readonly optional?: boolean
}
export interface ScalarSpec extends Common {
  readonly type: ScalarType
  /** u64/i64 only: read and written as numbers; values beyond ±2^53 are refused. */
  readonly as?: 'number' | 'bigint'
  /** What an older message without this field reads as (default 0 / 0n / false). */
  readonly default?: number | bigint | boolean
}
export interface CharSpec extends Common {
  readonly type: 'char'
  /** Width in bytes: UTF-8, zero-padded. */
  readonly length: number
  readonly default?: string
}
export interface EnumSpec extends Common {
  readonly type: 'enum'
  readonly of?: IntegerType
  readonly values: { readonly [name: string]: number }
  readonly default?: string
}
export interface StructSpec extends Common {
  readonly type: 'struct'
  readonly fields: StructFields
}
export interface StringSpec extends Common {
  readonly type: 'string'
  /** Largest UTF-8 byte length (default 65535). */
  readonly max?: number
}
export interface BytesSpec extends Common {
  readonly type: 'bytes'
  readonly max?: number
}
export interface ArraySpec extends Common {
  readonly type: 'array'
  readonly of: StructFields
  /** Most elements. */
  readonly max: number
}

export type FixedSpec = ScalarType | ScalarSpec | CharSpec | EnumSpec | StructSpec
export type FieldSpec = FixedSpec | 'string' | 'bytes' | StringSpec | BytesSpec | ArraySpec
export type StructFields = { readonly [name: string]: FixedSpec }
export type Fields = { readonly [name: string]: FieldSpec }

export interface MessageDefinition<F extends Fields> {
  readonly name: string
  /** 1..65535, the same for every version of a schema. */
  readonly id: number
  /** 1..65535 (default 1). */
  readonly version?: number
  /** Write a CRC32C trailer on every message (default false; per message with { checksum }). */
  readonly checksum?: boolean
  readonly fields: F
}

// ---- the types derived from a schema ----

type ScalarValue<S> = S extends 'u64' | 'i64' ? bigint : S extends 'bool' ? boolean : number
type Present<F> = F extends ScalarType
  ? ScalarValue<F>
  : F extends { readonly type: 'u64' | 'i64'; readonly as: 'number' }
    ? number
    : F extends { readonly type: infer S extends ScalarType }
      ? ScalarValue<S>
      : F extends 'string' | { readonly type: 'string' | 'char' }
        ? string
        : F extends 'bytes' | { readonly type: 'bytes' }
          ? Uint8Array
          : F extends { readonly type: 'enum'; readonly values: infer V }
            ? keyof V & string
            : never
type IsOptional<F> = F extends { readonly optional: true } ? true : false
type Maybe<F, T> = IsOptional<F> extends true ? T | undefined : T

/** A struct's values, as given to a writer and returned by decode(). */
export type StructValues<S extends StructFields> = { -readonly [K in keyof S]: FixedInput<S[K]> }
type FixedInput<F> = F extends { readonly type: 'struct'; readonly fields: infer S extends StructFields } ? StructValues<S> : Present<F>
type Input<F> = F extends { readonly type: 'array'; readonly of: infer S extends StructFields } ? readonly StructValues<S>[] : FixedInput<F>
type OptionalKeys<F extends Fields> = { [K in keyof F]: IsOptional<F[K]> extends true ? K : never }[keyof F]
type RequiredKeys<F extends Fields> = Exclude<keyof F, OptionalKeys<F>>

/** What encode()/encodeInto() take: every field, optional ones may be left out. */
export type Values<F extends Fields> = { -readonly [K in RequiredKeys<F>]: Input<F[K]> } & { -readonly [K in OptionalKeys<F>]?: Input<F[K]> }

/** What decode() returns: plain data (arrays of plain objects; bytes copied). */
export type Decoded<F extends Fields> = { -readonly [K in keyof F]: Maybe<F[K], DecodedValue<F[K]>> }
type DecodedValue<F> = F extends { readonly type: 'array'; readonly of: infer S extends StructFields } ? StructValues<S>[] : FixedInput<F>

/** A reused flyweight over one element of an array, or over a nested struct. */
export type StructReader<S extends StructFields> = { readonly [K in keyof S]: FixedRead<S[K]> }
type FixedRead<F> = F extends { readonly type: 'struct'; readonly fields: infer S extends StructFields } ? StructReader<S> : Present<F>

/** The elements of an array field: get(i) rebinds and returns one reused flyweight. */
export interface ArrayReader<E> extends Iterable<E> {
  readonly length: number
  /** Element i (0 <= i < length), as the same reused flyweight every call. */
  get(index: number): E
}

type Read<F> = F extends { readonly type: 'array'; readonly of: infer S extends StructFields } ? ArrayReader<StructReader<S>> : FixedRead<F>

/** Metadata every reader has; field names may not start with '$'. */
export interface ReaderMeta {
  /** The message's length in bytes (its header's Length). */
  readonly $length: number
  /** The schema version that wrote it. */
  readonly $version: number
}

/** The flyweight over one message: fields read in place, variable fields decoded on access. */
export type Reader<F extends Fields> = { readonly [K in keyof F]: Maybe<F[K], Read<F[K]>> } & ReaderMeta

/** The in-place writer: assign fields in any order, then commit `length` bytes. */
export type Writer<F extends Fields> = { -readonly [K in keyof F]: Maybe<F[K], Input<F[K]>> } & {
  /** Bytes written so far, checksum included (computing it now when on): what to commit. */
  readonly length: number
}

// ---- from a declaration to a layout ----

const SCALARS = new Set<string>(Object.keys(SCALAR_BYTES))
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]*$/
const RESERVED = new Set(['length', 'constructor', 'prototype', 'toString', 'toJSON', 'valueOf', 'get'])
const DEFAULT_MAX_BYTES = 0xffff

type Spec = Exclude<FieldSpec, string>

function specOf(raw: FieldSpec): Spec {
  return typeof raw === 'string' ? ({ type: raw } as Spec) : raw
}

function checkName(where: string, name: string): void {
  if (!FIELD_NAME.test(name) || RESERVED.has(name)) {
    throw formatError(`${where}: field name '${name}' is not allowed (letters, digits and _, starting with a letter; not ${[...RESERVED].join(', ')})`)
  }
}

function checkCount(where: string, what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw formatError(`${where}: ${what} must be an integer from ${min} to ${max} (got ${String(value)})`)
  }
  return value
}

function structLayout(where: string, fields: StructFields): StructLayout {
  if (typeof fields !== 'object' || fields === null || Object.keys(fields).length === 0) {
    throw formatError(`${where}: a struct needs at least one field`)
  }
  let offset = 0
  let align = 1
  const out: FieldLayout[] = []
  for (const [name, raw] of Object.entries(fields)) {
    checkName(where, name)
    const spec = specOf(raw)
    if (spec.optional || (spec.since !== undefined && spec.since !== 1)) {
      throw formatError(`${where}.${name}: fields of a struct cannot be optional or versioned; add a top-level field instead`)
    }
    const field = fieldLayout(`${where}.${name}`, name, spec, 1, -1, 0, true)
    offset = alignUp(offset, field.align)
    out.push({ ...field, offset })
    offset += field.size
    align = Math.max(align, field.align)
  }
  return { fields: out, size: alignUp(offset, align), align }
}

/** One field's kind, size and alignment; offset filled in by the caller. */
function fieldLayout(where: string, name: string, spec: Spec, since: number, presenceBit: number, offset: number, inStruct: boolean): FieldLayout {
  const base = { name, since, optional: presenceBit >= 0, presenceBit, offset, asNumber: false, struct: null, enumValues: null, scalar: null, max: 0 }
  const type = (spec as { type?: unknown }).type
  if (typeof type === 'string' && SCALARS.has(type)) {
    const scalar = type as ScalarType
    const s = spec as ScalarSpec
    if (s.as !== undefined && s.as !== 'number' && s.as !== 'bigint') throw formatError(`${where}: 'as' is 'number' or 'bigint'`)
    const asNumber = s.as === 'number'
    if (asNumber && scalar !== 'u64' && scalar !== 'i64') throw formatError(`${where}: as: 'number' applies to u64 and i64 only`)
    const wide = (scalar === 'u64' || scalar === 'i64') && !asNumber
    let defaultValue: unknown = s.default ?? (scalar === 'bool' ? false : wide ? 0n : 0)
    if (wide && typeof defaultValue === 'number') defaultValue = BigInt(defaultValue)
    return { ...base, kind: 'scalar', scalar, asNumber, size: SCALAR_BYTES[scalar], align: SCALAR_BYTES[scalar], defaultValue }
  }
  switch (type) {
    case 'char': {
      const s = spec as CharSpec
      const length = checkCount(where, 'char length', s.length, 1, 0xffff)
      return { ...base, kind: 'char', size: length, align: 1, max: length, defaultValue: s.default ?? '' }
    }
    case 'enum': {
      const s = spec as EnumSpec
      const scalar = s.of ?? 'u8'
      if (!['u8', 'i8', 'u16', 'i16', 'u32', 'i32'].includes(scalar)) throw formatError(`${where}: an enum is stored in u8, i8, u16, i16, u32 or i32 (got ${String(scalar)})`)
      const names = Object.keys(s.values ?? {})
      if (names.length === 0) throw formatError(`${where}: an enum needs values`)
      const bits = SCALAR_BYTES[scalar] * 8
      const signed = scalar.startsWith('i')
      const seen = new Set<number>()
      for (const n of names) {
        checkName(where, n)
        const v = s.values[n]
        const min = signed ? -(2 ** (bits - 1)) : 0
        const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1
        checkCount(where, `enum value ${n}`, v, min, max)
        if (seen.has(v!)) throw formatError(`${where}: enum value ${v} is declared twice`)
        seen.add(v!)
      }
      const fallback = s.default ?? names.find((n) => s.values[n] === 0) ?? names[0]
      if (!names.includes(fallback!)) throw formatError(`${where}: default '${fallback}' is not one of the enum's names`)
      return { ...base, kind: 'enum', scalar, size: SCALAR_BYTES[scalar], align: SCALAR_BYTES[scalar], enumValues: { ...s.values }, defaultValue: fallback }
    }
    case 'struct': {
      const struct = structLayout(where, (spec as StructSpec).fields)
      return { ...base, kind: 'struct', size: struct.size, align: struct.align, struct, defaultValue: null }
    }
    case 'string':
    case 'bytes':
    case 'array': {
      if (inStruct) throw formatError(`${where}: a struct holds fixed-width fields only (no ${type})`)
      if (type === 'array') {
        const s = spec as ArraySpec
        const struct = structLayout(where, s.of)
        const max = checkCount(where, 'array max', s.max, 1, 0xffffff)
        return { ...base, kind: 'array', size: SLOT_BYTES, align: 4, struct, max, defaultValue: null }
      }
      const max = checkCount(where, `${type} max`, (spec as StringSpec).max ?? DEFAULT_MAX_BYTES, 0, 0x7fffffff)
      return { ...base, kind: type, size: SLOT_BYTES, align: 4, max, defaultValue: type === 'string' ? '' : null }
    }
    default:
      throw formatError(`${where}: unknown field type ${JSON.stringify(type)} (use u8 i8 u16 i16 u32 i32 f32 f64 u64 i64 bool, char, enum, struct, string, bytes or array)`)
  }
}

/** Checks a declaration and lays it out: fields grouped by `since`, in declaration order. */
export function layoutOf<F extends Fields>(definition: MessageDefinition<F>): MessageLayout {
  const name = definition.name
  if (typeof name !== 'string' || !FIELD_NAME.test(name)) throw formatError(`schema name must be an identifier (got ${String(name)})`)
  const id = checkCount(name, 'id', definition.id, 1, MAX_SCHEMA_ID)
  const version = checkCount(name, 'version', definition.version ?? 1, 1, MAX_VERSION)
  const entries = Object.entries(definition.fields ?? {})
  if (entries.length === 0) throw formatError(`${name}: a schema needs at least one field`)
  const specs = entries.map(([field, raw], order) => {
    checkName(name, field)
    const spec = specOf(raw)
    const since = checkCount(`${name}.${field}`, 'since', spec.since ?? 1, 1, version)
    return { field, spec, since, order }
  })
  // appending is what lets old readers skip: a later version's fields come after every earlier one's
  specs.sort((a, b) => a.since - b.since || a.order - b.order)
  const firstVersion = specs[0]!.since
  const fields: FieldLayout[] = []
  let offset = 0
  let optionalCount = 0
  let baseFixedLength = 0
  let group = firstVersion
  for (const { field, spec, since } of specs) {
    if (since !== group) {
      if (group === firstVersion) baseFixedLength = alignUp(offset, 8)
      // each version's group starts 8-aligned, so an older block's padding is never a newer field
      offset = alignUp(offset, 8)
      group = since
    }
    let bit = -1
    if (spec.optional) {
      if (optionalCount === MAX_OPTIONAL_FIELDS) throw formatError(`${name}.${field}: at most ${MAX_OPTIONAL_FIELDS} optional fields`)
      bit = optionalCount++
    }
    const layout = fieldLayout(`${name}.${field}`, field, spec, since, bit, 0, false)
    offset = alignUp(offset, layout.align)
    fields.push({ ...layout, offset })
    offset += layout.size
  }
  const fixedLength = alignUp(offset, 8)
  if (group === firstVersion) baseFixedLength = fixedLength
  if (HEADER_BYTES + fixedLength > MAX_FIXED_BYTES) throw formatError(`${name}: the fixed block is ${fixedLength} bytes, more than ${MAX_FIXED_BYTES - HEADER_BYTES}`)
  return { name, id, version, checksum: definition.checksum === true, fields, fixedLength, baseFixedLength, optionalCount }
}
