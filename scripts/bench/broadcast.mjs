// The broadcast rows of `npm run bench` (scripts/bench.mjs adds them; `--only bc1,bc2`
// runs just these), and their children.
//
// Row 'bc1': one publisher process to one subscriber process, 64 B; row 'bc2':
// to two subscriber processes. Each message reaches every subscriber; the rate
// is messages published per second, counted at the slowest subscriber (every
// subscriber's count from MARK to END must equal what the publisher sent), so
// deliveries per second are that times the number of subscribers. Beside it, in
// the same rounds, what a Node user does today:
//   a Unix-socket server writing each ~64 KiB batch of length-prefixed frames
//   to every client connection (the same Buffer to each, honouring 'drain'),
//   and one writing each framed message to every connection as it comes;
//   child_process IPC, process.send of each message to every child, at most two
//   batches in flight per child (as the tp64 row).
//
// CPU: this machine has 2 cores. With 2 subscribers and a publisher, nothing
// spins while it has nothing to do: the publisher parks in `await write()` when
// the slowest subscriber holds the ring full ({ spin: 0 }), and a subscriber
// whose drainRaw() finds nothing waits in `await read()` (it parks).
//
// Run as a child: node scripts/bench/broadcast.mjs <role> <json params>
//   publisher       Publisher.create(params.name); streams warm-up, MARK, the
//                   measured part, END; params.style 'tuned': tryWrite, else
//                   await write(); 'await': await write() per message
//   subscriber      Subscriber.open(params.name); drainRaw, else await read()
//   socket-server   listens on params.path for params.clients; writes every batch to each
//   socket-client   connects to params.path; counts frames
//   ipc-fanout      forks params.clients ipc.mjs peer-tp children; sends every message to each

