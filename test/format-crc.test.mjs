// CRC32C: the JS table and the addon agree with the standard check value and
// with each other (and with the fast-crc32c package) at every length, offset
// and continuation; the addon refuses ranges outside its buffer; crc32c()
// picks the table for short messages and SSE4.2 for long ones.
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const { crc32c } = require('../dist/index.js')
const { crc32cJs, crc32cImplementation, NATIVE_FROM } = require('../dist/format/crc32c.js')
const { native } = require('../dist/native.js')
const fast = require('fast-crc32c')

const CHECK = new TextEncoder().encode('123456789')

function random(n, seed) {
  const out = new Uint8Array(n)
  let s = seed
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    out[i] = s >>> 24
  }
  return out
}

describe('format: CRC32C', () => {
  it('matches the standard check value (0xE3069283) in JS, in the addon and through crc32c()', () => {
    expect(crc32cJs(CHECK)).toBe(0xe3069283)
    expect(native.crc32c(CHECK.buffer, CHECK.byteOffset, CHECK.length)).toBe(0xe3069283)
    expect(crc32c(CHECK)).toBe(0xe3069283)
    expect(crc32cJs(new Uint8Array(32))).toBe(0x8a9136aa)
    expect(crc32cJs(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43)
  })

  it('JS, addon and fast-crc32c agree at every length and offset, and when continued', () => {
    const data = random(5000, 7)
    for (let start = 0; start < 9; start++) {
      for (let length = 0; length < 300; length++) {
        const view = data.subarray(start, start + length)
        const js = crc32cJs(data, start, start + length)
        expect(native.crc32c(data.buffer, start, length, 0)).toBe(js)
        expect(fast.calculate(Buffer.from(view))).toBe(js)
      }
    }
    for (const length of [1000, 4096, 4999]) {
      const js = crc32cJs(data, 1, 1 + length)
      expect(native.crc32c(data.buffer, 1, length)).toBe(js)
      expect(crc32c(data, 1, 1 + length)).toBe(js)
      const half = crc32cJs(data, 1, 500)
      expect(crc32cJs(data, 500, 1 + length, half)).toBe(js)
      expect(native.crc32c(data.buffer, 500, length - 499, half)).toBe(js)
    }
  })

  it('picks the table below NATIVE_FROM bytes and the SSE4.2 instruction from there on (x64)', () => {
    expect(native.crc32cHardware).toBe(process.arch === 'x64')
    expect(crc32cImplementation(NATIVE_FROM - 1)).toBe('js')
    expect(crc32cImplementation(NATIVE_FROM)).toBe(process.arch === 'x64' ? 'sse4.2' : 'js')
  })

  it('the addon validates its arguments', () => {
    const buffer = new ArrayBuffer(16)
    expect(() => native.crc32c(buffer, 8, 9)).toThrow(RangeError)
    expect(() => native.crc32c(buffer, 17, 0)).toThrow(RangeError)
    expect(() => native.crc32c(buffer, -1, 1)).toThrow()
    expect(() => native.crc32c(new Uint8Array(4), 0, 1)).toThrow(TypeError)
    expect(() => native.crc32c(buffer, 0, 1, 2 ** 32)).toThrow()
    expect(native.crc32c(buffer, 16, 0)).toBe(0)
    const gone = structuredClone(buffer, { transfer: [buffer] })
    expect(gone.byteLength).toBe(16)
    expect(() => native.crc32c(buffer, 0, 0)).toThrow(/detached/)
  })
})
