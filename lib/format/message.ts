/**
 * defineMessage: a schema's face. It lays the schema out once, generates its
 * reader, writer and sizing code, and keeps one reused reader and writer so
 * that reading and writing in place allocate nothing per message.
 */
import { sizeFunctions } from './encode'
import { formatError } from './errors'
import type { MessageLayout } from './layout'
import { type Decoded, type Fields, layoutOf, type MessageDefinition, type Reader, type Values, type Writer } from './schema'
import { readerClass, type ReaderInternals } from './view'
import { writerClass, type WriterInternals } from './writer'

export interface EncodeOptions {
  /** Append a CRC32C trailer (default: the schema's `checksum`). */
  checksum?: boolean
}

export interface ViewOptions {
  /** A new flyweight instead of the schema's reused one (default false). */
  fresh?: boolean
}

export interface WriterOptions extends EncodeOptions {
  /** A new writer instead of the schema's reused one (default false). */
  fresh?: boolean
}

/** What every schema has, whatever its fields: enough to check compatibility or generate code. */
export interface SchemaInfo {
  readonly name: string
  readonly id: number
  readonly version: number
  /** Whether messages carry a CRC32C unless told otherwise. */
  readonly checksum: boolean
  /** Where every field lives (docs/FORMAT.md). */
  readonly layout: MessageLayout
}

export interface MessageSchema<F extends Fields = Fields> extends SchemaInfo {
  /** As declared. */
  readonly fields: F
  /** Exact bytes encodeInto() writes for these values. */
  sizeOf(values: Values<F>, options?: EncodeOptions): number
  /** A bound on sizeOf() that scans no string (strings counted at 3 bytes per UTF-16 unit). */
  maxSizeOf(values: Values<F>, options?: EncodeOptions): number
  /** Writes the message at the start of `target` (e.g. a claimed view); returns the bytes written. */
  encodeInto(target: Uint8Array, values: Values<F>, options?: EncodeOptions): number
  /** encodeInto() the `capacity` bytes of `bytes` at `offset` (e.g. a raw claim); returns bytes written. */
  encodeAt(bytes: Uint8Array, offset: number, capacity: number, values: Values<F>, options?: EncodeOptions): number
  /** The message in a new Uint8Array of exactly its size. */
  encode(values: Values<F>, options?: EncodeOptions): Uint8Array
  /**
   * The flyweight over the message at the start of `bytes`: fields are read in
   * place on access. Reused by every call (valid until the next view() of this
   * schema) unless { fresh: true }. Throws ERR_SHMQ_FORMAT for a bad header.
   */
  view(bytes: Uint8Array, options?: ViewOptions): Reader<F>
  /** view() of bytes[offset, offset + length) without a subarray: for consumer.drainRaw(). */
  wrap(bytes: Uint8Array, offset: number, length: number): Reader<F>
  /** The message as a plain object (strings decoded, arrays and bytes copied). */
  decode(bytes: Uint8Array): Decoded<F>
  /**
   * An in-place writer over `target`: the header is written and the fixed
   * block zeroed now; assign fields, then commit `writer.length` bytes.
   * Reused by every call unless { fresh: true }.
   */
  writer(target: Uint8Array, options?: WriterOptions): Writer<F>
  /** writer() over the `capacity` bytes of `bytes` at `offset` (e.g. producer.tryClaimRaw()): no view needed. */
  writerAt(bytes: Uint8Array, offset: number, capacity: number, options?: WriterOptions): Writer<F>
}

/** `bytes` is a Uint8Array holding [offset, offset + length). */
function checkRange(bytes: Uint8Array, offset: number, length: number, name: string): void {
  // (not a Uint8Array: its length is not a number, and the check fails)
  if (!(offset >= 0 && length >= 0 && offset + length <= bytes.length)) {
    checkBytes(bytes, name)
    throw formatError(`${name}: bytes [${offset}, ${offset + length}) lie outside the ${bytes.length} given`)
  }
}

function checkBytes(bytes: unknown, name: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw formatError(`${name}: a message is a Uint8Array (or Buffer), got ${bytes === null ? 'null' : typeof bytes}`)
}

/**
 * Declares a message schema. Field types: u8 i8 u16 i16 u32 i32 f32 f64,
 * u64 i64 (bigint, or number with as: 'number'), bool, { type: 'char', length },
 * { type: 'enum', of, values }, { type: 'struct', fields }, 'string' / 'bytes'
 * ({ max }), { type: 'array', of: fields, max }. Each field may say `since`
 * (the version that added it) and `optional`. See docs/FORMAT.md.
 */
export function defineMessage<const F extends Fields>(definition: MessageDefinition<F>): MessageSchema<F> {
  const layout = layoutOf(definition)
  const Reader = readerClass(layout)
  const WriterClass = writerClass(layout)
  const sizes = sizeFunctions(layout)
  const name = layout.name
  const reader = new Reader()
  const decoder = new Reader()
  const writer = new WriterClass()
  const encoder = new WriterClass()
  const checksumOf = (options: EncodeOptions | undefined): boolean => (options?.checksum === undefined ? layout.checksum : options.checksum === true)

  const schema: MessageSchema<F> = {
    name,
    id: layout.id,
    version: layout.version,
    checksum: layout.checksum,
    fields: definition.fields,
    layout,
    sizeOf: (values, options) => sizes.exact(values as Record<string, unknown>, checksumOf(options)),
    maxSizeOf: (values, options) => sizes.bound(values as Record<string, unknown>, checksumOf(options)),
    encodeInto(target, values, options) {
      checkBytes(target, name)
      const w = encoder._bind(target, 0, target.length, checksumOf(options))
      w._encode(values as Record<string, unknown>)
      return w.length
    },
    encodeAt(bytes, offset, capacity, values, options) {
      checkRange(bytes, offset, capacity, name)
      const w = encoder._bind(bytes, offset, capacity, checksumOf(options))
      w._encode(values as Record<string, unknown>)
      return w.length
    },
    encode(values, options) {
      const checksum = checksumOf(options)
      const out = new Uint8Array(sizes.exact(values as Record<string, unknown>, checksum))
      const w = encoder._bind(out, 0, out.length, checksum)
      w._encode(values as Record<string, unknown>)
      const n = w.length
      return n === out.length ? out : out.subarray(0, n)
    },
    view(bytes, options) {
      checkBytes(bytes, name)
      const r: ReaderInternals = options?.fresh === true ? new Reader() : reader
      return r._bind(bytes, 0, bytes.length) as unknown as Reader<F>
    },
    wrap(bytes, offset, length) {
      checkRange(bytes, offset, length, name)
      return reader._bind(bytes, offset, length) as unknown as Reader<F>
    },
    decode(bytes) {
      checkBytes(bytes, name)
      return decoder._bind(bytes, 0, bytes.length)._toObject() as Decoded<F>
    },
    writer(target, options) {
      checkBytes(target, name)
      const w: WriterInternals = options?.fresh === true ? new WriterClass() : writer
      return w._bind(target, 0, target.length, checksumOf(options)) as unknown as Writer<F>
    },
    writerAt(bytes, offset, capacity, options) {
      checkRange(bytes, offset, capacity, name)
      const w: WriterInternals = options?.fresh === true ? new WriterClass() : writer
      return w._bind(bytes, offset, capacity, checksumOf(options)) as unknown as Writer<F>
    },
  }
  return Object.freeze(schema)
}
