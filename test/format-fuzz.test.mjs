// Untrusted input: random bytes, random truncations, random bit flips and
// random 32-bit words written over valid messages. Every read (decode, and
// every getter of the flyweight) must end in a value or ERR_SHMQ_FORMAT,
// nothing else; and must not read outside the message: the same bytes
// surrounded by different garbage (in the same buffer, at the same
// alignment) must give the same outcome. SHMQ_FORMAT_FUZZ_CASES sets the
// count, SHMQ_FORMAT_FUZZ_SEED replays a run (the seed is in every failure).
import { createRequire } from 'node:module'
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const { ShmqError } = require('../dist/index.js')
const { OrderV1, OrderV2, Everything, Tick } = require('./fixtures/format-schemas.cjs')

const CASES = Number(process.env.SHMQ_FORMAT_FUZZ_CASES ?? 20_000)
const SEED = Number(process.env.SHMQ_FORMAT_FUZZ_SEED ?? Date.now() % 1_000_000_007)

function prng(seed) {
  let s = seed >>> 0 || 1
  return () => {
    // xorshift32
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 4294967296
  }
}

const order = { price: 1.5, qty: 3, side: 'buy', ts: 99n, account: -1n, symbol: 'MSFT', venue: 'XNYS', legs: [{ px: 1, qty: 1 }, { px: 2, qty: 2 }, { px: 3, qty: 3 }] }
const bases = [
  OrderV1.encode(order),
  OrderV2.encode({ ...order, note: 'a longer note, ünïcödé', tif: 2 }),
  OrderV2.encode({ ...order, tif: 1 }, { checksum: true }),
  Everything.encode({
    a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9n, j: 10n, k: true, n: 11, m: 12, code: 'abc', kind: 'mid',
    pos: { x: 1, y: 2, tag: 3, inner: { z: 4, w: 5 } }, maybe: 6, text: 'text', blob: new Uint8Array([1, 2]), pts: [{ t: 1, v: 2, c: 'c' }], opt: 'o',
  }, { checksum: false }),
  Tick.encode({ seq: 1, qty: 2, bid: 3, ask: 4, bidSize: 5, askSize: 6, ts: 7 }),
]
const schemas = [OrderV1, OrderV2, Everything, Tick]
// the schemas that read each base (others refuse it by schema id)
const readers = [[OrderV1, OrderV2], [OrderV1, OrderV2], [OrderV1, OrderV2], [Everything], [Tick]]

let lastBase = 0
function mutate(random) {
  const pick = (n) => Math.floor(random() * n)
  const which = pick(bases.length)
  const base = bases[which]
  lastBase = which
  const kind = pick(5)
  if (kind === 0) {
    const out = new Uint8Array(pick(200))
    for (let i = 0; i < out.length; i++) out[i] = pick(256)
    // often a plausible header, so the reads get past it
    if (out.length >= 16 && random() < 0.7) out.set(base.subarray(0, 16))
    return out
  }
  const out = base.slice()
  if (kind === 1) return out.subarray(0, pick(out.length + 1))
  if (kind === 2) {
    for (let n = 1 + pick(8); n > 0; n--) {
      const bit = pick(out.length * 8)
      out[bit >> 3] ^= 1 << (bit & 7)
    }
    return out
  }
  if (kind === 3) {
    const dv = new DataView(out.buffer)
    for (let n = 1 + pick(3); n > 0; n--) {
      const at = pick(out.length - 3)
      const value = [0, 1, 0xffffffff, 0x7fffffff, out.length, out.length - 1, 16, pick(2 ** 32)][pick(8)]
      dv.setUint32(at, value, true)
    }
    return out
  }
  return out.subarray(0, pick(out.length + 1)).map((b) => (random() < 0.05 ? pick(256) : b))
}

/** Every field of the flyweight, every element of its arrays, as one string. */
function touch(reader) {
  const seen = []
  for (const key of Object.getOwnPropertyNames(Object.getPrototypeOf(reader))) {
    if (key === 'constructor' || key.startsWith('_')) continue
    const value = reader[key]
    if (value && typeof value.get === 'function' && typeof value.length === 'number') {
      const n = value.length
      expect(n).toBeLessThanOrEqual(16)
      for (let i = 0; i < n; i++) seen.push(value.get(i)._toObject())
      try {
        value.get(n)
        seen.push('no bounds check')
      } catch (error) {
        seen.push(outcomeOf(error))
      }
    } else if (value && typeof value._toObject === 'function') {
      seen.push(value._toObject())
    } else {
      seen.push(value)
    }
  }
  return seen
}

function outcomeOf(error) {
  if (error instanceof ShmqError && error.code === 'ERR_SHMQ_FORMAT') return `ERR_SHMQ_FORMAT ${error.message}`
  throw error
}

/** What reading `bytes` (placed inside garbage) through `schema` gives, as a string. */
function read(schema, bytes, garbage, shift) {
  const buffer = new Uint8Array(bytes.length + 64)
  for (let i = 0; i < buffer.length; i++) buffer[i] = garbage
  const at = buffer.subarray(8 + shift, 8 + shift + bytes.length)
  at.set(bytes)
  const results = []
  for (const run of [() => schema.decode(at), () => touch(schema.view(at)), () => touch(schema.wrap(buffer, 8 + shift, bytes.length))]) {
    try {
      results.push(run())
    } catch (error) {
      results.push(outcomeOf(error))
    }
  }
  return { text: inspect(results, { depth: 6, maxArrayLength: 100 }), decoded: typeof results[0] !== 'string' }
}

describe('format: fuzz', () => {
  it(`only ERR_SHMQ_FORMAT, no read outside the message, for ${CASES} mutated messages (seed ${SEED})`, () => {
    const random = prng(SEED)
    const counts = { valid: 0, refused: 0 }
    for (let c = 0; c < CASES; c++) {
      const bytes = mutate(random)
      const own = readers[lastBase]
      const schema = random() < 0.8 ? own[Math.floor(random() * own.length)] : schemas[Math.floor(random() * schemas.length)]
      const shift = random() < 0.8 ? 0 : 1 + Math.floor(random() * 7)
      let first
      try {
        first = read(schema, bytes, 0x00, shift)
        const second = read(schema, bytes, 0xa5, shift)
        const third = read(schema, bytes, 0xff, shift)
        expect(second.text).toBe(first.text)
        expect(third.text).toBe(first.text)
      } catch (error) {
        error.message = `seed ${SEED}, case ${c} (${schema.name}, shift ${shift}, bytes ${Buffer.from(bytes).toString('hex')}): ${error.message}`
        throw error
      }
      if (!first.decoded) counts.refused++
      else counts.valid++
    }
    // the mutations reach both outcomes
    expect(counts.valid).toBeGreaterThan(CASES / 50)
    expect(counts.refused).toBeGreaterThan(CASES / 50)
  })
})
