// Baseline: `net` over a Unix domain socket, 4-byte length prefixes.
//
// Roles (scripts/bench.mjs starts the server side first):
//   tp-consumer  listens on params.path; counts frames until the end frame
//   tp-server    listens on params.path for params.clients tp-producer connections;
//                counts each one's frames after its mark, times the first mark to
//                the last end (StreamsTally in mpsc.mjs)
//   tp-producer  connects; writes frames packed ~64 KiB per socket.write(), honours
//                'drain'; warm-up, mark, measured part, end as in shmq.mjs
//   rtt-echo     listens; sends every frame straight back
//   rtt-ping     connects; sends one 64-byte frame, waits for the echo, samples the time
// params.spin: round trips without the event loop: both sides poll the socket's
// non-blocking fd with fs.readSync (EAGAIN while empty) and write with fs.writeSync.
// That needs the fd: `socket._handle.fd`, a Node internal, read once per socket.

import fs from 'node:fs'
import net from 'node:net'
import { once } from 'node:events'
import { args, barrier, result, nowNs, perfNs, summarize, payload, Tally, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'
import { FrameReader, FrameWriter, PREFIX_BYTES } from './frames.mjs'
import { StreamsTally } from './mpsc.mjs'

const BATCH_BYTES = 64 * 1024

const { role, params } = args()

function listen(path, pauseOnConnect) {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect })
    server.once('error', reject)
    server.listen(path, () => resolve(server))
  })
}

async function accept(server) {
  const [socket] = await once(server, 'connection')
  server.close() // one peer per run; also removes the socket file
  return socket
}

async function connect(path, paused) {
  const socket = net.connect(path)
  if (paused) socket.pause() // before 'connect': the handle never starts reading
  await once(socket, 'connect')
  return socket
}

function handleFd(socket) {
  const fd = socket._handle && socket._handle.fd
  if (typeof fd !== 'number' || fd < 0) throw new Error('no fd on the socket handle (Node internals changed)')
  return fd
}

async function tpConsumer() {
  const server = await listen(params.path, false)
  process.stdout.write('LISTENING\n')
  const socket = await accept(server)
  const out = new Uint8Array(params.size)
  const tally = new Tally()
  let sum = 0
  const copy = params.work === 'copy'
  const reader = new FrameReader(params.size, (view) => {
    if (view.length <= CONTROL_MAX) return tally.control(view.length)
    if (copy) out.set(view)
    else sum += view[0] + view[view.length - 1]
    tally.received++
  })
  await barrier()
  socket.on('data', (chunk) => reader.push(chunk))
  await once(socket, 'end')
  socket.destroy()
  result(tally.report({ sum: sum + out[0] }))
}

async function tpServer() {
  const server = await listen(params.path, false)
  process.stdout.write('LISTENING\n')
  const sockets = await new Promise((resolve) => {
    const accepted = []
    server.on('connection', (socket) => {
      accepted.push(socket)
      if (accepted.length === params.clients) resolve(accepted)
    })
  })
  server.close() // every client is in; also removes the socket file
  const tally = new StreamsTally(params.clients)
  let sum = 0
  const readers = sockets.map(
    (_, stream) =>
      new FrameReader(params.size, (view) => {
        if (view.length <= CONTROL_MAX) return tally.control(stream, view.length)
        sum += view[0] + view[view.length - 1]
        tally.received[stream]++
      }),
  )
  await barrier()
  await Promise.all(
    sockets.map((socket, stream) => {
      socket.on('data', (chunk) => readers[stream].push(chunk))
      return once(socket, 'end').then(() => socket.destroy())
    }),
  )
  result(tally.report({ sum }))
}