import { fork } from 'node:child_process'
import net from 'node:net'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { args, barrier, result, nowNs, payload, streamChunks, Tally, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'
import { FrameReader, FrameWriter } from './frames.mjs'
import { acceptClients } from './sockets.mjs'

const self = fileURLToPath(import.meta.url)
const BATCH_BYTES = 64 * 1024

/**
 * One sample: the publisher sent `sent` data messages; each reader counted
 * them from MARK to END. The rate is at the slowest reader.
 */
export function fanoutSample(sent, readers, size) {
  let seconds = 0
  for (const [i, reader] of readers.entries()) {
    if (reader.received !== sent) throw new Error(`subscriber ${i + 1} got ${reader.received} of ${sent} messages`)
    seconds = Math.max(seconds, (reader.tEnd - reader.tMark) / 1e9)
  }
  if (!(seconds > 0)) throw new Error(`bad duration ${seconds}`)
  const msgsPerSec = sent / seconds
  return { msgsPerSec, gbPerSec: (msgsPerSec * size) / 1e9, deliveriesPerSec: msgsPerSec * readers.length, count: sent, seconds }
}

// ---- rows (orchestrator side) ----

export function broadcastRows(ctx) {
  const { config, withSegments, runChildren, socketPath, rmSocket, needShmq, CAPACITY, TIMEOUT_MS } = ctx
  const limits = config.small
  const size = 64

  const shmqRun = (subscribers, style) =>
    withSegments(async (name) => {
      const spin = subscribers > 1 ? 0 : undefined
      const publisher = { file: 'broadcast.mjs', role: 'publisher', params: { name, size, subscribers, style, capacity: CAPACITY, spin, ...limits } }
      const readers = Array.from({ length: subscribers }, () => ({ file: 'broadcast.mjs', role: 'subscriber', params: { name, size, spin } }))
      const [sent, ...received] = await runChildren([publisher, ...readers], TIMEOUT_MS)
      return { ...fanoutSample(sent.sent, received, size), fullWaits: sent.fullWaits }
    })

  const socketRun = async (clients, perMessage) => {
    const path = socketPath()
    try {
      const server = { file: 'broadcast.mjs', role: 'socket-server', params: { path, size, clients, perMessage, ...limits }, startAfter: 'LISTENING' }
      const readers = Array.from({ length: clients }, () => ({ file: 'broadcast.mjs', role: 'socket-client', params: { path, size } }))
      const [sent, ...received] = await runChildren([server, ...readers], TIMEOUT_MS)
      return fanoutSample(sent.sent, received, size)
    } finally {
      rmSocket(path)
    }
  }

  const ipcRun = async (clients) => {
    const [sent] = await runChildren([{ file: 'broadcast.mjs', role: 'ipc-fanout', params: { size, clients, serialization: 'json', ...limits } }], TIMEOUT_MS)
    return fanoutSample(sent.sent, sent.peers, size)
  }

  const row = (subscribers) => ({
    id: `bc${subscribers}`,
    title: `broadcast 64 B, 1 publisher → ${subscribers} subscriber process${subscribers > 1 ? 'es' : ''} (each gets every message)`,
    kind: 'throughput',
    runs: config.runs,
    systems: [
      { id: 'shmq', label: 'shmq Publisher/Subscriber, backpressure (tryWrite, else await write → drainRaw, else await read)', unavailable: needShmq, run: () => shmqRun(subscribers, 'tuned') },
      { id: 'shmq-await', label: 'shmq Publisher/Subscriber, backpressure (await write → drainRaw, else await read)', unavailable: needShmq, run: () => shmqRun(subscribers, 'await') },
      { id: 'unix', label: `Unix-socket server → ${subscribers} client${subscribers > 1 ? 's' : ''} (each 64 KiB batch written to every socket)`, run: () => socketRun(subscribers, false) },
      { id: 'unix-each', label: `Unix-socket server → ${subscribers} client${subscribers > 1 ? 's' : ''} (each message written to every socket)`, run: () => socketRun(subscribers, true) },
      { id: 'ipc', label: `child_process IPC → ${subscribers} child${subscribers > 1 ? 'ren' : ''} (json, send per message per child)`, run: () => ipcRun(subscribers) },
    ],
  })
  return [row(1), row(2)]
}

// ---- children ----

function loadShmq() {
  return createRequire(import.meta.url)('../../dist/index.js')
}

const spinOption = (params) => (params.spin === undefined || params.spin === null ? {} : { spin: params.spin })

async function publisher(params) {
  const { Publisher } = loadShmq()
  const p = Publisher.create(params.name, { capacity: params.capacity, maxMessage: params.size, maxSubscribers: params.subscribers, ...spinOption(params) })
  const message = payload(params.size)
  let fullWaits = 0
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
    await p.write(new Uint8Array(MARK_LENGTH))
    fullWaits = 0
    sent = await streamChunks(writeChunk, chunk, params.count, nowNs() + params.maxMs * 1e6)
    await p.write(new Uint8Array(END_LENGTH))
    if (p.dropped.dead + p.dropped.evicted !== 0) throw new Error(`subscribers dropped: ${JSON.stringify(p.dropped)}`)
  } finally {
    p.close()
  }
  result({ sent, fullWaits })
}

async function subscriber(params) {
  const { Subscriber } = loadShmq()
  const s = Subscriber.open(params.name, { from: 'next', timeout: 5000, ...spinOption(params) })
  const tally = new Tally()
  let sum = 0
  const raw = (bytes, offset, length) => {
    if (length <= CONTROL_MAX) return tally.control(length)
    sum += bytes[offset] + bytes[offset + length - 1]
    tally.received++
  }
  try {
    await barrier()
    while (!tally.done) {
      if (s.drainRaw(raw) !== 0) continue
      const message = await s.read()
      if (message === null) throw new Error('the stream ended before its END message')
      raw(message, 0, message.length)
    }
    if (s.lost !== 0) throw new Error(`lost ${s.lost} messages`)
  } finally {
    s.close()
  }
  result(tally.report({ sum }))
}

