// The work-queue rows of `npm run bench` (scripts/bench.mjs adds them; `--only wq1,wq2`
// runs just these), and their children.
//
// Row 'wq1': one producer process dispatching 64 B messages to one worker
// process; row 'wq2': to two workers. Each message goes to one worker. Beside
// it, in the same rounds, a Unix-socket dispatcher: a server with N client
// connections that fills a ~64 KiB batch of length-prefixed frames for one
// client, then the next (round robin, honouring 'drain').
//
// Counting: a work queue has no message every worker sees, so there is no
// MARK: the producer writes its warm-up, notes the clock (tStart), streams the
// measured part, and closes; each worker counts everything it got and notes
// the clock when its stream ended. The rate is the measured messages over
// (last worker's end − tStart); every worker's count together must equal
// warm-up + measured.
//
// CPU: this machine has 2 cores. With 2 workers and a producer nothing spins
// while it has nothing to do: a worker whose drainRaw() finds nothing waits in
// `await read()` ({ spin: 0 }: it parks), and the producer waits in
// `await write()` when every worker's ring is full.
//
// Run as a child: node scripts/bench/work-queue.mjs <role> <json params>
//   producer       Producer.create(params.name, { consumers: 'many' }); tryWrite, else await write()
//   worker         Consumer.open(params.name); drainRaw, else await read()
//   socket-server  listens on params.path for params.clients; batches to one client at a time
//   socket-client  connects to params.path; counts frames until the end

import net from 'node:net'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { args, barrier, result, nowNs, payload, streamChunks, fail } from './common.mjs'
import { FrameReader, FrameWriter } from './frames.mjs'
import { acceptClients } from './sockets.mjs'

const self = fileURLToPath(import.meta.url)
const BATCH_BYTES = 64 * 1024

/** One sample: `sent` measured messages after `warm` warm-up ones, from tStart to the last reader's end. */
export function dispatchSample(writer, readers, size) {
  const received = readers.reduce((total, reader) => total + reader.received, 0)
  if (received !== writer.warm + writer.sent) throw new Error(`sent ${writer.warm + writer.sent} messages but the workers got ${received}`)
  const seconds = (Math.max(...readers.map((reader) => reader.tEnd)) - writer.tStart) / 1e9
  if (!(seconds > 0)) throw new Error(`bad duration ${seconds}`)
  const msgsPerSec = writer.sent / seconds
  return { msgsPerSec, gbPerSec: (msgsPerSec * size) / 1e9, count: writer.sent, seconds, perWorker: readers.map((reader) => reader.received) }
}

// ---- rows (orchestrator side) ----

export function workQueueRows(ctx) {
  const { config, withSegments, runChildren, socketPath, rmSocket, needShmq, CAPACITY, TIMEOUT_MS } = ctx
  const limits = config.small
  const size = 64

  const shmqRun = (workers) =>
    withSegments(async (name) => {
      const spin = workers > 1 ? 0 : undefined
      const producer = { file: 'work-queue.mjs', role: 'producer', params: { name, size, workers, capacity: CAPACITY, spin, ...limits } }
      const readers = Array.from({ length: workers }, () => ({ file: 'work-queue.mjs', role: 'worker', params: { name, size, spin } }))
      const [writer, ...received] = await runChildren([producer, ...readers], TIMEOUT_MS)
      return dispatchSample(writer, received, size)
    })

  const socketRun = async (clients) => {
    const path = socketPath()
    try {
      const server = { file: 'work-queue.mjs', role: 'socket-server', params: { path, size, clients, ...limits }, startAfter: 'LISTENING' }
      const readers = Array.from({ length: clients }, () => ({ file: 'work-queue.mjs', role: 'socket-client', params: { path, size } }))
      const [writer, ...received] = await runChildren([server, ...readers], TIMEOUT_MS)
      return dispatchSample(writer, received, size)
    } finally {
      rmSocket(path)
    }
  }

  const row = (workers) => ({
    id: `wq${workers}`,
    title: `work queue 64 B, 1 producer → ${workers} worker process${workers > 1 ? 'es' : ''} (each message to one), total`,
    kind: 'throughput',
    runs: config.runs,
    systems: [
      { id: 'shmq', label: "shmq Producer.create({ consumers: 'many' }) (tryWrite, else await write → drainRaw, else await read)", unavailable: needShmq, run: () => shmqRun(workers) },
      { id: 'unix', label: `Unix-socket dispatcher → ${workers} client${workers > 1 ? 's' : ''} (64 KiB batches, round robin)`, run: () => socketRun(workers) },
    ],
  })
  return [row(1), row(2)]
}

