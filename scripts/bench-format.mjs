#!/usr/bin/env node
// Single-process microbenchmark of the message format (no ring, no second
// process): what a message costs to write in place and to read in place,
// against raw typed-array access at known offsets and against the usual
// codecs; CRC32C by message size; and the heap over 10 M reads with the
// reused flyweight. Medians of interleaved rounds.
//
//   node --expose-gc scripts/bench-format.mjs [--quick]
// The cross-process rows are in `npm run bench` (scripts/bench/format.mjs).

import { createRequire } from 'node:module'
import { PerformanceObserver } from 'node:perf_hooks'
import { loadCodecs } from './bench/format.mjs'

const require = createRequire(import.meta.url)
const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 7
const { codecs, order, use, BenchOrder, Tick } = loadCodecs()
const { crc32cJs } = require('../dist/format/crc32c.js')
const { crc32c } = require('../dist/index.js')
const { native } = require('../dist/native.js')
let fast = null
try {
  fast = require('fast-crc32c')
} catch {}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
let sink = 0

/** ns per call of fn(i), median over rounds; each round runs `n` calls. */
function time(fn, n) {
  for (let i = 0; i < Math.min(n, 200_000); i++) sink += fn(i) ?? 0
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) sink += fn(i) ?? 0
  return Number(process.hrtime.bigint() - t) / n
}

function compare(title, cases, n) {
  const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
  for (let r = 0; r < ROUNDS; r++) for (const [k, fn] of Object.entries(cases)) samples[k].push(time(fn, n))
  const out = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]))
  console.log(`\n${title}`)
  const first = Object.values(out)[0]
  for (const [k, v] of Object.entries(out)) console.log(`  ${k.padEnd(48)} ${v.toFixed(1).padStart(8)} ns   ${(v / first).toFixed(2)}×`)
  return out
}

// ---- 64 B fixed-only: in place in a 4 MiB region, 8-aligned slots like ring frames ----
const SLOTS = 1 << 16
const region = new ArrayBuffer(SLOTS * 64)
const u8 = new Uint8Array(region)
const f64 = new Float64Array(region)
const u32 = new Uint32Array(region)
const dv = new DataView(region)
const views = Array.from({ length: 1024 }, (_, i) => new Uint8Array(region, i * 64, 64))
const template = Tick.encode({ seq: 1, qty: 100, bid: 101.25, ask: 101.5, bidSize: 1000, askSize: 2000, ts: 1 })
for (let s = 0; s < SLOTS; s++) u8.set(template, s * 64)
const mask = SLOTS - 1

const writes = compare(
  '64 B fixed-only message, write one (header + 7 fields) into an aligned slot',
  {
    'format writer (Tick.writer(view) + 7 setters)': (i) => {
      const w = Tick.writer(views[i & 1023])
      w.seq = i
      w.qty = 100
      w.bid = 101.25
      w.ask = 101.5
      w.bidSize = 1000
      w.askSize = 2000
      w.ts = i
      return 0
    },
    'raw Float64Array/Uint32Array stores': (i) => {
      const b = (i & 1023) * 8
      u32[b * 2] = 64
      u32[b * 2 + 1] = 11 | (1 << 16)
      f64[b + 1] = 0
      u32[b * 2 + 4] = i
      u32[b * 2 + 5] = 100
      f64[b + 3] = 101.25
      f64[b + 4] = 101.5
      f64[b + 5] = 1000
      f64[b + 6] = 2000
      f64[b + 7] = i
      return 0
    },
    'DataView stores': (i) => {
      const b = (i & 1023) * 64
      dv.setUint32(b, 64, true)
      dv.setUint32(b + 4, 11 | (1 << 16), true)
      dv.setFloat64(b + 8, 0, true)
      dv.setUint32(b + 16, i, true)
      dv.setUint32(b + 20, 100, true)
      dv.setFloat64(b + 24, 101.25, true)
      dv.setFloat64(b + 32, 101.5, true)
      dv.setFloat64(b + 40, 1000, true)
      dv.setFloat64(b + 48, 2000, true)
      dv.setFloat64(b + 56, i, true)
      return 0
    },
    'Uint8Array.set of 64 ready bytes': (i) => {
      u8.set(template, (i & 1023) * 64)
      return 0
    },
  },
  quick ? 2_000_000 : 10_000_000,
)

const reads = compare(
  '64 B fixed-only message, read all 7 fields',
  {
    'format flyweight (Tick.wrap + 7 getters)': (i) => {
      const r = Tick.wrap(u8, (i & mask) * 64, 64)
      return r.seq + r.qty + r.bid + r.ask + r.bidSize + r.askSize + r.ts
    },
    'raw typed-array loads at known offsets': (i) => {
      const b = (i & mask) * 8
      if (u32[b * 2] > 64) throw new Error('length')
      return u32[b * 2 + 4] + u32[b * 2 + 5] + f64[b + 3] + f64[b + 4] + f64[b + 5] + f64[b + 6] + f64[b + 7]
    },
    'format flyweight, bound once, 7 getters': (() => {
      const r = Tick.wrap(u8, 0, 64)
      return () => r.seq + r.qty + r.bid + r.ask + r.bidSize + r.askSize + r.ts
    })(),
  },
  quick ? 2_000_000 : 10_000_000,
)

