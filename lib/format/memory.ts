/**
 * Typed access to the bytes under a message, for the generated readers and
 * writers (view.ts, writer.ts).
 *
 * A flyweight keeps one typed array of each element type over the whole
 * ArrayBuffer its message lives in, so a field is one indexed load or store
 * at (message start + constant offset) >>> log2(size). That needs the
 * message start 8-aligned, which shmq's frames are (claimed views and drained
 * messages start 8-aligned in the segment); any other start (a Uint8Array
 * from a file or a socket) goes through a DataView instead, as do big-endian
 * hosts. Offsets are below 2^32 (>>> is exact there).
 */
import { formatError } from './errors'
import type { ScalarType } from './schema'

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** The typed arrays a flyweight reads and writes through, all over one ArrayBuffer. */
export interface Memory {
  /** The Uint8Array last bound and its byteOffset: V8 (Node 20) does not inline the .buffer and .byteOffset getters (~20 ns each). */
  _bytes: Uint8Array | null
  _bo: number
  _ab: ArrayBufferLike | null
  /** Message start 8-aligned on a little-endian host: typed arrays; else the DataView. */
  _a: boolean
  _u8: Uint8Array
  _i8: Int8Array
  _u16: Uint16Array
  _i16: Int16Array
  _u32: Uint32Array
  _i32: Int32Array
  _f32: Float32Array
  _f64: Float64Array
  _u64: BigUint64Array
  _i64: BigInt64Array
  _dv: DataView
  _buf: Buffer
}

interface Arrays {
  u8: Uint8Array
  i8: Int8Array
  u16: Uint16Array
  i16: Int16Array
  u32: Uint32Array
  i32: Int32Array
  f32: Float32Array
  f64: Float64Array
  u64: BigUint64Array
  i64: BigInt64Array
  dv: DataView
  buf: Buffer
}

// one set per buffer, shared by every schema's flyweights (a ring's segment is one buffer)
const cache = new WeakMap<ArrayBufferLike, Arrays>()

function arraysOf(ab: ArrayBufferLike): Arrays {
  let arrays = cache.get(ab)
  if (arrays === undefined) {
    const n = ab.byteLength
    arrays = {
      u8: new Uint8Array(ab, 0, n),
      i8: new Int8Array(ab, 0, n),
      u16: new Uint16Array(ab, 0, n >>> 1),
      i16: new Int16Array(ab, 0, n >>> 1),
      u32: new Uint32Array(ab, 0, n >>> 2),
      i32: new Int32Array(ab, 0, n >>> 2),
      f32: new Float32Array(ab, 0, n >>> 2),
      f64: new Float64Array(ab, 0, n >>> 3),
      u64: new BigUint64Array(ab, 0, n >>> 3),
      i64: new BigInt64Array(ab, 0, n >>> 3),
      dv: new DataView(ab, 0, n),
      buf: Buffer.from(ab, 0, n),
    }
    cache.set(ab, arrays)
  }
  return arrays
}

/** Points `m` at the buffer under `bytes` (a no-op when it already is). */
export function useBuffer(m: Memory, bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw formatError('a message is a Uint8Array (or Buffer)')
  const ab = bytes.buffer
  // (a detached buffer keeps its identity with length 0: callers have already refused its 0 bytes)
  if (ab === m._ab) return
  const a = arraysOf(ab)
  if (a.u8.length !== ab.byteLength) {
    cache.delete(ab)
    return useBuffer(m, bytes)
  }
  m._ab = ab
  m._u8 = a.u8
  m._i8 = a.i8
  m._u16 = a.u16
  m._i16 = a.i16
  m._u32 = a.u32
  m._i32 = a.i32
  m._f32 = a.f32
  m._f64 = a.f64
  m._u64 = a.u64
  m._i64 = a.i64
  m._dv = a.dv
  m._buf = a.buf
}

const EMPTY = new ArrayBuffer(8)

/**
 * The byteOffset of `bytes` in its buffer, with `m` pointed at that buffer.
 * A consumer's drainRaw() hands the same Uint8Array (the segment) every
 * time, so the common case is one comparison.
 */
export function baseOf(m: Memory, bytes: Uint8Array): number {
  if (bytes === m._bytes) return m._bo
  useBuffer(m, bytes)
  m._bytes = bytes
  m._bo = bytes.byteOffset
  return m._bo
}

/** Field initialisers for a new flyweight, in one order so every flyweight has one shape. */
export function initMemory(m: Memory): void {
  m._bytes = null
  m._bo = 0
  m._ab = null
  m._a = false
  useBuffer(m, new Uint8Array(EMPTY))
}

/** Source of the statements that give a generated class the memory fields, in the constructor. */
export const INIT_MEMORY_SOURCE = 'initMemory(this);'

const SHIFT: Record<ScalarType, number> = { u8: 0, i8: 0, bool: 0, u16: 1, i16: 1, u32: 2, i32: 2, f32: 2, f64: 3, u64: 3, i64: 3 }
const GETTER: Record<ScalarType, string> = {
  u8: 'Uint8',
  i8: 'Int8',
  bool: 'Uint8',
  u16: 'Uint16',
  i16: 'Int16',
  u32: 'Uint32',
  i32: 'Int32',
  f32: 'Float32',
  f64: 'Float64',
  u64: 'BigUint64',
  i64: 'BigInt64',
}
const ARRAY: Record<ScalarType, string> = { u8: '_u8', i8: '_i8', bool: '_u8', u16: '_u16', i16: '_i16', u32: '_u32', i32: '_i32', f32: '_f32', f64: '_f64', u64: '_u64', i64: '_i64' }

