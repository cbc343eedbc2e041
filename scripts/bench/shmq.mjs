// shmq between two Node processes (the package under test, loaded from dist/).
//
// Roles (scripts/bench.mjs starts the creating side first and unlinks the
// segments after the run, whatever happened):
//   tp-consumer    creates params.name; loops on drain() (or drainRaw() with
//                  params.raw) until the end message; never waits
//   tp-producer    opens params.name; tryWrite() in a loop, retrying while full:
//                  params.warmMs of warm-up, the mark, then params.count messages
//                  or params.maxMs, then the end (see Tally in common.mjs)
//   params.timestamps (tp-consumer): create the channel with { timestamps: true }
//   params.uncounted (tp-*): per-message counting off, the counters row's control
//   params.style for tp-*: the patterns people write first, with default options
//                  'await'  producer: await write() per message; consumer: for await
//                  'mixed'  producer: tryWrite(), else await write();
//                           consumer: drain(), else await read()
//   heap-consumer  tp-consumer with drainRaw() that also reports heapUsed
//                  (run with --expose-gc) and the GCs seen during the stream
//   rtt-ping       creates params.name + '-ping' (producer) and '-pong' (consumer);
//                  sends 64 bytes, waits for the echo, samples the time
//   rtt-echo       opens both; echoes every message
// params.mode for rtt-*: 'spin'    both sides poll tryWrite()/tryRead(), no waiting
//                        'parked'  await write()/read() with { spin: 0 }: every wait parks
//                        'default' await write()/read() with default options

