#!/usr/bin/env node
// Request/response round trip over loopback, one request outstanding, 64 B and 64 KiB (echoed):
//   (a) plain NATS request/reply between two Node processes with the same client (nc.request / msg.respond)
//   (b) shmq Client → bridge (shm → NATS) → nats-server → bridge (NATS → shm) → shmq Server, each its own process
// and the ratio b/a. `node scripts/bench/bridge-rpc.mjs [--runs N] [--count N] [--compare]` prints a table
// (needs nats-server; `npm run build:ts` first); --compare adds plain NATS with a reply inbox and correlation
// of one's own (what the bridge does) beside nc.request. Also run as its own child processes (argv[2] a role).
import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
const require = createRequire(import.meta.url)
const SIZES = [64, 64 * 1024]
const WARMUP = 300

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/** Sequential round trips of `size` bytes with `ask`, in µs. */
async function measure(ask, size, count) {
  const message = new Uint8Array(size).fill(7)
  for (let i = 0; i < WARMUP; i++) await ask(message)
  const samples = new Float64Array(count)
  for (let i = 0; i < count; i++) {
    const started = performance.now()
    const reply = await ask(message)
    samples[i] = (performance.now() - started) * 1000
    if (reply.length !== size) throw new Error(`reply of ${reply.length} bytes to a request of ${size}`)
  }
  return Array.from(samples)
}

// ---- child roles ----------------------------------------------------------------------------
async function childRole(role, cfg) {
  const ready = () => process.send({ ready: true })
  if (role === 'responder') {
    const { connect } = require('@nats-io/transport-node')
    const nc = await connect({ servers: cfg.server })
    nc.subscribe(cfg.subject, { callback: (_error, msg) => msg.respond(msg.data) })
    await nc.flush()
    ready()
    process.on('message', (m) => (m === 'exit' ? nc.close().then(() => process.exit(0)) : process.send({ cpu: process.cpuUsage() })))
    return new Promise(() => {})
  }
  if (role === 'shm-server') {
    const { Server } = require('../../dist/index.js')
    const server = Server.listen(cfg.name, (request) => request)
    ready()
    process.on('message', (m) => m === 'exit' && server.close({ timeout: 100 }).then(() => process.exit(0)))
    return new Promise(() => {})
  }
  if (role === 'bridge') {
    const { bridge } = require('../../dist/bridge/index.js')
    const running = await bridge(cfg.options)
    ready()
    // CPU time the bridge spent, for the per-request cost
    process.on('message', (m) => (m === 'exit' ? running.close().then(() => process.exit(0)) : process.send({ cpu: process.cpuUsage() })))
    return new Promise(() => {})
  }
  let ask
  let close = async () => {}
  if (role === 'requester' || role === 'own-inbox') {
    const { connect } = require('@nats-io/transport-node')
    const nc = await connect({ servers: cfg.server })
    close = () => nc.close()
    if (role === 'requester') ask = async (message) => (await nc.request(cfg.subject, message, { timeout: 10_000 })).data
    else {
      // publish with a reply subject of one's own inbox, matched by id: the bridge's way (lib/bridge/rpc.ts)
      const prefix = `_INBOX.bench${process.pid}.`
      const pending = new Map()
      let next = 0
      nc.subscribe(`${prefix}*`, { callback: (_error, msg) => pending.get(Number(msg.subject.slice(prefix.length)))?.(msg.data) })
      await nc.flush()
      ask = (message) =>
        new Promise((resolve) => {
          const id = next++
          pending.set(id, (data) => (pending.delete(id), resolve(data)))
          nc.publish(cfg.subject, message, { reply: prefix + id })
        })
    }
  } else {
    const { Client } = require('../../dist/index.js')
    const client = await Client.connect(cfg.name, { timeout: 10_000 })
    close = async () => client.close()
    ask = (message) => client.request(message, { timeout: 10_000 })
  }
  ready()
  process.on('message', async (m) => {
    if (m === 'exit') await close().then(() => process.exit(0))
    else process.send({ samples: await measure(ask, m.size, m.count) })
  })
  return new Promise(() => {})
}

