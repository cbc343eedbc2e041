// The MPSC rows of `npm run bench` (scripts/bench.mjs adds them; `--only mpsc1,mpsc2`
// runs just these), and their children.
//
// Row 'mpsc1': one producer process into one MPSC consumer process, 64 B
// one-way, beside the SPSC tuned stream (tryWrite → drainRaw) and a Unix-socket
// server with one client, all in the same rounds.
// Row 'mpsc2': two producer processes into one MPSC consumer, total msgs/s,
// beside a Unix-socket server with two client processes.
//
// Counting with several producers: each one warms up, sends its MARK, streams
// for params.maxMs (or params.count messages), then its END, as the SPSC rows
// do. The consumer counts each producer's messages after that producer's MARK
// (it tells them apart by the first payload byte, the producer's number) and
// times the stream from the first MARK to the last END; the rate is the sum of
// those counts over that time. Every producer's count must match what it sent.
// The Unix-socket server (unix.mjs tp-server) counts the same way, per
// connection.
//
// CPU: this machine has 2 cores. With 2 producers and a consumer, nothing
// spins while it has nothing to do: a producer that finds the ring full parks
// in `await write()` ({ spin: 0 }), and the consumer, when a drainRaw() finds
// the ring empty, waits in `await read()` (a short spin, then it parks).
//
// Run as a child: node scripts/bench/mpsc.mjs <role> <json params>
//   consumer  creates params.name (producers: 'many', params.producers of them);
//             drainRaw loop until every producer's END; params.parkWhenEmpty:
//             an empty poll waits in read() instead of polling again
//   producer  opens params.name as producer number params.id (1, 2, ...);
//             params.style 'tuned': tryWrite, else await write() (parks when full);
//             'await': await write() per message

