// The request/response rows of `npm run bench` (scripts/bench.mjs adds them;
// `--only rpc-rtt,rpc-tp1,rpc-tp32` runs just these), and their children.
//
// One server process and one client process; every request is 64 B and every
// reply is 64 B (a fixed reply; the server reads the request's first and last
// byte). Rows:
//   rpc-rtt   one request outstanding: the time of each round trip (per-sample
//             performance.now() around `await request()`), median and p99
//   rpc-tp1   one request outstanding: requests/s over the measured period
//   rpc-tp32  32 requests outstanding (32 loops, each issuing its next request
//             when its reply is in): requests/s
// Systems, in the same rounds:
//   shmq         Server.listen(name, async (request) => reply, { concurrency: 64 })
//                and Client.connect(name) + await client.request(bytes): default spin
//   shmq-parked  the same with { spin: 0 } on both sides: every wait parks (futex)
//   unix         one `net` connection over a Unix socket, frames
//                [u32 LE length][u32 LE request id][64 B], pipelined: the client
//                keeps a Map id → resolve. Writes are batched the way a careful
//                user would: the client packs every frame requested in one tick
//                into one buffer and writes it from process.nextTick (the
//                cork-then-uncork-in-nextTick pattern, without the writev); the
//                server packs the replies to every frame of one 'data' chunk into
//                one buffer and writes that once.
//   http         node:http on a Unix socket path: POST of 64 B, a 64 B reply;
//                http.Agent({ keepAlive: true, maxSockets: outstanding })
//   ipc          child_process IPC: the server process forks the client;
//                messages { id, data } with data a 64-character printable string
//                (json serialization, as the 64 B ipc rows: faster than advanced
//                at this size), a Map id → resolve on the client
// Every system's client exposes `request()` → Promise of the reply, and the same
// driver (driveRtt, driveThroughput) runs it. Round trips: `warmup` untimed, then up
// to `count` timed or until `maxMs` have passed; throughput: `warmup` requests
// and at least `warmMs` of warm-up (not counted), then up to `count` requests
// or `maxMs`.
//
// Ending a run: the unix client closes its connection; the http and shmq clients
// send a last request of 1 byte (BYE) that the server answers, then stops (shmq:
// `await server.close()`); the ipc client sends its result to the server that
// forked it, which reports it.
//
// Segments: each shmq run uses a fresh listener name `bench-rpc-<pid>-<n>`; the
// server makes reply rings `<name>.r<slot>-<token>`, so after every run (and at
// exit, e.g. on Ctrl-C) everything in /dev/shm named `<name>`, `<name>.*` or
// `.shmq-<name>.*` (wake-up FIFOs) is removed.
//
// Run as a child: node scripts/bench/rpc.mjs <role> <json params>
//   shmq-server / shmq-client, unix-server / unix-client,
//   http-server / http-client, ipc-server (forks ipc-client)
// params: name | path, mode ('rtt' | 'tp'), outstanding, spin, and the counts.

import fs from 'node:fs'
import net from 'node:net'
import http from 'node:http'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { args, barrier, result, cpuMs, nowNs, perfNs, summarize, payload, fail } from './common.mjs'
import { FrameReader, FrameWriter } from './frames.mjs'

const self = fileURLToPath(import.meta.url)
const SIZE = 64 // request and reply bytes
const ID_BYTES = 4 // the unix protocol's correlation id, inside the frame
const BYE_BYTES = 1 // the last request of an http or shmq run

// ---- rows (orchestrator side) ----