// ---- parent ---------------------------------------------------------------------------------
function spawnRole(role, cfg, live) {
  const execArgv = process.env.BRIDGE_RPC_PROFILE !== undefined && role === 'bridge' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BRIDGE_RPC_PROFILE}`] : []
  const child = fork(self, [role, JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
  live.add(child)
  child.ready = new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`${role} exited (${code}) before it was ready`)))
  })
  return child
}

const rank = (child) => ['requester', 'own-inbox', 'shm-client', 'bridge', 'responder', 'shm-server'].indexOf(child.spawnargs.at(-2))

function ask(child, size, count) {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m.samples))
    child.send({ size, count })
  })
}

/**
 * Rows { name, size, medianUs, p99Us } for 64 B and 64 KiB: plain NATS request/reply, the shmq request
 * through two bridges (with `ratio` and `p99Ratio` to plain NATS), and with `compare` plain NATS with an inbox
 * of one's own. `runs` rounds alternate the paths (a host's noise lands on both); `count` round trips per
 * size and round.
 */
export async function rpcBridgeRows(nats, { runs = 3, count = 1000, compare = false } = {}) {
  const { unlink } = require('../../dist/index.js')
  const live = new Set()
  const server = nats.url.replace(/^nats:\/\//, '')
  const [far, near] = [`bench-rpc-a-${process.pid}`, `bench-rpc-b-${process.pid}`]
  const [plainSubject, bridgeSubject] = [`bench.rpc.plain.${process.pid}`, `bench.rpc.bridge.${process.pid}`]
  try {
    const responder = spawnRole('responder', { server, subject: plainSubject }, live)
    await responder.ready
    const requester = spawnRole('requester', { server, subject: plainSubject }, live)
    const ownInbox = compare ? spawnRole('own-inbox', { server, subject: plainSubject }, live) : null
    await spawnRole('shm-server', { name: far }, live).ready
    const farBridge = spawnRole('bridge', { options: { from: `${nats.url}/${bridgeSubject}`, to: `shm:${far}`, kind: 'rpc' } }, live)
    await farBridge.ready
    const nearBridge = spawnRole('bridge', { options: { from: `shm:${near}`, to: `${nats.url}/${bridgeSubject}`, kind: 'rpc' } }, live)
    await nearBridge.ready
    const client = spawnRole('shm-client', { name: near }, live)
    await Promise.all([requester.ready, client.ready, ownInbox?.ready])
    const paths = [
      { name: 'nats request/reply', child: requester },
      ...(ownInbox === null ? [] : [{ name: 'nats publish + own inbox', child: ownInbox }]),
      { name: 'shmq rpc via 2 bridges', child: client },
    ]
    const samples = new Map(paths.flatMap((p) => SIZES.map((size) => [`${p.name}/${size}`, []])))
    const cpu = (child) => new Promise((resolve) => (child.once('message', (m) => resolve(m.cpu)), child.send('cpu')))
    const cpuUs = new Map(SIZES.map((size) => [size, 0]))
    for (let round = 0; round < runs; round++) {
      for (const size of SIZES) {
        for (const p of paths) {
          const before = p.child === client ? await Promise.all([cpu(nearBridge), cpu(farBridge)]) : null
          samples.get(`${p.name}/${size}`).push(...(await ask(p.child, size, count)))
          if (before !== null) {
            const after = await Promise.all([cpu(nearBridge), cpu(farBridge)])
            for (let i = 0; i < 2; i++) cpuUs.set(size, cpuUs.get(size) + after[i].user + after[i].system - before[i].user - before[i].system)
          }
        }
      }
    }
    const rows = []
    for (const size of SIZES) {
      const stats = (name) => {
        const sorted = samples.get(`${name}/${size}`).sort((x, y) => x - y)
        return { name, size, medianUs: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99) }
      }
      const plain = stats('nats request/reply')
      rows.push(plain)
      if (ownInbox !== null) rows.push(stats('nats publish + own inbox'))
      const bridged = stats('shmq rpc via 2 bridges')
      // both bridges' CPU per round trip, warm-up included
      const bridgeCpuUs = cpuUs.get(size) / (runs * (count + WARMUP))
      rows.push({ ...bridged, ratio: bridged.medianUs / plain.medianUs, p99Ratio: bridged.p99Us / plain.p99Us, bridgeCpuUs })
    }
    return rows
  } finally {
    // clients first, then the bridges and servers: each closes (its rings, FIFOs and stats file go with it)
    const order = [...live].sort((x, y) => rank(x) - rank(y))
    for (const child of order) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.send('exit')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    for (const name of [far, near]) {
      try {
        unlink(name)
      } catch {}
    }
  }
}

const sizeName = (size) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`)

async function main() {
  const { MISSING, natsServerPath, startNats } = await import('../../test/bridge/nats-server.mjs')
  if (natsServerPath() === null) {
    console.error(MISSING)
    process.exit(1)
  }
  const option = (flag, fallback) => (process.argv.includes(flag) ? Number(process.argv[process.argv.indexOf(flag) + 1]) : fallback)
  const nats = await startNats()
  try {
    const rows = await rpcBridgeRows(nats, { runs: option('--runs', 3), count: option('--count', 1000), compare: process.argv.includes('--compare') })
    console.log('| path | size | median µs | p99 µs | median vs nats | p99 vs nats | bridges\' CPU µs per request |')
    console.log('|---|---:|---:|---:|---:|---:|---:|')
    for (const row of rows) {
      const ratio = (r) => (r === undefined ? '' : `${r.toFixed(2)}×`)
      console.log(`| ${row.name} | ${sizeName(row.size)} | ${row.medianUs.toFixed(1)} | ${row.p99Us.toFixed(1)} | ${ratio(row.ratio)} | ${ratio(row.p99Ratio)} | ${row.bridgeCpuUs === undefined ? '' : row.bridgeCpuUs.toFixed(1)} |`)
    }
  } finally {
    await nats.dispose()
  }
}

const role = process.argv[2]
if (role !== undefined && !role.startsWith('--')) {
  childRole(role, JSON.parse(process.argv[3])).catch((error) => {
    console.error(error)
    process.exit(1)
  })
} else if (process.argv[1] === self) {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error)
      process.exit(1)
    },
  )
}