/** Expression reading scalar `type` at absolute byte position `p` through memory `m` (a JS expression each). */
export function readExpr(type: ScalarType, m: string, p: string): string {
  const shift = SHIFT[type]
  if (type === 'bool') return `(${m}._u8[${p}] !== 0)`
  if (shift === 0) return `${m}.${ARRAY[type]}[${p}]`
  return `(${m}._a ? ${m}.${ARRAY[type]}[(${p}) >>> ${shift}] : ${m}._dv.get${GETTER[type]}(${p}, true))`
}

/** Statement writing `v` (already the stored type) as scalar `type` at position `p`. */
export function writeStmt(type: ScalarType, m: string, p: string, v: string): string {
  const shift = SHIFT[type]
  if (type === 'bool') return `${m}._u8[${p}] = ${v} ? 1 : 0;`
  if (shift === 0) return `${m}.${ARRAY[type]}[${p}] = ${v};`
  return `if (${m}._a) ${m}.${ARRAY[type]}[(${p}) >>> ${shift}] = ${v}; else ${m}._dv.set${GETTER[type]}(${p}, ${v}, true);`
}

const TWO_32 = 4294967296

/** A u64/i64 read as a number; refused beyond 2^53, where a number would silently round. */
export function readWideNumber(m: Memory, p: number, signed: boolean, field: string): number {
  const lo = m._a ? m._u32[p >>> 2]! : m._dv.getUint32(p, true)
  const hi = signed ? (m._a ? m._i32[(p >>> 2) + 1]! : m._dv.getInt32(p + 4, true)) : m._a ? m._u32[(p >>> 2) + 1]! : m._dv.getUint32(p + 4, true)
  if (hi > 0x1fffff || hi < -0x200000) {
    throw formatError(`${field} holds a value beyond 2^53, which a number cannot hold exactly: declare it without as: 'number' to read it as a bigint`)
  }
  return hi * TWO_32 + lo
}

export function writeWideNumber(m: Memory, p: number, v: number, field: string): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw formatError(`${field} must be a safe integer (got ${String(v)})`)
  const hi = Math.floor(v / TWO_32)
  const lo = v - hi * TWO_32
  if (m._a) {
    m._u32[p >>> 2] = lo
    m._i32[(p >>> 2) + 1] = hi
  } else {
    m._dv.setUint32(p, lo, true)
    m._dv.setInt32(p + 4, hi, true)
  }
}

const fromCharCode = String.fromCharCode

/** Up to 8 ASCII bytes as one string, made in one step (no concatenation, no call out of JS). */
function ascii8(u: Uint8Array, p: number, n: number): string {
  switch (n) {
    case 0:
      return ''
    case 1:
      return fromCharCode(u[p]!)
    case 2:
      return fromCharCode(u[p]!, u[p + 1]!)
    case 3:
      return fromCharCode(u[p]!, u[p + 1]!, u[p + 2]!)
    case 4:
      return fromCharCode(u[p]!, u[p + 1]!, u[p + 2]!, u[p + 3]!)
    case 5:
      return fromCharCode(u[p]!, u[p + 1]!, u[p + 2]!, u[p + 3]!, u[p + 4]!)
    case 6:
      return fromCharCode(u[p]!, u[p + 1]!, u[p + 2]!, u[p + 3]!, u[p + 4]!, u[p + 5]!)
    case 7:
      return fromCharCode(u[p]!, u[p + 1]!, u[p + 2]!, u[p + 3]!, u[p + 4]!, u[p + 5]!, u[p + 6]!)
    default:
      return fromCharCode(u[p]!, u[p + 1]!, u[p + 2]!, u[p + 3]!, u[p + 4]!, u[p + 5]!, u[p + 6]!, u[p + 7]!)
  }
}

/** UTF-8 of bytes [p, p + n): short ASCII in JS, anything else through Buffer's decoder. */
export function readUtf8(m: Memory, p: number, n: number): string {
  if (n <= 16) {
    const u = m._u8
    let high = 0
    for (let i = p, end = p + n; i < end; i++) high |= u[i]!
    if (high < 0x80) return n <= 8 ? ascii8(u, p, n) : ascii8(u, p, 8) + ascii8(u, p + 8, n - 8)
  }
  return m._buf.toString('utf8', p, p + n)
}

/** Length of a char[n] value: up to its first zero byte. */
export function charLength(m: Memory, p: number, width: number): number {
  const u8 = m._u8
  let n = 0
  while (n < width && u8[p + n] !== 0) n++
  return n
}

/**
 * Writes `s` as UTF-8 at p, at most `room` bytes. Returns the byte length, or
 * -1 when it does not fit (nothing beyond p + room is touched).
 */
export function writeUtf8(m: Memory, s: string, p: number, room: number): number {
  const n = s.length
  if (n <= room) {
    const u8 = m._u8
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      u8[p + i] = c
    }
    if (i === n) return n
  }
  const bytes = Buffer.byteLength(s, 'utf8')
  if (bytes > room) return -1
  m._buf.write(s, p, bytes, 'utf8')
  return bytes
}

/** Exact UTF-8 byte length of `s`. */
export function utf8Length(s: string): number {
  const n = s.length
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8')
  return n
}
