// The message format's cross-process rows of `npm run bench` (scripts/bench.mjs
// adds them; `--only format,format64` runs just these), and their children.
//
// Row 'format': an order message (10 fixed fields and a 4-character symbol),
// encoded by the producer, carried by shmq (or child_process IPC), every
// field read by the consumer, for: this format in place (a writer on a
// claimed view / tryWriteMessage, the flyweight over drainRaw), JSON,
// msgpackr, protobufjs and FlatBuffers over shmq (encode, tryWrite, decode
// the drained view), and process.send of the object.
// Row 'format64': a 64-byte fixed-only message written in place and read in
// place, beside raw typed-array stores into the claimed view, plain 64 B
// tryWrite → drainRaw, and the C ring.
//
// Run as a child: node scripts/bench/format.mjs <role> <json params>
//   tp-consumer  creates params.name, drainRaw loop reading every field of params.system
//   tp-producer  opens params.name, writes params.system's messages (warm-up, MARK, count or maxMs, END)
//   ipc / ipc-peer  process.send of order objects (JSON serialization), every field read

import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { args, barrier, result, nowNs, streamChunks, Tally, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'

const require = createRequire(import.meta.url)
const self = fileURLToPath(import.meta.url)

// ---- the messages ----

export function loadCodecs() {
  const shmq = require('../../dist/index.js')
  const { defineMessage } = shmq
  const BenchOrder = defineMessage({
    name: 'BenchOrder',
    id: 21,
    fields: {
      price: 'f64',
      bid: 'f64',
      ask: 'f64',
      ts: { type: 'u64', as: 'number' },
      account: { type: 'i64', as: 'number' },
      qty: 'u32',
      orderId: 'u32',
      flags: 'u16',
      side: 'u8',
      tif: 'u8',
      symbol: { type: 'string', max: 16 },
    },
  })
  const Tick = defineMessage({
    name: 'Tick',
    id: 22,
    fields: { seq: 'u32', qty: 'u32', bid: 'f64', ask: 'f64', bidSize: 'f64', askSize: 'f64', ts: 'f64' },
  })
  const claim = BenchOrder.maxSizeOf({ symbol: 'x'.repeat(16) })
  const order = { price: 101.25, bid: 101.2, ask: 101.3, ts: 1733000000123456, account: -42, qty: 300, orderId: 0, flags: 5, side: 1, tif: 3, symbol: 'AAPL' }
  /**
   * What a consumer does with an order: use every field. One compiled copy per
   * codec, so that no codec's property accesses share (and slow down) another's.
   */
  const makeUse = () => new Function('o', 'return o.price + o.bid + o.ask + o.ts + o.account + o.qty + o.orderId + o.flags + o.side + o.tif + o.symbol.length')
  const use = makeUse()
  const useFormat = makeUse()
  const useFormatHelper = makeUse()
  const useJson = makeUse()
  const useMsgpack = makeUse()

  const { pack, unpack } = require('msgpackr')
  const protobuf = require('protobufjs')
  const proto = protobuf.Root.fromJSON({
    nested: {
      Order: {
        fields: {
          price: { type: 'double', id: 1 },
          bid: { type: 'double', id: 2 },
          ask: { type: 'double', id: 3 },
          ts: { type: 'uint64', id: 4 },
          account: { type: 'sint64', id: 5 },
          qty: { type: 'uint32', id: 6 },
          orderId: { type: 'uint32', id: 7 },
          flags: { type: 'uint32', id: 8 },
          side: { type: 'uint32', id: 9 },
          tif: { type: 'uint32', id: 10 },
          symbol: { type: 'string', id: 11 },
        },
      },
    },
  }).lookupType('Order')
  const long = (v) => (typeof v === 'number' ? v : v.toNumber())
  const fb = require('flatbuffers')
  const builder = new fb.Builder(256)
  let fbBytes = null
  let fbBuffer = null
  const decoder = new TextDecoder()

  // each: encode(order, seq) -> bytes to tryWrite, or encodeInto(view, order, seq) -> length; read(bytes, offset, length) -> number
  const codecs = {
    format: {
      label: 'shmq format in place (writer on a raw claim → flyweight in drainRaw)',
      writeInPlace(p, o, seq) {
        // the claim is the bound for a 16-character symbol; commit() publishes what was written
        const offset = p.tryClaimRaw(claim)
        if (offset === -1) return false
        const w = BenchOrder.writerAt(p.bytes, offset, claim)
        w.price = o.price
        w.bid = o.bid
        w.ask = o.ask
        w.ts = o.ts
        w.account = o.account
        w.qty = o.qty
        w.orderId = seq
        w.flags = o.flags
        w.side = o.side
        w.tif = o.tif
        w.symbol = o.symbol
        p.commit(w.length)
        return true
      },
      read: (bytes, offset, length) => useFormat(BenchOrder.wrap(bytes, offset, length)),
    },
    'format-helper': {
      label: 'shmq format (tryWriteMessage → flyweight in drainRaw)',
      writeInPlace(p, o, seq) {
        o.orderId = seq
        return p.tryWriteMessage(BenchOrder, o)
      },
      read: (bytes, offset, length) => useFormatHelper(BenchOrder.wrap(bytes, offset, length)),
    },
    json: {
      label: 'JSON.stringify/parse over shmq',
      encode(o, seq) {
        o.orderId = seq
        return Buffer.from(JSON.stringify(o))
      },
      read: (bytes, offset, length) => useJson(JSON.parse(decoder.decode(bytes.subarray(offset, offset + length)))),
    },
    msgpackr: {
      label: 'msgpackr over shmq',
      encode(o, seq) {
        o.orderId = seq
        return pack(o)
      },
      read: (bytes, offset, length) => useMsgpack(unpack(bytes.subarray(offset, offset + length))),
    },
    protobufjs: {
      label: 'protobufjs over shmq (reflection)',
      encode(o, seq) {
        o.orderId = seq
        return proto.encode(o).finish()
      },
      read(bytes, offset, length) {
        const m = proto.decode(bytes.subarray(offset, offset + length))
        return m.price + m.bid + m.ask + long(m.ts) + long(m.account) + m.qty + m.orderId + m.flags + m.side + m.tif + m.symbol.length
      },
    },
    flatbuffers: {
      label: 'FlatBuffers over shmq (flatc-style accessors, one ByteBuffer over the ring)',
      encode(o, seq) {
        builder.clear()
        const symbol = builder.createString(o.symbol)
        builder.startObject(11)
        builder.addFieldFloat64(0, o.price, 0)
        builder.addFieldFloat64(1, o.bid, 0)
        builder.addFieldFloat64(2, o.ask, 0)
        builder.addFieldInt64(3, BigInt(o.ts), 0n)
        builder.addFieldInt64(4, BigInt(o.account), 0n)
        builder.addFieldInt32(5, o.qty, 0)
        builder.addFieldInt32(6, seq, 0)
        builder.addFieldInt16(7, o.flags, 0)
        builder.addFieldInt8(8, o.side, 0)
        builder.addFieldInt8(9, o.tif, 0)
        builder.addFieldOffset(10, symbol, 0)
        builder.finish(builder.endObject())
        return builder.asUint8Array()
      },
      read(bytes, offset) {
        if (bytes !== fbBytes) {
          fbBytes = bytes
          fbBuffer = new fb.ByteBuffer(bytes)
        }
        const bb = fbBuffer
        const t = bb.readInt32(offset) + offset
        const f = (slot) => bb.__offset(t, 4 + 2 * slot)
        let o
        const price = (o = f(0)) ? bb.readFloat64(t + o) : 0
        const bid = (o = f(1)) ? bb.readFloat64(t + o) : 0
        const ask = (o = f(2)) ? bb.readFloat64(t + o) : 0
        const ts = (o = f(3)) ? Number(bb.readUint64(t + o)) : 0
        const account = (o = f(4)) ? Number(bb.readInt64(t + o)) : 0
        const qty = (o = f(5)) ? bb.readUint32(t + o) : 0
        const orderId = (o = f(6)) ? bb.readUint32(t + o) : 0
        const flags = (o = f(7)) ? bb.readUint16(t + o) : 0
        const side = (o = f(8)) ? bb.readUint8(t + o) : 0
        const tif = (o = f(9)) ? bb.readUint8(t + o) : 0
        const symbol = (o = f(10)) ? bb.__string(t + o) : ''
        return price + bid + ask + ts + account + qty + orderId + flags + side + tif + symbol.length
      },
    },
    tick: {
      label: 'shmq format in place, 64 B fixed-only (writer on a raw claim → flyweight in drainRaw)',
      writeInPlace(p, _o, seq) {
        const offset = p.tryClaimRaw(64)
        if (offset === -1) return false
        const w = Tick.writerAt(p.bytes, offset, 64)
        w.seq = seq
        w.qty = 100
        w.bid = 101.25
        w.ask = 101.5
        w.bidSize = 1000
        w.askSize = 2000
        w.ts = seq
        p.commit(64)
        return true
      },
      read(bytes, offset, length) {
        const r = Tick.wrap(bytes, offset, length)
        return r.seq + r.qty + r.bid + r.ask + r.bidSize + r.askSize + r.ts
      },
    },
    'tick-raw': {
      label: 'raw typed-array stores into a raw claim / loads in drainRaw, 64 B (no format)',
      writeInPlace(p, _o, seq) {
        const offset = p.tryClaimRaw(64)
        if (offset === -1) return false
        const { f64, u32 } = rawArrays(p.bytes.buffer)
        const i = offset >>> 3
        u32[i * 2] = 64
        u32[i * 2 + 1] = 22
        f64[i + 1] = 0
        u32[i * 2 + 4] = seq
        u32[i * 2 + 5] = 100
        f64[i + 3] = 101.25
        f64[i + 4] = 101.5
        f64[i + 5] = 1000
        f64[i + 6] = 2000
        f64[i + 7] = seq
        p.commit(64)
        return true
      },
      read(bytes, offset) {
        const { f64, u32 } = rawArrays(bytes.buffer)
        const i = (bytes.byteOffset + offset) >>> 3
        return u32[i * 2 + 4] + u32[i * 2 + 5] + f64[i + 3] + f64[i + 4] + f64[i + 5] + f64[i + 6] + f64[i + 7]
      },
    },
  }
  return { shmq, codecs, order, use, BenchOrder, Tick }
}

let rawBuffer = null
let raw = null
function rawArrays(buffer) {
  if (buffer !== rawBuffer) {
    rawBuffer = buffer
    raw = { f64: new Float64Array(buffer, 0, buffer.byteLength >>> 3), u32: new Uint32Array(buffer, 0, buffer.byteLength >>> 2) }
  }
  return raw
}

// ---- the rows (scripts/bench.mjs hands in its helpers) ----

export function formatRows(ctx) {
  const { config, withSegments, runChildren, throughputSample, cThroughput, shmqThroughput, needShmq, needC, CAPACITY, TIMEOUT_MS } = ctx
  const limits = config.small
  const shmqRun = (system) =>
    withSegments(async (name) => {
      const [consumer, producer] = await runChildren(
        [
          { file: 'format.mjs', role: 'tp-consumer', params: { name, system, capacity: CAPACITY } },
          { file: 'format.mjs', role: 'tp-producer', params: { name, system, ...limits } },
        ],
        TIMEOUT_MS,
      )
      return throughputSample(consumer.received, producer.sent, (consumer.tEnd - consumer.tMark) / 1e9, 64)
    })
  const ipcRun = async () => {
    const [r] = await runChildren([{ file: 'format.mjs', role: 'ipc', params: { ...limits } }], TIMEOUT_MS)
    return throughputSample(r.received, r.sent, (r.tEnd - r.tMark) / 1e9, 64)
  }
  let labels = {}
  try {
    labels = Object.fromEntries(Object.entries(loadCodecs().codecs).map(([id, c]) => [id, c.label]))
  } catch {}
  const system = (id, key) => ({ id, label: labels[key] ?? key, unavailable: needShmq, run: () => shmqRun(key) })
  return [
    {
      id: 'format',
      title: 'order message (10 fixed fields + a short string): encode → ring → read every field',
      kind: 'throughput',
      runs: config.runs,
      systems: [
        system('shmq', 'format'),
        system('format-helper', 'format-helper'),
        system('json', 'json'),
        system('msgpackr', 'msgpackr'),
        system('protobufjs', 'protobufjs'),
        system('flatbuffers', 'flatbuffers'),
        { id: 'ipc', label: 'process.send of the object (child_process IPC, json)', run: ipcRun },
      ],
    },
    {
      id: 'format64',
      title: '64 B fixed-only message, written in place, read in place',
      kind: 'throughput',
      runs: config.runs,
      systems: [
        system('shmq', 'tick'),
        system('raw', 'tick-raw'),
        { id: 'bytes', label: 'shmq tryWrite of 64 bytes → drainRaw (no format)', unavailable: needShmq, run: () => shmqThroughput(64, limits, true) },
        { id: 'c', label: 'C ring (ring.c)', unavailable: needC, run: () => cThroughput(64, limits) },
      ],
    },
  ]
}

/** Target lines for the format rows, from bench.mjs's results and its paired-ratio helper. */
export function formatTargets(results) {
  const lines = []
  /** Median over runs of a's rate ÷ b's rate in the same run. */
  const ratio = (row, a, b) => {
    const x = results[row]?.[a]?.samples ?? []
    const y = results[row]?.[b]?.samples ?? []
    const r = x.map((s, i) => (s && y[i] ? s.msgsPerSec / y[i].msgsPerSec : NaN)).filter(Number.isFinite).sort((m, n) => m - n)
    return r.length ? r[r.length >> 1] : NaN
  }
  const line = (text, r, goal) => lines.push(`- ${text}: ${Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a'} / **${Number.isFinite(r) ? (r >= goal ? 'yes' : 'NO') : 'n/a'}**`)
  line('format in place ≥ 10× msgpackr over shmq', ratio('format', 'shmq', 'msgpackr'), 10)
  line('format in place ≥ 20× JSON over shmq', ratio('format', 'shmq', 'json'), 20)
  line('format in place ≥ 2× FlatBuffers over shmq', ratio('format', 'shmq', 'flatbuffers'), 2)
  line('64 B fixed-only in place ≥ 0.3× the C ring (or ≥ 100 M msgs/s)', ratio('format64', 'shmq', 'c'), 0.3)
  return lines.length ? `\nFormat targets (medians of per-run ratios):\n${lines.join('\n')}` : ''
}

// ---- children ----

async function tpConsumer(params) {
  const { shmq, codecs } = loadCodecs()
  const codec = codecs[params.system]
  const c = shmq.Consumer.create(params.name, { capacity: params.capacity, maxMessage: 256 })
  const tally = new Tally()
  let sum = 0
  const read = codec.read
  const handler = (bytes, offset, length) => {
    if (length <= CONTROL_MAX) return tally.control(length)
    sum += read(bytes, offset, length)
    tally.received++
  }
  try {
    await barrier()
    while (!tally.done) c.drainRaw(handler)
  } finally {
    c.close()
  }
  result(tally.report({ sum }))
}

async function tpProducer(params) {
  const { shmq, codecs, order } = loadCodecs()
  const codec = codecs[params.system]
  const p = shmq.Producer.open(params.name, { timeout: 5000 })
  const o = { ...order }
  const one = codec.writeInPlace
    ? (seq) => {
        while (!codec.writeInPlace(p, o, seq));
      }
    : (seq) => {
        const bytes = codec.encode(o, seq)
        while (!p.tryWrite(bytes));
      }
  let seq = 0
  const writeChunk = (n) => {
    for (let i = 0; i < n; i++) one(seq++ >>> 0)
  }
  let sent
  try {
    await barrier()
    await streamChunks(writeChunk, 4096, Infinity, nowNs() + params.warmMs * 1e6)
    while (!p.tryWrite(new Uint8Array(MARK_LENGTH)));
    sent = await streamChunks(writeChunk, 4096, params.count, nowNs() + params.maxMs * 1e6)
    while (!p.tryWrite(new Uint8Array(END_LENGTH)));
  } finally {
    p.close()
  }
  result({ sent })
}

async function ipcDriver(params) {
  const { order } = loadCodecs()
  const child = fork(self, ['ipc-peer', JSON.stringify(params)], { serialization: 'json', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const ready = await new Promise((resolve) => child.once('message', resolve))
  if (ready !== 'ready') throw new Error(`peer said ${ready}`)
  const report = new Promise((resolve) => child.on('message', resolve))
  const send = (message) => new Promise((resolve, reject) => child.send(message, (error) => (error ? reject(error) : resolve())))
  let seq = 0
  const stream = async (limit, deadline) => {
    let sent = 0
    let previous = Promise.resolve()
    while (sent < limit) {
      const n = Math.min(1000, limit - sent)
      for (let i = 1; i < n; i++) child.send({ ...order, orderId: seq++ })
      const last = send({ ...order, orderId: seq++ })
      sent += n
      await previous // at most two batches in flight
      previous = last
      if (nowNs() >= deadline) break
    }
    await previous
    return sent
  }
  await barrier()
  await stream(Infinity, nowNs() + params.warmMs * 1e6)
  child.send('MARK')
  const sent = await stream(params.count, nowNs() + params.maxMs * 1e6)
  child.send('END')
  const peer = await report
  child.disconnect()
  result({ sent, ...peer, peerCpuMs: peer.cpuMs })
}

function ipcPeer() {
  const { use } = loadCodecs()
  const tally = new Tally()
  let sum = 0
  process.on('message', (message) => {
    if (message === 'MARK') return tally.control(MARK_LENGTH)
    if (message === 'END') {
      tally.control(END_LENGTH)
      const { user, system } = process.cpuUsage()
      process.send(tally.report({ sum, cpuMs: (user + system) / 1000 }))
      return
    }
    sum += use(message)
    tally.received++
  })
  process.send('ready')
}

if (process.argv[1] === self) {
  const { role, params } = args()
  const roles = { 'tp-consumer': tpConsumer, 'tp-producer': tpProducer, ipc: ipcDriver, 'ipc-peer': ipcPeer }
  if (!roles[role]) fail(new Error(`unknown role ${role}`))
  Promise.resolve(roles[role](params)).catch(fail)
}