import { createRequire } from 'node:module'
import { PerformanceObserver } from 'node:perf_hooks'
import { args, barrier, result, nowNs, perfNs, summarize, payload, streamChunks, Tally, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'

const require = createRequire(import.meta.url)
const { Producer, Consumer } = require('../../dist/index.js')

const { role, params } = args()
const OPEN_TIMEOUT_MS = 5000

function waitOptions(mode) {
  return mode === 'parked' ? { spin: 0 } : {}
}

// ---- one-way throughput ----

/** Data-message handlers for drain() and drainRaw(): touch 2 bytes, or copy the message out. */
function makeHandlers(size, work, tally) {
  const out = new Uint8Array(size)
  const state = { sum: 0, out }
  const copy = work === 'copy'
  const view = copy
    ? (message) => {
        if (message.length <= CONTROL_MAX) return tally.control(message.length)
        out.set(message)
        tally.received++
      }
    : (message) => {
        if (message.length <= CONTROL_MAX) return tally.control(message.length)
        state.sum += message[0] + message[message.length - 1]
        tally.received++
      }
  const raw = copy
    ? (bytes, offset, length) => {
        if (length <= CONTROL_MAX) return tally.control(length)
        out.set(bytes.subarray(offset, offset + length))
        tally.received++
      }
    : (bytes, offset, length) => {
        if (length <= CONTROL_MAX) return tally.control(length)
        state.sum += bytes[offset] + bytes[offset + length - 1]
        tally.received++
      }
  return { state, view, raw }
}

/** The consumer of the natural patterns (params.style): waits through the async API. */
async function tpConsumerAsync(c, tally, view) {
  if (params.style === 'await') {
    for await (const message of c) {
      view(message)
      if (tally.done) break
    }
    return
  }
  while (!tally.done) {
    if (c.drain(view) !== 0) continue
    const message = await c.read()
    if (message === null) throw new Error('stream ended before its end message')
    view(message)
  }
}

/**
 * params.uncounted: the counters row's control. Replaces this endpoint's
 * per-message counting (SideCounts.count: an add, an increment, a flush every
 * 1024 messages) with an empty function, so that the same row with and
 * without it measures what counting costs.
 */
function silenceCounts(endpoint) {
  if (params.uncounted) endpoint.ring.counts.count = () => {}
}

async function tpConsumer() {
  // with timestamps, each frame carries 8 bytes more than the message
  const c = Consumer.create(params.name, { capacity: params.capacity, maxMessage: params.size + (params.timestamps ? 8 : 0), timestamps: params.timestamps === true })
  silenceCounts(c)
  const tally = new Tally()
  let batches = 0
  let emptyPolls = 0
  let markBatches = -1 // the counts when the warm-up mark arrived
  let markEmptyPolls = 0
  const { state, view, raw } = makeHandlers(params.size, params.work, tally)
  try {
    await barrier()
    if (params.style) {
      await tpConsumerAsync(c, tally, view)
    } else if (params.raw) {
      // never waits: an empty poll just polls again (counted, as is every batch)
      while (!tally.done) {
        if (c.drainRaw(raw) !== 0) batches++
        else emptyPolls++
        if (markBatches < 0 && tally.tMark !== 0) {
          markBatches = batches
          markEmptyPolls = emptyPolls
        }
      }
    } else {
      while (!tally.done) {
        if (c.drain(view) !== 0) batches++
        else emptyPolls++
        if (markBatches < 0 && tally.tMark !== 0) {
          markBatches = batches
          markEmptyPolls = emptyPolls
        }
      }
    }
  } finally {
    c.close()
  }
  // after the mark only (the batch holding the mark counts)
  result(tally.report({ sum: state.sum + state.out[0], batches: batches - markBatches, emptyPolls: emptyPolls - markEmptyPolls }))
}

async function tpProducer() {
  const p = Producer.open(params.name, { timeout: OPEN_TIMEOUT_MS })
  silenceCounts(p)
  const message = payload(params.size)
  const chunk = Math.max(16, Math.min(4096, Math.floor((4 << 20) / params.size)))
  let fullSpins = 0
  const write = (bytes) => {
    while (!p.tryWrite(bytes)) fullSpins++ // full: retry at once
  }
  if (params.style) {
    try {
      await barrier()
      result(await tpProducerAsync(p, message))
    } finally {
      p.close()
    }
    return
  }
  const writeChunk = (n) => {
    for (let i = 0; i < n; i++) write(message)
  }
  let sent
  try {
    await barrier()
    await streamChunks(writeChunk, chunk, Infinity, nowNs() + params.warmMs * 1e6)
    write(new Uint8Array(MARK_LENGTH))
    fullSpins = 0 // count the measured part only
    sent = await streamChunks(writeChunk, chunk, params.count, nowNs() + params.maxMs * 1e6)
    write(new Uint8Array(END_LENGTH))
  } finally {
    p.close()
  }
  result({ sent, fullSpins })
}

/** The producer of the natural patterns (params.style): waits for room through write(). */
async function tpProducerAsync(p, message) {
  // written as a user would: await every write, or only those tryWrite() could not take
  const writeChunk =
    params.style === 'mixed'
      ? async (n) => {
          for (let i = 0; i < n; i++) if (!p.tryWrite(message)) await p.write(message)
        }
      : async (n) => {
          for (let i = 0; i < n; i++) await p.write(message)
        }
  await streamChunks(writeChunk, 1024, Infinity, nowNs() + params.warmMs * 1e6)
  await p.write(new Uint8Array(MARK_LENGTH))
  const sent = await streamChunks(writeChunk, 1024, params.count, nowNs() + params.maxMs * 1e6)
  await p.write(new Uint8Array(END_LENGTH))
  return { sent, fullSpins: 0 }
}

function heapUsed() {
  return process.memoryUsage().heapUsed
}

async function heapConsumer() {
  if (typeof global.gc !== 'function') throw new Error('run with --expose-gc')
  const c = Consumer.create(params.name, { capacity: params.capacity, maxMessage: params.size })
  const tally = new Tally()
  let gcs = 0
  const observer = new PerformanceObserver((list) => (gcs += list.getEntries().length))
  const every = 1_000_000
  let peak = 0
  const { raw } = makeHandlers(params.size, 'touch', tally)
  // sample the heap (no gc) every `every` messages: a leak or per-message garbage shows as growth
  const sampled = (bytes, offset, length) => {
    raw(bytes, offset, length)
    if (tally.received % every === 0) {
      const used = heapUsed()
      if (used > peak) peak = used
    }
  }
  let start, endHeap
  try {
    global.gc()
    start = heapUsed()
    peak = start
    observer.observe({ entryTypes: ['gc'] })
    await barrier()
    while (!tally.done) c.drainRaw(sampled)
    await new Promise((resolve) => setImmediate(resolve)) // let the observer deliver
    observer.disconnect()
    global.gc()
    endHeap = heapUsed()
  } finally {
    c.close()
  }
  result(tally.report({ heapStart: start, heapEnd: endHeap, heapPeakNoGc: peak, gcsDuringStream: gcs }))
}

// ---- round trips ----

async function rttPing() {
  const options = waitOptions(params.mode)
  const p = Producer.create(`${params.name}-ping`, { capacity: 1 << 16, maxMessage: 1024, ...options })
  const c = Consumer.create(`${params.name}-pong`, { capacity: 1 << 16, maxMessage: 1024, ...options })
  const message = payload(64)
  const total = params.count + params.warmup
  const samples = new Float64Array(params.count)
  try {
    await barrier()
    if (params.mode === 'spin') {
      for (let i = 0; i < total; i++) {
        const t0 = perfNs()
        while (!p.tryWrite(message));
        while (c.tryRead() === null);
        const t1 = perfNs()
        if (i >= params.warmup) samples[i - params.warmup] = t1 - t0
      }
    } else {
      for (let i = 0; i < total; i++) {
        const t0 = perfNs()
        await p.write(message)
        const echo = await c.read()
        const t1 = perfNs()
        if (echo === null) throw new Error(`stream ended after ${i} round trips`)
        if (i >= params.warmup) samples[i - params.warmup] = t1 - t0
      }
    }
  } finally {
    p.close()
    c.close()
  }
  result(summarize(samples))
}

async function rttEcho() {
  const options = { timeout: OPEN_TIMEOUT_MS, ...waitOptions(params.mode) }
  const c = Consumer.open(`${params.name}-ping`, options)
  const p = Producer.open(`${params.name}-pong`, options)
  const total = params.count + params.warmup
  try {
    await barrier()
    if (params.mode === 'spin') {
      for (let i = 0; i < total; i++) {
        let message
        while ((message = c.tryRead()) === null);
        while (!p.tryWrite(message));
      }
    } else {
      for (let i = 0; i < total; i++) {
        const message = await c.read()
        if (message === null) throw new Error(`stream ended after ${i} round trips`)
        await p.write(message)
      }
    }
  } finally {
    c.close()
    p.close()
  }
  result({})
}

const roles = {
  'tp-consumer': tpConsumer,
  'tp-producer': tpProducer,
  'heap-consumer': heapConsumer,
  'rtt-ping': rttPing,
  'rtt-echo': rttEcho,
}
if (!roles[role]) fail(`shmq.mjs: unknown role ${role}`)
roles[role]().catch(fail)