import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { args, barrier, result, nowNs, payload, streamChunks, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'

const self = fileURLToPath(import.meta.url)

/**
 * The count of several streams into one reader: per stream, the data messages
 * after its MARK; the clock at the first MARK and at the last END.
 */
export class StreamsTally {
  constructor(streams) {
    this.streams = streams
    this.received = new Float64Array(streams)
    this.marked = new Uint8Array(streams)
    this.ended = new Uint8Array(streams)
    this.marks = 0
    this.ends = 0
    this.tMark = 0
    this.tEnd = 0
    this.done = false
  }

  /** For a message of stream `stream` shorter than CONTROL_MAX + 1 bytes. */
  control(stream, length) {
    if (length === MARK_LENGTH) {
      if (this.marked[stream]++ !== 0) throw new Error(`stream ${stream} sent two marks`)
      this.received[stream] = 0
      this.marks++
      if (this.tMark === 0) this.tMark = nowNs()
      return
    }
    if (this.ended[stream]++ !== 0) throw new Error(`stream ${stream} sent two ends`)
    if (++this.ends === this.streams) {
      this.tEnd = nowNs()
      this.done = true
    }
  }

  /** Leaves stream `stream` out: it counts as marked and ended, with nothing in it. */
  skip(stream) {
    this.marked[stream] = this.ended[stream] = 1
    this.marks++
    this.ends++
  }

  report(extra) {
    if (this.marks !== this.streams) throw new Error(`${this.streams - this.marks} of ${this.streams} streams ended without their warm-up mark`)
    const perStream = Array.from(this.received)
    return { received: perStream.reduce((a, b) => a + b, 0), perStream, tMark: this.tMark, tEnd: this.tEnd, ...extra }
  }
}

/**
 * One sample of a many-stream run: `reader` is the consumer's (or server's)
 * report, `writers` each producer's (or client's) { sent }, in stream order.
 */
export function streamsSample(reader, writers, size) {
  writers.forEach((w, i) => {
    if (reader.perStream[i] !== w.sent) throw new Error(`stream ${i + 1} sent ${w.sent} messages but ${reader.perStream[i]} arrived`)
  })
  const seconds = (reader.tEnd - reader.tMark) / 1e9
  if (!(seconds > 0)) throw new Error(`bad duration ${seconds}`)
  return { msgsPerSec: reader.received / seconds, gbPerSec: (reader.received * size) / seconds / 1e9, count: reader.received, seconds, perStream: reader.perStream }
}

// ---- rows (orchestrator side) ----

export function mpscRows(ctx) {
  const { config, withSegments, runChildren, socketPath, rmSocket, shmqThroughput, needShmq, CAPACITY, TIMEOUT_MS } = ctx
  const limits = config.small
  const size = 64

  const mpscRun = (producers, style) =>
    withSegments(async (name) => {
      const consumer = { file: 'mpsc.mjs', role: 'consumer', params: { name, size, producers, capacity: CAPACITY, parkWhenEmpty: producers > 1 } }
      const writers = []
      // stream index i carries producer number i + 1 (0 is never a producer's number)
      for (let id = 1; id <= producers; id++) writers.push({ file: 'mpsc.mjs', role: 'producer', params: { name, size, id, style, spin: producers > 1 ? 0 : undefined, ...limits } })
      const [reader, ...sent] = await runChildren([consumer, ...writers], TIMEOUT_MS)
      const sample = streamsSample({ ...reader, perStream: reader.perStream.slice(1) }, sent, size)
      return { ...sample, batches: reader.batches, emptyPolls: reader.emptyPolls, waits: reader.waits, fullWaits: sent.reduce((a, w) => a + w.fullWaits, 0) }
    })

  const unixRun = async (clients) => {
    const path = socketPath()
    try {
      const server = { file: 'unix.mjs', role: 'tp-server', params: { path, size, clients, work: 'touch' }, startAfter: 'LISTENING' }
      const writers = Array.from({ length: clients }, () => ({ file: 'unix.mjs', role: 'tp-producer', params: { path, size, ...limits } }))
      const [reader, ...sent] = await runChildren([server, ...writers], TIMEOUT_MS)
      // the server numbers connections in accept order, which need not be the clients' start order:
      // match the counts as sets (each client's count is large and, in practice, distinct)
      const byCount = (a, b) => a.sent - b.sent
      const perStream = [...reader.perStream].sort((a, b) => a - b)
      return streamsSample({ ...reader, perStream }, [...sent].sort(byCount), size)
    } finally {
      rmSocket(path)
    }
  }

  const unixLabel = (n) => `Unix-socket server, ${n} client process${n > 1 ? 'es' : ''} (net, length-prefixed, 64 KiB batches)`
  return [
    {
      id: 'mpsc1',
      title: 'MPSC one-way 64 B, 1 producer process',
      kind: 'throughput',
      runs: config.runs,
      systems: [
        { id: 'shmq', label: 'shmq MPSC (tryWrite, else await write → drainRaw)', unavailable: needShmq, run: () => mpscRun(1, 'tuned') },
        { id: 'shmq-await', label: 'shmq MPSC (await write → drainRaw)', unavailable: needShmq, run: () => mpscRun(1, 'await') },
        { id: 'spsc', label: 'shmq SPSC (tryWrite → drainRaw)', unavailable: needShmq, run: () => shmqThroughput(size, limits, true) },
        { id: 'unix', label: unixLabel(1), run: () => unixRun(1) },
      ],
    },
    {
      id: 'mpsc2',
      title: 'MPSC one-way 64 B, 2 producer processes, total',
      kind: 'throughput',
      runs: config.runs,
      systems: [
        { id: 'shmq', label: 'shmq MPSC (tryWrite, else await write → drainRaw, else await read)', unavailable: needShmq, run: () => mpscRun(2, 'tuned') },
        { id: 'unix', label: unixLabel(2), run: () => unixRun(2) },
      ],
    },
  ]
}

// ---- children ----

function loadShmq() {
  return createRequire(import.meta.url)('../../dist/index.js')
}

async function consumer(params) {
  const { Consumer } = loadShmq()
  const c = Consumer.create(params.name, { producers: 'many', maxProducers: params.producers, capacity: params.capacity, maxMessage: params.size })
  // stream index = producer number (index 0 unused): one lookup per message, no subtraction
  const tally = new StreamsTally(params.producers + 1)
  tally.skip(0)
  let sum = 0
  const raw = (bytes, offset, length) => {
    const id = bytes[offset]
    if (length <= CONTROL_MAX) return tally.control(id, length)
    sum += id + bytes[offset + length - 1]
    tally.received[id]++
  }
  let batches = 0
  let emptyPolls = 0
  let waits = 0
  try {
    await barrier()
    if (params.parkWhenEmpty) {
      while (!tally.done) {
        if (c.drainRaw(raw) !== 0) {
          batches++
          continue
        }
        emptyPolls++
        const message = c.tryRead() ?? (waits++, await c.read())
        if (message === null) throw new Error('stream ended before every producer sent its end')
        raw(message, 0, message.length)
      }
    } else {
      while (!tally.done) {
        if (c.drainRaw(raw) !== 0) batches++
        else emptyPolls++
      }
    }
    const losses = c.losses()
    if (losses.lostUncommitted !== 0 || losses.lostRevoked !== 0) throw new Error(`messages lost: ${JSON.stringify(losses)}`)
  } finally {
    c.close()
  }
  result(tally.report({ sum, batches, emptyPolls, waits }))
}

async function producer(params) {
  const { Producer } = loadShmq()
  const p = Producer.open(params.name, { timeout: 5000, ...(params.spin === undefined ? {} : { spin: params.spin }) })
  const message = payload(params.size)
  message[0] = params.id
  const control = (length) => {
    const bytes = new Uint8Array(length)
    bytes[0] = params.id
    return bytes
  }
  let fullWaits = 0
  // the rest of a chunk once the ring was full: each write that does not fit waits in write()
  const finishChunk = async (left) => {
    for (; left > 0; left--) {
      if (!p.tryWrite(message)) {
        fullWaits++
        await p.write(message)
      }
    }
  }
  const tunedChunk = (n) => {
    for (let i = 0; i < n; i++) if (!p.tryWrite(message)) return finishChunk(n - i)
  }
  const awaitChunk = async (n) => {
    for (let i = 0; i < n; i++) await p.write(message)
  }
  const writeChunk = params.style === 'await' ? awaitChunk : tunedChunk
  const chunk = params.style === 'await' ? 1024 : 4096
  let sent
  try {
    await barrier()
    await streamChunks(writeChunk, chunk, Infinity, nowNs() + params.warmMs * 1e6)
    await p.write(control(MARK_LENGTH))
    fullWaits = 0 // count the measured part only
    sent = await streamChunks(writeChunk, chunk, params.count, nowNs() + params.maxMs * 1e6)
    await p.write(control(END_LENGTH))
  } finally {
    p.close()
  }
  result({ sent, fullWaits })
}

if (process.argv[1] === self) {
  const { role, params } = args()
  const roles = { consumer, producer }
  if (!roles[role]) fail(new Error(`mpsc.mjs: unknown role ${role}`))
  roles[role](params).catch(fail)
}