// ---- the order message, one process: encode, then read every field ----
const target = new Uint8Array(256)
const o = { ...order }
const encoded = Object.fromEntries(Object.entries(codecs).filter(([, c]) => c.encode).map(([k, c]) => [k, Uint8Array.from(c.encode(o, 1))]))
const orderBytes = BenchOrder.encode(o)
console.log(`\norder message sizes: format ${orderBytes.length} B, ${Object.entries(encoded).map(([k, b]) => `${k} ${b.length} B`).join(', ')}`)
compare(
  'order message: encode one',
  {
    'format writer in place (10 setters + symbol)': (i) => {
      const w = BenchOrder.writer(target)
      w.price = o.price
      w.bid = o.bid
      w.ask = o.ask
      w.ts = o.ts
      w.account = o.account
      w.qty = o.qty
      w.orderId = i
      w.flags = o.flags
      w.side = o.side
      w.tif = o.tif
      w.symbol = o.symbol
      return w.length
    },
    'format encodeInto (from the object)': (i) => {
      o.orderId = i
      return BenchOrder.encodeInto(target, o)
    },
    'JSON.stringify + Buffer.from': (i) => codecs.json.encode(o, i).length,
    'msgpackr pack': (i) => codecs.msgpackr.encode(o, i).length,
    'protobufjs encode().finish()': (i) => codecs.protobufjs.encode(o, i).length,
    'flatbuffers Builder': (i) => codecs.flatbuffers.encode(o, i).length,
  },
  quick ? 300_000 : 1_000_000,
)
compare(
  'order message: read every field of one',
  {
    'format flyweight (wrap + 11 getters)': () => codecs.format.read(orderBytes, 0, orderBytes.length),
    'JSON.parse(TextDecoder)': () => codecs.json.read(encoded.json, 0, encoded.json.length),
    'msgpackr unpack': () => codecs.msgpackr.read(encoded.msgpackr, 0, encoded.msgpackr.length),
    'protobufjs decode': () => codecs.protobufjs.read(encoded.protobufjs, 0, encoded.protobufjs.length),
    'flatbuffers accessors': () => codecs.flatbuffers.read(encoded.flatbuffers, 0, encoded.flatbuffers.length),
  },
  quick ? 300_000 : 1_000_000,
)

// ---- CRC32C by size ----
console.log('\nCRC32C by message size, ns per message (median of rounds); crc32c() picks the implementation marked *')
console.log(`  ${'bytes'.padStart(6)} ${'JS table'.padStart(10)} ${'addon'.padStart(10)} ${'fast-crc32c'.padStart(12)}`)
for (const size of [16, 64, 128, 192, 256, 384, 512, 1024, 4096, 65536]) {
  const data = new Uint8Array(size).map((_, i) => (i * 131) & 0xff)
  const n = Math.max(2000, Math.floor((quick ? 2e7 : 1e8) / Math.max(size, 64) / 8))
  const js = [],
    nat = [],
    fc = []
  for (let r = 0; r < ROUNDS; r++) {
    js.push(time(() => crc32cJs(data, 0, size), n))
    nat.push(time(() => native.crc32c(data.buffer, 0, size, 0), n))
    if (fast) fc.push(time(() => fast.calculate(data), n))
  }
  const picked = require('../dist/format/crc32c.js').crc32cImplementation(size)
  const cell = (v, mark) => `${v.toFixed(1)}${mark ? '*' : ' '}`.padStart(10)
  console.log(`  ${String(size).padStart(6)} ${cell(median(js), picked === 'js')} ${cell(median(nat), picked !== 'js')} ${fast ? median(fc).toFixed(1).padStart(12) : '         n/a'}`)
  sink += crc32c(data)
}

// ---- heap: 10 M reads with the reused flyweight ----
if (typeof global.gc === 'function') {
  let gcs = 0
  const observer = new PerformanceObserver((list) => (gcs += list.getEntries().length))
  observer.observe({ entryTypes: ['gc'] })
  const count = quick ? 2_000_000 : 10_000_000
  const read = (i) => {
    const r = Tick.wrap(u8, (i & mask) * 64, 64)
    return r.seq + r.qty + r.bid + r.ask + r.bidSize + r.askSize + r.ts
  }
  // the sum stays in a local: a double stored to a module variable is itself an allocation
  const loop = (from, to) => {
    let acc = 0
    for (let i = from; i < to; i++) acc += read(i)
    return acc
  }
  sink += loop(0, 200_000)
  global.gc()
  const before = process.memoryUsage().heapUsed
  let least = before
  let most = before
  for (let i = 0; i < count; i += 1 << 20) {
    sink += loop(i, Math.min(count, i + (1 << 20)))
    const h = process.memoryUsage().heapUsed
    least = Math.min(least, h)
    most = Math.max(most, h)
  }
  const after = process.memoryUsage().heapUsed
  await new Promise((resolve) => setTimeout(resolve, 50))
  observer.disconnect()
  console.log(`\nheap over ${count / 1e6} M flyweight reads (64 B, 7 fields): heapUsed ${(before / 1e6).toFixed(2)} MB before, ${(after / 1e6).toFixed(2)} MB after (sampled range ${(least / 1e6).toFixed(2)}–${(most / 1e6).toFixed(2)} MB), ${gcs} GCs during the loop`)
} else {
  console.log('\nheap: run with node --expose-gc for the heap measurement')
}

const ratio = reads['format flyweight (Tick.wrap + 7 getters)'] / reads['raw typed-array loads at known offsets']
console.log(`\nflyweight read ÷ raw typed-array read: ${ratio.toFixed(2)}× (target ≤ 1.5×); writer ÷ raw stores: ${(writes['format writer (Tick.writer(view) + 7 setters)'] / writes['raw Float64Array/Uint32Array stores']).toFixed(2)}×`)
if (sink === 42) console.log('')
