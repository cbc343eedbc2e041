// The message format on plain bytes: every field type round-trips through the
// writer, encode, the flyweight and decode, at aligned and unaligned starts;
// versions read each other; the compatibility check refuses what would break
// them; sizes, bounds and checksums hold.
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const { defineMessage, checkCompatible, compatibilityProblems, readHeader, schemaIdOf, ShmqError } = require('../dist/index.js')
const { OrderV1, OrderV2, Everything, Tick } = require('./fixtures/format-schemas.cjs')

const order = {
  price: 101.25,
  qty: 300,
  side: 'sell',
  ts: 1_733_000_000_123_456_789n,
  account: -42n,
  symbol: 'AAPL',
  venue: 'XNAS',
  legs: [
    { px: 101.5, qty: 100 },
    { px: 101.75, qty: 200 },
  ],
}

const everything = {
  a: 255,
  b: -128,
  c: 65535,
  d: -32768,
  e: 4294967295,
  f: -2147483648,
  g: 1.5,
  h: Math.PI,
  i: 18446744073709551615n,
  j: -9223372036854775808n,
  k: true,
  n: Number.MAX_SAFE_INTEGER,
  m: -Number.MAX_SAFE_INTEGER,
  code: 'ab€',
  kind: 'high',
  pos: { x: 0.5, y: -2, tag: 7, inner: { z: 9, w: 1e300 } },
  maybe: 12,
  text: 'grüße, 世界',
  blob: new Uint8Array([1, 2, 3, 250]),
  pts: [
    { t: 1, v: 0.25, c: 'x' },
    { t: 2, v: -1, c: 'xyz' },
  ],
  opt: undefined,
}

function expectFormatError(fn, pattern) {
  let error
  try {
    fn()
  } catch (e) {
    error = e
  }
  expect(error, 'expected ERR_SHMQ_FORMAT').toBeInstanceOf(ShmqError)
  expect(error.code).toBe('ERR_SHMQ_FORMAT')
  if (pattern) expect(error.message).toMatch(pattern)
  return error
}

/** The same message copied to `shift` bytes past an 8-aligned start. */
function shifted(bytes, shift) {
  const buffer = new ArrayBuffer(bytes.length + 16)
  const out = new Uint8Array(buffer, shift, bytes.length)
  out.set(bytes)
  return out
}