async function tpProducer() {
  const socket = await connect(params.path, false)
  const message = payload(params.size)
  const writer = new FrameWriter(BATCH_BYTES, params.size)
  /** Writes up to `limit` messages, ~64 KiB per socket.write(), until a batch ends past `deadline`. */
  const stream = async (limit, deadline) => {
    let sent = 0
    while (sent < limit) {
      for (; sent < limit && writer.fits(message.length); sent++) writer.add(message)
      if (!socket.write(writer.take())) await once(socket, 'drain')
      if (nowNs() >= deadline) break
    }
    return sent
  }
  await barrier()
  await stream(Infinity, nowNs() + params.warmMs * 1e6)
  writer.add(new Uint8Array(MARK_LENGTH))
  const sent = await stream(params.count, nowNs() + params.maxMs * 1e6)
  writer.add(new Uint8Array(END_LENGTH))
  socket.end(writer.take())
  await once(socket, 'finish')
  socket.destroy()
  result({ sent })
}

// ---- round trips ----

function frame(message) {
  const bytes = Buffer.allocUnsafe(PREFIX_BYTES + message.length)
  bytes.writeUInt32LE(message.length, 0)
  bytes.set(message, PREFIX_BYTES)
  return bytes
}

/** Reads one frame by polling a non-blocking fd; returns the payload length. */
function spinReadFrame(fd, buffer) {
  let have = 0
  let need = PREFIX_BYTES
  for (;;) {
    let n
    try {
      n = fs.readSync(fd, buffer, have, buffer.length - have, null)
    } catch (error) {
      if (error.code === 'EAGAIN') continue
      throw error
    }
    if (n === 0) throw new Error('peer closed')
    have += n
    if (have >= PREFIX_BYTES) need = PREFIX_BYTES + buffer.readUInt32LE(0)
    if (have >= need) return need - PREFIX_BYTES
  }
}

function spinWrite(fd, bytes) {
  let done = 0
  while (done < bytes.length) {
    try {
      done += fs.writeSync(fd, bytes, done, bytes.length - done)
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error
    }
  }
}

async function rttEcho() {
  const server = await listen(params.path, params.spin)
  process.stdout.write('LISTENING\n')
  const socket = await accept(server)
  const total = params.count + params.warmup
  if (params.spin) {
    Error.stackTraceLimit = 0 // each EAGAIN throws; keep that cheap
    const fd = handleFd(socket)
    const buffer = Buffer.alloc(PREFIX_BYTES + 64 * 1024)
    await barrier()
    for (let i = 0; i < total; i++) {
      const length = spinReadFrame(fd, buffer)
      spinWrite(fd, buffer.subarray(0, PREFIX_BYTES + length))
    }
    socket.destroy()
    result({})
    return
  }
  const reader = new FrameReader(64 * 1024, (view) => socket.write(frame(view)))
  await barrier()
  socket.on('data', (chunk) => reader.push(chunk))
  await once(socket, 'end')
  socket.end()
  result({})
}

async function rttPing() {
  const socket = await connect(params.path, params.spin)
  const total = params.count + params.warmup
  const message = payload(64)
  const samples = new Float64Array(params.count)
  if (params.spin) {
    Error.stackTraceLimit = 0
    const fd = handleFd(socket)
    const buffer = Buffer.alloc(PREFIX_BYTES + 64 * 1024)
    const bytes = frame(message)
    await barrier()
    for (let i = 0; i < total; i++) {
      const t0 = perfNs()
      spinWrite(fd, bytes)
      spinReadFrame(fd, buffer)
      const t1 = perfNs()
      if (i >= params.warmup) samples[i - params.warmup] = t1 - t0
    }
    socket.destroy()
    result(summarize(samples))
    return
  }
  await barrier()
  let i = 0
  let t0 = 0
  const done = new Promise((resolve) => {
    const reader = new FrameReader(64 * 1024, () => {
      const t1 = perfNs()
      if (i >= params.warmup) samples[i - params.warmup] = t1 - t0
      if (++i === total) return resolve()
      t0 = perfNs()
      socket.write(frame(message))
    })
    socket.on('data', (chunk) => reader.push(chunk))
  })
  t0 = perfNs()
  socket.write(frame(message))
  await done
  socket.end()
  result(summarize(samples))
}

const roles = { 'tp-consumer': tpConsumer, 'tp-server': tpServer, 'tp-producer': tpProducer, 'rtt-echo': rttEcho, 'rtt-ping': rttPing }
if (!roles[role]) fail(`unix.mjs: unknown role ${role}`)
roles[role]().catch(fail)