async function socketServer(params) {
  const sockets = await acceptClients(params.path, params.clients)
  const message = payload(params.size)
  const writer = new FrameWriter(BATCH_BYTES, params.size)
  // every batch to every socket; wait for the 'drain' of each that is full before the next batch
  const writeAll = async (batch) => {
    const full = sockets.filter((socket) => !socket.write(batch))
    if (full.length > 0) await Promise.all(full.map((socket) => once(socket, 'drain')))
  }
  const batched = async (limit, deadline) => {
    let sent = 0
    while (sent < limit) {
      for (; sent < limit && writer.fits(message.length); sent++) writer.add(message)
      await writeAll(writer.take())
      if (nowNs() >= deadline) break
    }
    return sent
  }
  // params.perMessage: one socket.write() of each framed message to each socket (the same Buffer to all)
  const framed = Buffer.alloc(4 + message.length)
  framed.writeUInt32LE(message.length, 0)
  framed.set(message, 4)
  const perMessage = async (limit, deadline) => {
    let sent = 0
    while (sent < limit) {
      let full = false
      for (let i = 0; i < 1024 && sent < limit; i++, sent++) for (const socket of sockets) if (!socket.write(framed)) full = true
      if (full) await Promise.all(sockets.filter((socket) => socket.writableNeedDrain).map((socket) => once(socket, 'drain')))
      if (nowNs() >= deadline) break
    }
    return sent
  }
  const stream = params.perMessage ? perMessage : batched
  await barrier()
  await stream(Infinity, nowNs() + params.warmMs * 1e6)
  writer.add(new Uint8Array(MARK_LENGTH))
  if (params.perMessage) await writeAll(writer.take())
  const sent = await stream(params.count, nowNs() + params.maxMs * 1e6)
  writer.add(new Uint8Array(END_LENGTH))
  const last = writer.take()
  await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.end(last, resolve))))
  for (const socket of sockets) socket.destroy()
  result({ sent })
}

async function socketClient(params) {
  const socket = net.connect(params.path)
  await once(socket, 'connect')
  const tally = new Tally()
  let sum = 0
  const reader = new FrameReader(params.size, (view) => {
    if (view.length <= CONTROL_MAX) return tally.control(view.length)
    sum += view[0] + view[view.length - 1]
    tally.received++
  })
  await barrier()
  socket.on('data', (chunk) => reader.push(chunk))
  await once(socket, 'end')
  socket.destroy()
  result(tally.report({ sum }))
}

async function ipcFanout(params) {
  const peerFile = fileURLToPath(new URL('./ipc.mjs', import.meta.url))
  const peers = Array.from({ length: params.clients }, () =>
    fork(peerFile, ['peer-tp', JSON.stringify({ size: params.size, serialization: params.serialization })], { serialization: params.serialization, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  )
  await Promise.all(peers.map((peer) => once(peer, 'message')))
  const reports = peers.map((peer) => new Promise((resolve) => peer.on('message', resolve)))
  // printable, so that JSON does not escape it (as ipc.mjs)
  const text = (length) => 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(length / 26)).slice(0, length)
  const message = text(params.size)
  const batch = Math.max(1, Math.min(1000, Math.floor(65536 / params.size)))
  const sendLast = (peer) => new Promise((resolve, reject) => peer.send(message, (error) => (error ? reject(error) : resolve())))
  const stream = async (limit, deadline) => {
    let sent = 0
    let previous = Promise.resolve()
    while (sent < limit) {
      const n = Math.min(batch, limit - sent)
      for (const peer of peers) for (let i = 1; i < n; i++) peer.send(message)
      const last = Promise.all(peers.map(sendLast))
      sent += n
      await previous // at most two batches in flight per child
      previous = last
      if (nowNs() >= deadline) break
    }
    await previous
    return sent
  }
  await barrier()
  await stream(Infinity, nowNs() + params.warmMs * 1e6)
  for (const peer of peers) peer.send(text(MARK_LENGTH))
  const sent = await stream(params.count, nowNs() + params.maxMs * 1e6)
  for (const peer of peers) peer.send(text(END_LENGTH))
  const received = await Promise.all(reports)
  for (const peer of peers) peer.disconnect()
  result({ sent, peers: received, peerCpuMs: received.reduce((total, r) => total + r.cpuMs, 0) })
}

if (process.argv[1] === self) {
  const { role, params } = args()
  const roles = { publisher, subscriber, 'socket-server': socketServer, 'socket-client': socketClient, 'ipc-fanout': ipcFanout }
  if (!roles[role]) fail(new Error(`broadcast.mjs: unknown role ${role}`))
  roles[role](params).catch(fail)
}