// ---- children ----

function loadShmq() {
  return createRequire(import.meta.url)('../../dist/index.js')
}

const spinOption = (params) => (params.spin === undefined || params.spin === null ? {} : { spin: params.spin })

async function producer(params) {
  const { Producer } = loadShmq()
  const p = Producer.create(params.name, { consumers: 'many', capacity: params.capacity, maxMessage: params.size, maxConsumers: params.workers, ...spinOption(params) })
  const message = payload(params.size)
  const finishChunk = async (left) => {
    for (; left > 0; left--) if (!p.tryWrite(message)) await p.write(message)
  }
  const writeChunk = (n) => {
    for (let i = 0; i < n; i++) if (!p.tryWrite(message)) return finishChunk(n - i)
  }
  let warm
  let sent
  let tStart
  try {
    await barrier()
    // the workers join while the producer waits: every one is counted before the stream starts
    while (p.consumers < params.workers) await p.write(message).then(() => (warm = (warm ?? 0) + 1))
    warm = (warm ?? 0) + (await streamChunks(writeChunk, 4096, Infinity, nowNs() + params.warmMs * 1e6))
    tStart = nowNs()
    sent = await streamChunks(writeChunk, 4096, params.count, nowNs() + params.maxMs * 1e6)
    if (p.redelivered !== 0) throw new Error(`${p.redelivered} messages redelivered: a worker died`)
  } finally {
    p.close()
  }
  result({ warm, sent, tStart })
}

async function worker(params) {
  const { Consumer } = loadShmq()
  const c = Consumer.open(params.name, { timeout: 5000, ...spinOption(params) })
  let received = 0
  let sum = 0
  const raw = (bytes, offset, length) => {
    sum += bytes[offset] + bytes[offset + length - 1]
    received++
  }
  try {
    await barrier()
    for (;;) {
      if (c.drainRaw(raw) !== 0) continue
      const message = await c.read()
      if (message === null) break
      raw(message, 0, message.length)
    }
  } finally {
    c.close()
  }
  result({ received, tEnd: nowNs(), sum })
}

async function socketServer(params) {
  const sockets = await acceptClients(params.path, params.clients)
  const message = payload(params.size)
  const writer = new FrameWriter(BATCH_BYTES, params.size)
  let next = 0
  const stream = async (limit, deadline) => {
    let sent = 0
    while (sent < limit) {
      for (; sent < limit && writer.fits(message.length); sent++) writer.add(message)
      const socket = sockets[next++ % sockets.length]
      if (!socket.write(writer.take())) await once(socket, 'drain')
      if (nowNs() >= deadline) break
    }
    return sent
  }
  await barrier()
  const warm = await stream(Infinity, nowNs() + params.warmMs * 1e6)
  const tStart = nowNs()
  const sent = await stream(params.count, nowNs() + params.maxMs * 1e6)
  await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.end(resolve))))
  for (const socket of sockets) socket.destroy()
  result({ warm, sent, tStart })
}

async function socketClient(params) {
  const socket = net.connect(params.path)
  await once(socket, 'connect')
  let received = 0
  let sum = 0
  const reader = new FrameReader(params.size, (view) => {
    sum += view[0] + view[view.length - 1]
    received++
  })
  await barrier()
  socket.on('data', (chunk) => reader.push(chunk))
  await once(socket, 'end')
  const tEnd = nowNs()
  socket.destroy()
  result({ received, tEnd, sum })
}

if (process.argv[1] === self) {
  const { role, params } = args()
  const roles = { producer, worker, 'socket-server': socketServer, 'socket-client': socketClient }
  if (!roles[role]) fail(new Error(`work-queue.mjs: unknown role ${role}`))
  roles[role](params).catch(fail)
}