export function rpcRows(ctx) {
  const { config, quick, runChildren, socketPath, rmSocket, needShmq, TIMEOUT_MS } = ctx
  // Counts: the whole of these three rows stays under ~60 s with 5 runs (about
  // 65 runs of 2 processes each, ~0.3 s of spawning, probing and waiting each).
  // The slow systems (http ~100 µs a round trip) hit maxMs first.
  const rtt = { count: config.rtt.count, warmup: config.rtt.warmup, maxMs: quick ? 300 : 400 }
  const tp = { count: quick ? 50_000 : 200_000, warmup: config.rtt.warmup, warmMs: 100, maxMs: quick ? 250 : 300 }

  let shmq = null
  let needRpc = needShmq
  if (!needRpc) {
    try {
      shmq = createRequire(import.meta.url)('../../dist/index.js')
      if (typeof shmq.Server?.listen !== 'function' || typeof shmq.Client?.connect !== 'function') needRpc = 'n/a (dist/index.js has no Server/Client yet)'
    } catch (error) {
      needRpc = `n/a (cannot load dist/index.js: ${error.message.split('\n')[0]})`
    }
  }

  // segment names of this process's runs, removed after each run and at exit
  let sequence = 0
  const live = new Set()
  const sweep = (name) => {
    let entries = []
    try {
      entries = fs.readdirSync('/dev/shm')
    } catch {
      return
    }
    const mine = (entry) => entry === name || entry.startsWith(`${name}.`)
    for (const entry of entries.filter(mine)) {
      try {
        shmq?.unlink(entry) // the segment and its wake-up FIFOs
      } catch {}
    }
    for (const entry of fs.readdirSync('/dev/shm')) {
      if (mine(entry) || entry.startsWith(`.shmq-${name}.`)) fs.rmSync(`/dev/shm/${entry}`, { force: true })
    }
  }
  process.on('exit', () => {
    for (const name of live) sweep(name)
  })

  const shmqRun = async (params) => {
    const name = `bench-rpc-${process.pid}-${++sequence}`
    live.add(name)
    try {
      const [, client] = await runChildren(
        [
          { file: 'rpc.mjs', role: 'shmq-server', params: { name, spin: params.spin }, startAfter: 'LISTENING' },
          { file: 'rpc.mjs', role: 'shmq-client', params: { name, ...params } },
        ],
        TIMEOUT_MS,
      )
      return client
    } finally {
      sweep(name)
      live.delete(name)
    }
  }

  const socketRun = async (kind, params) => {
    const path = socketPath()
    try {
      const [, client] = await runChildren(
        [
          { file: 'rpc.mjs', role: `${kind}-server`, params: { path }, startAfter: 'LISTENING' },
          { file: 'rpc.mjs', role: `${kind}-client`, params: { path, ...params } },
        ],
        TIMEOUT_MS,
      )
      return client
    } finally {
      rmSocket(path)
    }
  }

  const ipcRun = async (params) => {
    const [r] = await runChildren([{ file: 'rpc.mjs', role: 'ipc-server', params }], TIMEOUT_MS)
    return r
  }

  const systems = (params, withParked) => [
    { id: 'shmq', label: 'shmq Server/Client (async handler, await client.request; default spin)', unavailable: needRpc, run: () => shmqRun(params) },
    ...(withParked ? [{ id: 'shmq-parked', label: 'shmq Server/Client, { spin: 0 } on both (every wait parks)', unavailable: needRpc, run: () => shmqRun({ ...params, spin: 0 }) }] : []),
    { id: 'unix', label: 'Unix socket (net, [u32 length][u32 id][64 B] frames, pipelined, Map id → resolve)', run: () => socketRun('unix', params) },
    { id: 'http', label: `node:http over a Unix socket (POST, keep-alive Agent, maxSockets ${params.outstanding})`, run: () => socketRun('http', params) },
    { id: 'ipc', label: 'child_process IPC (json, { id, data: 64-char string }, Map id → resolve)', run: () => ipcRun(params) },
  ]

  return [
    {
      id: 'rpc-rtt',
      title: `request/response 64 B → 64 B, 1 client process, 1 outstanding: round trip (${rtt.count} or ${rtt.maxMs} ms)`,
      kind: 'rtt',
      runs: config.rttRuns,
      systems: systems({ mode: 'rtt', outstanding: 1, ...rtt }, true),
    },
    {
      id: 'rpc-tp1',
      title: 'request/response 64 B → 64 B, 1 outstanding: requests/s',
      kind: 'throughput',
      runs: config.runs,
      systems: systems({ mode: 'tp', outstanding: 1, ...tp }, false),
    },
    {
      id: 'rpc-tp32',
      title: 'request/response 64 B → 64 B, 32 outstanding: requests/s',
      kind: 'throughput',
      runs: config.runs,
      systems: systems({ mode: 'tp', outstanding: 32, ...tp }, false),
    },
  ]
}

