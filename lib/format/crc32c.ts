/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of a
 * message trailer. Two implementations, chosen by length: a slicing-by-8 table
 * in JavaScript (no call into the addon, so it wins on short messages) and
 * the addon's SSE4.2 instruction (native/crc32c.cc) past NATIVE_FROM bytes,
 * where the call's fixed cost is paid back. scripts/bench-format.mjs measures
 * both by size; the threshold comes from that table.
 */

const POLY = 0x82f63b78
/** 8 tables of 256 entries: table k maps a byte to its CRC contribution k bytes further on. */
const TABLE = new Int32Array(8 * 256)
for (let n = 0; n < 256; n++) {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
  TABLE[n] = c
}
for (let n = 0; n < 256; n++) {
  let c = TABLE[n]!
  for (let k = 1; k < 8; k++) {
    c = TABLE[c & 0xff]! ^ (c >>> 8)
    TABLE[k * 256 + n] = c
  }
}

/** CRC32C of bytes[start, end) in JavaScript, continuing from `crc` (0 to start). */
export function crc32cJs(bytes: Uint8Array, start: number = 0, end: number = bytes.length, crc: number = 0): number {
  const t = TABLE
  let c = ~crc
  let i = start
  // slicing-by-8: one table lookup per byte, eight bytes per step, no dependency chain between them
  for (const stop = end - 8; i <= stop; i += 8) {
    const lo = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
    c =
      t[1792 + (lo & 0xff)]! ^
      t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

type NativeCrc = (buffer: ArrayBuffer, byteOffset: number, length: number, crc: number) => number

/** The addon's CRC32C, or null when the addon is not loadable or the CPU lacks SSE4.2. */
let nativeCrc: NativeCrc | null | undefined

function loadNative(): NativeCrc | null {
  try {
    // loaded lazily: the format works on plain bytes without the addon
    const { native } = require('../native') as typeof import('../native')
    // an addon built before crc32c existed (a stale prebuild) lacks it: the table serves
    if (typeof native.crc32c !== 'function' || native.crc32cHardware !== true) return null
    return native.crc32c
  } catch {
    return null
  }
}

/**
 * From this many bytes on the addon's SSE4.2 CRC is faster than the JS table
 * (measured by scripts/bench-format.mjs; see docs/FORMAT.md).
 */
export const NATIVE_FROM = 256

/** CRC32C of bytes[start, end), by the faster implementation for that length. */
export function crc32c(bytes: Uint8Array, start: number = 0, end: number = bytes.length, crc: number = 0): number {
  if (end - start >= NATIVE_FROM) {
    if (nativeCrc === undefined) nativeCrc = loadNative()
    // the addon takes ArrayBuffers (a SharedArrayBuffer goes to the table)
    if (nativeCrc !== null && bytes.buffer instanceof ArrayBuffer) return nativeCrc(bytes.buffer, bytes.byteOffset + start, end - start, crc)
  }
  return crc32cJs(bytes, start, end, crc)
}

/** Which implementation a length goes to: for tests and benchmarks. */
export function crc32cImplementation(length: number): 'js' | 'sse4.2' {
  if (length < NATIVE_FROM) return 'js'
  if (nativeCrc === undefined) nativeCrc = loadNative()
  return nativeCrc === null ? 'js' : 'sse4.2'
}