describe('format: round trips', () => {
  it('encodes and decodes every field type, at every start alignment', () => {
    const bytes = Everything.encode(everything)
    expect(bytes.length).toBe(Everything.sizeOf(everything))
    for (let shift = 0; shift < 8; shift++) {
      const at = shifted(bytes, shift)
      const back = Everything.decode(at)
      expect(back).toEqual({ ...everything })
      const r = Everything.view(at)
      expect(r.i).toBe(everything.i)
      expect(r.pos.inner.w).toBe(1e300)
      expect(r.pts.get(1).c).toBe('xyz')
      expect([...r.pts].length).toBe(2)
      expect(r.maybe).toBe(12)
      expect(r.opt).toBe(undefined)
      expect(r.$length).toBe(bytes.length)
    }
  })

  it('the in-place writer produces the bytes encode() does, in any assignment order, at any alignment', () => {
    const expected = OrderV2.encode({ ...order, note: 'n', tif: 1 })
    for (let shift = 0; shift < 8; shift++) {
      const target = new Uint8Array(new ArrayBuffer(512), shift, 300).fill(0xee)
      const w = OrderV2.writer(target)
      w.tif = 1
      w.symbol = order.symbol
      w.legs = order.legs
      w.note = 'n'
      w.venue = order.venue
      w.account = order.account
      w.ts = order.ts
      w.side = order.side
      w.qty = order.qty
      w.price = order.price
      const n = w.length
      expect(OrderV2.decode(target.subarray(0, n))).toEqual(OrderV2.decode(expected))
      expect(n).toBe(expected.length)
      // nothing written past what the writer reports
      expect(target.subarray(n).every((b) => b === 0xee)).toBe(true)
    }
  })

  it('writerAt() and encodeAt() write at an offset of a larger buffer (a raw claim) exactly what encode() does, and nothing around it', () => {
    const values = { ...order, note: 'n', tif: 1 }
    const expected = OrderV2.encode(values)
    const bytes = new Uint8Array(1024)
    for (const offset of [0, 8, 13, 600]) {
      bytes.fill(0xee)
      const w = OrderV2.writerAt(bytes, offset, 300)
      for (const [key, value] of Object.entries(values)) w[key] = value
      const n = w.length
      expect(Array.from(bytes.subarray(offset, offset + n))).toEqual(Array.from(expected))
      expect(bytes.subarray(0, offset).every((b) => b === 0xee) && bytes.subarray(offset + n).every((b) => b === 0xee)).toBe(true)
      bytes.fill(0xee)
      expect(OrderV2.encodeAt(bytes, offset, 300, values)).toBe(expected.length)
      expect(Array.from(bytes.subarray(offset, offset + expected.length))).toEqual(Array.from(expected))
      expect(bytes.subarray(offset + expected.length).every((b) => b === 0xee)).toBe(true)
    }
    // a range outside the bytes, or a capacity too small, is ERR_SHMQ_FORMAT before anything is written
    bytes.fill(0xee)
    for (const [offset, capacity] of [[900, 300], [-1, 10], [0, 8]]) {
      expect(() => OrderV2.writerAt(bytes, offset, capacity)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_FORMAT' }))
      expect(() => OrderV2.encodeAt(bytes, offset, capacity, values)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_FORMAT' }))
    }
    expect(bytes.every((b) => b === 0xee)).toBe(true)
  })

  it('sizeOf is exact and maxSizeOf a bound, for ASCII and non-ASCII strings', () => {
    for (const symbol of ['', 'A', 'AAPL', 'ÄÖÜ', '😀x']) {
      const values = { ...order, symbol }
      const n = OrderV1.encodeInto(new Uint8Array(512), values)
      expect(OrderV1.sizeOf(values)).toBe(n)
      expect(OrderV1.maxSizeOf(values)).toBeGreaterThanOrEqual(n)
      expect(OrderV1.sizeOf(values, { checksum: true })).toBe(n + 4)
    }
  })

  it('reuses one flyweight unless asked for a fresh one, and rebinds it per message', () => {
    const a = Tick.encode({ seq: 1, qty: 2, bid: 3, ask: 4, bidSize: 5, askSize: 6, ts: 7 })
    const b = Tick.encode({ seq: 9, qty: 2, bid: 3, ask: 4, bidSize: 5, askSize: 6, ts: 7 })
    const ra = Tick.view(a)
    const rb = Tick.view(b)
    expect(ra).toBe(rb)
    expect(ra.seq).toBe(9)
    const fresh = Tick.view(a, { fresh: true })
    expect(fresh).not.toBe(rb)
    expect(fresh.seq).toBe(1)
    expect(Tick.wrap(b, 0, b.length).seq).toBe(9)
    expect(a.length).toBe(64)
  })

  it('reads the header without a schema', () => {
    const bytes = OrderV2.encode({ ...order, tif: 0 }, { checksum: true })
    expect(schemaIdOf(bytes)).toBe(7)
    expect(schemaIdOf(bytes.subarray(0, 3))).toBe(-1)
    expect(readHeader(bytes)).toEqual({ length: bytes.length, schemaId: 7, version: 2, fixedLength: OrderV2.layout.fixedLength, headerLength: 16, checksum: true })
  })

  it('reads u64 as a number only while it is exact', () => {
    const bytes = Everything.encode(everything)
    const view = new DataView(bytes.buffer, bytes.byteOffset)
    const at = 16 + Everything.layout.fields.find((f) => f.name === 'n').offset
    view.setUint32(at + 4, 0x200000, true)
    // the checksum no longer matches: re-encode through a schema without one
    const Wide = defineMessage({ name: 'Wide', id: 3, fields: { n: { type: 'u64', as: 'number' }, big: 'u64' } })
    const w = Wide.encode({ n: 5, big: 2n ** 60n })
    new DataView(w.buffer, w.byteOffset).setUint32(16 + 4, 0x200000, true)
    expectFormatError(() => Wide.view(w).n, /beyond 2\^53/)
    expect(Wide.view(w).big).toBe(2n ** 60n)
    expectFormatError(() => Wide.encode({ n: 2 ** 53, big: 0n }), /safe integer/)
  })
})

describe('format: evolution', () => {
  it('a version 2 reader reads version 1 messages with defaults for the new fields', () => {
    const v1 = OrderV1.encode(order)
    const r = OrderV2.view(v1)
    expect(r.$version).toBe(1)
    expect(r.note).toBe(undefined)
    expect(r.tif).toBe(3)
    expect(r.symbol).toBe('AAPL')
    expect(OrderV2.decode(v1)).toEqual({ ...order, note: undefined, tif: 3 })
  })

  it('a version 1 reader reads version 2 messages, skipping the fields it does not know', () => {
    const v2 = OrderV2.encode({ ...order, note: 'a note past the v1 block', tif: 1 }, { checksum: true })
    const r = OrderV1.view(v2)
    expect(r.$version).toBe(2)
    expect(OrderV1.decode(v2)).toEqual(order)
    expect(r.legs.get(1).qty).toBe(200)
  })

  it('checkCompatible accepts appended fields and refuses changed, moved, removed or unversioned ones', () => {
    expect(() => checkCompatible(OrderV1, OrderV2)).not.toThrow()
    const base = { name: 'Order', id: 7 }
    const fields = OrderV1.fields
    const retyped = defineMessage({ ...base, version: 2, fields: { ...fields, qty: 'u16' } })
    expectFormatError(() => checkCompatible(OrderV1, retyped), /'qty' changed type from u32 to u16/)
    const { price, qty, ...rest } = fields
    const reordered = defineMessage({ ...base, version: 2, fields: { qty, price, ...rest } })
    expectFormatError(() => checkCompatible(OrderV1, reordered), /moved/)
    const { venue, ...removed } = fields
    expectFormatError(() => checkCompatible(OrderV1, defineMessage({ ...base, version: 2, fields: removed })), /'venue' was removed/)
    const unversioned = defineMessage({ ...base, version: 2, fields: { ...fields, extra: 'u8' } })
    expect(compatibilityProblems(OrderV1, unversioned).join()).toMatch(/new field 'extra' needs since: 2/)
    const sameVersion = defineMessage({ ...base, version: 1, fields: { ...fields, extra: { type: 'u8', since: 1 } } })
    expect(compatibilityProblems(OrderV1, sameVersion).join()).toMatch(/does not follow/)
    const otherId = defineMessage({ ...OrderV2, id: 8, fields: OrderV2.fields, version: 2 })
    expect(compatibilityProblems(OrderV1, otherId).join()).toMatch(/ids differ/)
    const shrunk = defineMessage({ ...base, version: 2, fields: { ...fields, symbol: { type: 'string', max: 8 } } })
    expect(compatibilityProblems(OrderV1, shrunk).join()).toMatch(/max/)
    const legs = defineMessage({ ...base, version: 2, fields: { ...fields, legs: { type: 'array', of: { px: 'f32', qty: 'u32' }, max: 16 } } })
    expect(compatibilityProblems(OrderV1, legs).join()).toMatch(/'legs' changed type/)
  })

  it('refuses bad declarations', () => {
    expectFormatError(() => defineMessage({ name: 'X', id: 0, fields: { a: 'u8' } }), /id/)
    expectFormatError(() => defineMessage({ name: 'X', id: 1, fields: { a: 'u128' } }), /unknown field type/)
    expectFormatError(() => defineMessage({ name: 'X', id: 1, fields: { length: 'u8' } }), /not allowed/)
    expectFormatError(() => defineMessage({ name: 'X', id: 1, fields: { a: { type: 'u8', since: 2 } } }), /since/)
    expectFormatError(() => defineMessage({ name: 'X', id: 1, fields: { a: { type: 'struct', fields: { s: 'string' } } } }), /fixed-width/)
    expectFormatError(() => defineMessage({ name: 'X', id: 1, fields: { a: { type: 'enum', values: { x: 1, y: 1 } } } }), /twice/)
  })
})

describe('format: bounds and integrity', () => {
  it('the writer refuses what does not fit, before writing past the target', () => {
    expectFormatError(() => OrderV1.writer(new Uint8Array(40)), /needs at least/)
    const target = new Uint8Array(OrderV1.layout.fixedLength + 16 + 3)
    const w = OrderV1.writer(target)
    expectFormatError(() => (w.symbol = 'AAPL'), /bytes left/)
    w.symbol = 'AAP'
    expectFormatError(() => OrderV1.encodeInto(new Uint8Array(512), { ...order, symbol: 'x'.repeat(33) }), /max of 32/)
    expectFormatError(() => OrderV1.encodeInto(new Uint8Array(1024), { ...order, legs: new Array(17).fill({ px: 1, qty: 1 }) }), /max of 16/)
    expectFormatError(() => OrderV1.encodeInto(new Uint8Array(512), { ...order, venue: 'TOO-LONG-' }), /do not fit its 8/)
    expectFormatError(() => OrderV1.encodeInto(new Uint8Array(512), { ...order, side: 'hold' }), /not one of buy, sell/)
    const { qty, ...missing } = order
    expectFormatError(() => OrderV1.encode(missing), /Order.qty is missing/)
  })

  it('a checksum catches every single-bit flip, per schema and per message', () => {
    const withSum = Everything.encode(everything)
    expect(readHeader(withSum).checksum).toBe(true)
    for (let bit = 0; bit < withSum.length * 8; bit += 7) {
      const copy = withSum.slice()
      copy[bit >> 3] ^= 1 << (bit & 7)
      expectFormatError(() => Everything.decode(copy))
    }
    const plain = OrderV1.encode(order)
    expect(readHeader(plain).checksum).toBe(false)
    const summed = OrderV1.encode(order, { checksum: true })
    expect(summed.length).toBe(plain.length + 4)
    summed[40] ^= 0x10
    expectFormatError(() => OrderV1.view(summed), /CRC32C mismatch/)
    // the writer's length computes the checksum over what was assigned
    const target = new Uint8Array(256)
    const w = OrderV1.writer(target, { checksum: true })
    Object.assign(w, order)
    expect(OrderV1.decode(target.subarray(0, w.length))).toEqual(order)
  })

  it('refuses messages of another schema, short or inconsistent headers, and variable fields pointing outside', () => {
    const bytes = OrderV1.encode(order)
    expectFormatError(() => Tick.view(bytes), /schema id 7 where 11 was expected/)
    expectFormatError(() => OrderV1.view(bytes.subarray(0, 15)), /shorter than a message header/)
    expectFormatError(() => OrderV1.view(bytes.subarray(0, bytes.length - 1)), /Length field says/)
    const dv = (b) => new DataView(b.buffer, b.byteOffset)
    const flags = bytes.slice()
    flags[11] = 0x80
    expectFormatError(() => OrderV1.view(flags), /unknown flags/)
    const block = bytes.slice()
    dv(block).setUint16(8, 8, true)
    expectFormatError(() => OrderV1.view(block), /fixed block/)
    const symbolSlot = 16 + OrderV1.layout.fields.find((f) => f.name === 'symbol').offset
    const outside = bytes.slice()
    dv(outside).setUint32(symbolSlot, bytes.length - 2, true)
    const r = OrderV1.view(outside)
    expect(r.price).toBe(order.price)
    expectFormatError(() => r.symbol, /do not lie in the variable data/)
    const intoHeader = bytes.slice()
    dv(intoHeader).setUint32(symbolSlot, 4, true)
    expectFormatError(() => OrderV1.view(intoHeader).symbol, /variable data/)
    const legsSlot = 16 + OrderV1.layout.fields.find((f) => f.name === 'legs').offset
    const misaligned = bytes.slice()
    dv(misaligned).setUint32(legsSlot, dv(misaligned).getUint32(legsSlot, true) + 4, true)
    expectFormatError(() => OrderV1.view(misaligned).legs, /alignment/)
    const many = bytes.slice()
    dv(many).setUint32(legsSlot + 4, 1_000_000, true)
    expectFormatError(() => OrderV1.view(many).legs, /max of 16/)
    expectFormatError(() => OrderV1.view(bytes).legs.get(2), /outside 0..1/)
    const badEnum = bytes.slice()
    badEnum[16 + OrderV1.layout.fields.find((f) => f.name === 'side').offset] = 9
    expectFormatError(() => OrderV1.view(badEnum).side, /not one of its enum values/)
    expectFormatError(() => OrderV1.wrap(bytes, 4, bytes.length), /outside/)
    expectFormatError(() => OrderV1.view('bytes'), /Uint8Array/)
  })
})