/** The target lines of the rpc rows (printed after the table, as format.mjs's). */
export function rpcTargets(results) {
  const values = (row, system, key) => (results[row]?.[system]?.samples ?? []).map((s) => (s ? s[key] : NaN))
  const median = (list) => {
    const v = list.filter(Number.isFinite).sort((a, b) => a - b)
    return v.length === 0 ? NaN : v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
  }
  /** Median over runs of a[i] / b[i] (both measured in the same round). */
  const paired = (row, a, b, key) => {
    const x = values(row, a, key)
    const y = values(row, b, key)
    const r = []
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (Number.isFinite(x[i]) && Number.isFinite(y[i]) && y[i] > 0) r.push(x[i] / y[i])
    return median(r)
  }
  const us = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : '—')
  const rate = (x) => (Number.isFinite(x) ? (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(1)} k`) : '—')
  const exact = (x) => (Number.isFinite(x) ? `${x.toFixed(3)}×` : '—')
  const lines = []
  const line = (text, measured, met) => lines.push(`- ${text} / ${measured} / **${met === null ? 'n/a' : met ? 'yes' : 'NO'}**`)
  const has = (row, system, key) => values(row, system, key).some(Number.isFinite)

  if (results['rpc-rtt']) {
    const row = 'rpc-rtt'
    if (has(row, 'shmq-parked', 'medianUs') && has(row, 'unix', 'medianUs')) {
      const r = paired(row, 'shmq-parked', 'unix', 'medianUs')
      line('request/response round trip, parked ({ spin: 0 }) ≤ 0.5× the Unix-socket protocol', `${exact(r)} (${us(median(values(row, 'shmq-parked', 'medianUs')))} vs ${us(median(values(row, 'unix', 'medianUs')))} µs)`, r <= 0.5)
    } else line('request/response round trip, parked ({ spin: 0 }) ≤ 0.5× the Unix-socket protocol', 'no shmq result', null)
    if (has(row, 'shmq', 'medianUs')) {
      const m = median(values(row, 'shmq', 'medianUs'))
      line('request/response round trip, default spin ≤ 2 µs median', `${us(m)} µs (p99 ${us(median(values(row, 'shmq', 'p99Us')))} µs)`, m <= 2)
    } else line('request/response round trip, default spin ≤ 2 µs median', 'no shmq result', null)
    for (const system of ['http', 'ipc']) {
      if (!has(row, 'shmq', 'medianUs') || !has(row, system, 'medianUs')) continue
      line(`(shown, no target) request/response round trip, ${system} ÷ shmq`, `${exact(paired(row, system, 'shmq', 'medianUs'))} (${us(median(values(row, system, 'medianUs')))} µs)`, null)
    }
  }
  for (const row of ['rpc-tp1', 'rpc-tp32']) {
    if (!results[row]) continue
    const named = row === 'rpc-tp32'
    const k = named ? 32 : 1
    for (const system of ['unix', 'http', 'ipc']) {
      const text = `${named && system === 'unix' ? '' : '(shown, no target) '}request/response, ${k} outstanding${named && system === 'unix' ? ' ≥ 5× the Unix-socket protocol' : ` ÷ ${system}`}`
      if (!has(row, 'shmq', 'msgsPerSec') || !has(row, system, 'msgsPerSec')) {
        if (named && system === 'unix') line(text, 'no shmq result', null)
        continue
      }
      const r = paired(row, 'shmq', system, 'msgsPerSec')
      line(text, `${exact(r)} (${rate(median(values(row, 'shmq', 'msgsPerSec')))} vs ${rate(median(values(row, system, 'msgsPerSec')))} requests/s)`, named && system === 'unix' ? r >= 5 : null)
    }
  }
  return lines.length ? `\nRequest/response targets (medians of per-run ratios):\n${lines.join('\n')}` : ''
}

// ---- the client driver (every system) ----

function checkReply(reply) {
  if (reply.length !== SIZE) throw new Error(`reply of ${reply.length} bytes, not ${SIZE}`)
}

/** One outstanding request: `warmup` untimed, then up to `count` timed round trips or `maxMs`. */
async function driveRtt(request, params) {
  for (let i = 0; i < params.warmup; i++) checkReply(await request())
  const samples = new Float64Array(params.count)
  const tStart = nowNs()
  const deadline = perfNs() + params.maxMs * 1e6
  let n = 0
  while (n < params.count) {
    const t0 = perfNs()
    const reply = await request()
    const t1 = perfNs()
    samples[n++] = t1 - t0
    checkReply(reply)
    if (t1 >= deadline) break
  }
  const seconds = (nowNs() - tStart) / 1e9
  return { ...summarize(samples.subarray(0, n)), requestsPerSec: n / seconds }
}

/** `outstanding` loops of `await request()`: warm-up (`warmup` requests and `warmMs`), then up to `count` requests or `maxMs`. */
async function driveThroughput(request, params) {
  /** Up to `limit` requests; stops issuing once `deadline` has passed and at least `least` are done. */
  const phase = async (limit, deadline, least) => {
    let issued = 0
    let done = 0
    let stop = false
    const lane = async () => {
      while (!stop && issued < limit) {
        issued++
        checkReply(await request())
        if ((++done & 127) === 0 && done >= least && nowNs() >= deadline) stop = true
      }
    }
    await Promise.all(Array.from({ length: params.outstanding }, lane))
    return done
  }
  // warm-up by count too: the JIT tiers up by calls, and a slow system makes few in warmMs
  const warm = await phase(Infinity, nowNs() + params.warmMs * 1e6, params.warmup)
  const tStart = nowNs()
  const count = await phase(params.count, nowNs() + params.maxMs * 1e6, 0)
  const seconds = (nowNs() - tStart) / 1e9
  if (!(seconds > 0)) throw new Error(`bad duration ${seconds}`)
  const msgsPerSec = count / seconds
  return { msgsPerSec, gbPerSec: (msgsPerSec * SIZE) / 1e9, count, seconds, warm, outstanding: params.outstanding }
}

const drive = (request, params) => (params.mode === 'rtt' ? driveRtt(request, params) : driveThroughput(request, params))

// ---- children: shmq ----

function loadShmq() {
  return createRequire(import.meta.url)('../../dist/index.js')
}

const spinOption = (params) => (params.spin === undefined || params.spin === null ? {} : { spin: params.spin })

async function shmqServer(params) {
  const { Server } = loadShmq()
  const reply = payload(SIZE)
  let handled = 0
  let sum = 0
  let bye
  const byeSeen = new Promise((resolve) => (bye = resolve))
  const server = await Server.listen(
    params.name,
    async (request) => {
      if (request.length === BYE_BYTES) setImmediate(bye) // after this reply is written
      else {
        sum += request[0] + request[request.length - 1]
        handled++
      }
      return reply
    },
    { concurrency: 64, ...spinOption(params) },
  )
  process.stdout.write('LISTENING\n')
  try {
    await barrier()
    await byeSeen
  } finally {
    await server.close()
  }
  result({ handled, sum })
}

async function shmqClient(params) {
  const { Client } = loadShmq()
  const client = await Client.connect(params.name, { timeout: 5000, ...spinOption(params) })
  const message = payload(SIZE)
  const options = { timeout: 10000 }
  const request = () => client.request(message, options)
  let r
  try {
    await barrier()
    r = await drive(request, params)
    await client.request(new Uint8Array(BYE_BYTES), options)
  } finally {
    client.close()
  }
  result(r)
}

// ---- children: Unix socket, [u32 length][u32 id][payload] ----

const FRAME_BODY = ID_BYTES + SIZE // what the length prefix counts
// batch buffers under 4 KiB: Buffer.allocUnsafe takes them from Node's pool
const BATCH_BYTES = 4000

async function unixServer(params) {
  const server = net.createServer()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(params.path, resolve)
  })
  process.stdout.write('LISTENING\n')
  const [socket] = await once(server, 'connection')
  server.close() // one client per run; also removes the socket file
  const body = Buffer.alloc(FRAME_BODY)
  body.set(payload(SIZE), ID_BYTES)
  const writer = new FrameWriter(BATCH_BYTES, FRAME_BODY)
  let handled = 0
  let sum = 0
  const reader = new FrameReader(FRAME_BODY, (view) => {
    if (view.length !== FRAME_BODY) throw new Error(`request frame of ${view.length} bytes`)
    sum += view[ID_BYTES] + view[view.length - 1]
    handled++
    if (!writer.fits(FRAME_BODY)) socket.write(writer.take())
    body.writeUInt32LE(view.readUInt32LE(0), 0) // echo the id
    writer.add(body)
  })
  // every reply to one chunk's requests in one write
  socket.on('data', (chunk) => {
    reader.push(chunk)
    if (writer.pending > 0) socket.write(writer.take())
  })
  await barrier()
  await once(socket, 'end')
  socket.end()
  result({ handled, sum })
}

async function unixClient(params) {
  const socket = net.connect(params.path)
  await once(socket, 'connect')
  const pending = new Map() // id -> resolve
  let nextId = 0
  const reader = new FrameReader(FRAME_BODY, (view) => {
    const id = view.readUInt32LE(0)
    const resolve = pending.get(id)
    if (resolve === undefined) throw new Error(`reply to unknown request ${id}`)
    pending.delete(id)
    resolve(view.subarray(ID_BYTES)) // valid only now; the driver reads its length
  })
  socket.on('data', (chunk) => reader.push(chunk))
  const body = Buffer.alloc(FRAME_BODY)
  body.set(payload(SIZE), ID_BYTES)
  const writer = new FrameWriter(BATCH_BYTES, FRAME_BODY)
  let flushQueued = false
  const flush = () => {
    flushQueued = false
    if (writer.pending > 0) socket.write(writer.take())
  }
  const request = () => {
    const id = nextId
    nextId = (nextId + 1) >>> 0
    if (!writer.fits(FRAME_BODY)) flush()
    body.writeUInt32LE(id, 0)
    writer.add(body)
    if (!flushQueued) {
      flushQueued = true
      process.nextTick(flush) // after every request made in this tick
    }
    return new Promise((resolve) => pending.set(id, resolve))
  }
  await barrier()
  const r = await drive(request, params)
  socket.end()
  await once(socket, 'close')
  result(r)
}

// ---- children: node:http over a Unix socket ----

async function httpServer(params) {
  const reply = Buffer.from(payload(SIZE))
  let handled = 0
  let sum = 0
  let bye
  const byeSeen = new Promise((resolve) => (bye = resolve))
  const server = http.createServer((req, res) => {
    let length = 0
    req.on('data', (chunk) => {
      if (length === 0) sum += chunk[0]
      length += chunk.length
    })
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIZE })
      res.end(reply)
      if (length === BYE_BYTES) res.once('finish', bye)
      else handled++
    })
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(params.path, resolve)
  })
  process.stdout.write('LISTENING\n')
  await barrier()
  await byeSeen
  const closed = new Promise((resolve) => server.close(resolve))
  server.closeAllConnections()
  await closed
  result({ handled, sum })
}

async function httpClient(params) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: params.outstanding })
  const options = {
    socketPath: params.path,
    agent,
    method: 'POST',
    path: '/',
    headers: { 'content-type': 'application/octet-stream', 'content-length': SIZE },
  }
  const body = Buffer.from(payload(SIZE))
  const post = (bytes, opts) =>
    new Promise((resolve, reject) => {
      const req = http.request(opts, (res) => {
        const chunks = []
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('end', () => (res.statusCode === 200 ? resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(bytes)
    })
  const request = () => post(body, options)
  await barrier()
  const r = await drive(request, params)
  await post(Buffer.alloc(BYE_BYTES), { ...options, headers: { ...options.headers, 'content-length': BYE_BYTES } })
  agent.destroy()
  result(r)
}

// ---- children: child_process IPC ----

// printable, so that JSON does not escape it: 64 B of payload stay ~64 B on the wire (as ipc.mjs)
const text = (length) => 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(length / 26)).slice(0, length)

async function ipcServer(params) {
  const child = fork(self, ['ipc-client', JSON.stringify(params)], { serialization: 'json', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const reply = text(SIZE)
  let handled = 0
  let sum = 0
  let report
  const reported = new Promise((resolve) => (report = resolve))
  let ready
  const isReady = new Promise((resolve) => (ready = resolve))
  child.on('message', (message) => {
    if (message.id !== undefined) {
      sum += message.data.charCodeAt(0) + message.data.charCodeAt(message.data.length - 1)
      handled++
      child.send({ id: message.id, data: reply })
    } else if (message === 'ready') ready()
    else report(message)
  })
  await Promise.race([isReady, exited.then(({ code, signal }) => Promise.reject(new Error(`ipc client exited (code ${code}, signal ${signal}) before it was ready`)))])
  await barrier()
  child.send('go')
  const r = await Promise.race([reported, exited.then(({ code, signal }) => Promise.reject(new Error(`ipc client exited (code ${code}, signal ${signal}) without a result`)))])
  child.disconnect()
  await exited
  result({ ...r.result, handled, sum, peerCpuMs: r.cpuMs })
}

async function ipcClient(params) {
  const pending = new Map() // id -> resolve
  let nextId = 0
  const message = text(SIZE)
  let go
  const started = new Promise((resolve) => (go = resolve))
  process.on('message', (m) => {
    if (m === 'go') return go()
    const resolve = pending.get(m.id)
    if (resolve === undefined) throw new Error(`reply to unknown request ${m.id}`)
    pending.delete(m.id)
    resolve(m.data)
  })
  const request = () => {
    const id = nextId++
    process.send({ id, data: message })
    return new Promise((resolve) => pending.set(id, resolve))
  }
  process.send('ready')
  await started
  const r = await drive(request, params)
  process.send({ result: r, cpuMs: cpuMs() })
  await once(process, 'disconnect')
}

if (process.argv[1] === self) {
  const { role, params } = args()
  const roles = {
    'shmq-server': shmqServer,
    'shmq-client': shmqClient,
    'unix-server': unixServer,
    'unix-client': unixClient,
    'http-server': httpServer,
    'http-client': httpClient,
    'ipc-server': ipcServer,
    'ipc-client': ipcClient,
  }
  if (!roles[role]) fail(new Error(`rpc.mjs: unknown role ${role}`))
  roles[role](params).catch(fail)
}
