#!/usr/bin/env node
// `npm run bench -- --bridge [--runs N]`: the NATS bridge over loopback, 64 B and 64 KiB, needs nats-server.
//   one-way msgs/s: shmq alone; shmq → bridge → NATS → bridge → shmq (at-most-once); plain NATS publish/subscribe
//     between two Node processes with the same client (flushing every 256 messages, as the bridge's batches do)
//   round trip (one message outstanding, echoed): shmq alone; out through bridge → NATS → bridge and back through a
//     second pair; plain NATS ping-pong between two Node processes
// The last column is what the bridge adds to plain NATS's cost (time per message, or per round trip); the target is
// ≤ 20%. If scripts/bench/bridge-rpc.mjs exports rpcBridgeRows(nats, { runs }), its rows follow.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { MISSING, natsServerPath, startNats } from '../../test/bridge/nats-server.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { Consumer, unlink } = require('../../dist/index.js')
if (natsServerPath() === null) {
  console.error(MISSING)
  process.exit(1)
}
const runsAt = process.argv.indexOf('--runs')
const runs = runsAt >= 0 ? Number(process.argv[runsAt + 1]) : 3
if (!Number.isInteger(runs) || runs < 1) {
  console.error('--runs takes a positive integer')
  process.exit(2)
}
const TARGET = 0.2
const children = new Set()
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')))

/** A child that says { ready } once, then reports; `result` is its next message. */
function child(script, args) {
  const c = fork(script, args)
  children.add(c)
  c.once('exit', () => children.delete(c))
  c.ready = new Promise((resolve, reject) => {
    c.once('message', resolve)
    c.once('exit', (code) => reject(new Error(`${path.basename(script)} ${args[0]} exited ${code} before it was ready`)))
  })
  c.result = c.ready.then(() => new Promise((resolve, reject) => {
    c.once('message', resolve)
    c.once('exit', (code) => code !== 0 && reject(new Error(`${args[0]} exited ${code}`)))
  }))
  // children killed on purpose at the end of a row: their promises are settled without anyone waiting
  c.ready.catch(() => undefined)
  c.result.catch(() => undefined)
  return c
}
const side = (...args) => child(path.join(here, 'bridge-child.cjs'), args.map(String))
const bridgeChild = (options) => side('bridge', JSON.stringify(options))
/** A channel made in advance, so either side may open it. */
function channel(name) {
  Consumer.create(name, { capacity: 1 << 22 }).close()
  return name
}
/** Removes the channels, and the stats files their bridges leave when killed (lib/bridge-stats.ts). */
const drop = (...names) => {
  const entries = fs.readdirSync('/dev/shm')
  for (const name of names) {
    try {
      unlink(name)
    } catch {}
    for (const entry of entries) if (entry.startsWith(`.shmq-${name}.bridge-`)) fs.rmSync(`/dev/shm/${entry}`, { force: true })
  }
}
// the inbound bridge's pending queue is sized to take a burst whole: this row measures speed, the tests measure losses
const INBOUND = { maxInFlightMessages: 1 << 20, maxInFlightBytes: 1 << 30 }

async function shmqAlone(size, count) {
  const name = channel(`bench-bridge-${process.pid}`)
  const consumer = side('consume', name, '', size, count)
  await consumer.ready
  side('produce', name, '', size, count)
  const { ms } = await consumer.result
  drop(name)
  return (count / ms) * 1000
}

async function bridged(nats, size, count) {
  const [a, b] = [channel(`bench-bridge-a-${process.pid}`), channel(`bench-bridge-b-${process.pid}`)]
  const subject = `bench.${process.pid}`
  const inbound = bridgeChild({ from: `${nats.url}/${subject}`, to: `shm:${b}`, ...INBOUND })
  await inbound.ready
  const consumer = side('consume', b, '', size, count)
  await consumer.ready
  const outbound = bridgeChild({ from: `shm:${a}`, to: `${nats.url}/${subject}` })
  await outbound.ready
  const cpu0 = await bridgesCpu(inbound, outbound)
  // each bridge's last word, { stats, cpuUs }: they stop when the producer's end of stream reaches them, or on SIGTERM
  const finals = [inbound, outbound].map((c) => new Promise((resolve) => c.on('message', (m) => 'stats' in m && resolve(m.cpuUs))))
  side('produce', a, '', size, count)
  const { ms, received } = await consumer.result
  for (const c of [inbound, outbound]) c.kill('SIGTERM')
  const cpu = (await Promise.all(finals)).reduce((x, y) => x + y, 0) - cpu0
  drop(a, b)
  return received === count ? { rate: (count / ms) * 1000, cpuUs: cpu / count } : { rate: NaN, cpuUs: NaN }
}

/** CPU time the bridges used so far, µs. */
async function bridgesCpu(...bridges) {
  let total = 0
  for (const b of bridges) {
    const reply = new Promise((resolve) => b.once('message', resolve))
    b.send('cpu')
    total += (await reply).cpuUs
  }
  return total
}

async function plainNats(nats, size, count) {
  const subject = `plain.${process.pid}`
  const sub = side('nats-sub', `127.0.0.1:${nats.port}`, subject, size, count)
  await sub.ready
  const pub = side('nats-pub', `127.0.0.1:${nats.port}`, subject, size, count)
  const [{ ms, cpuUs: subCpu }, { cpuUs: pubCpu }] = await Promise.all([sub.result, pub.ready])
  return { rate: (count / ms) * 1000, cpuUs: (subCpu + pubCpu) / count }
}

/** The three round-trip paths, set up once: each a ping child that answers { size, count } with its samples. */
async function roundTripPaths(nats) {
  const tag = `${process.pid}`
  const [sa, sb] = [channel(`bench-rt-a-${tag}`), channel(`bench-rt-b-${tag}`)]
  const echo = side('shm-echo', sa, sb)
  const shm = side('shm-ping', sa, sb)
  // bridged: ping → A → bridge → NATS → bridge → B → echo → C → bridge → NATS → bridge → D → ping
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => channel(`bench-rtb-${x}-${tag}`))
  const [out, back] = [`bench.rt.out.${tag}`, `bench.rt.back.${tag}`]
  const bridges = [
    bridgeChild({ from: `shm:${a}`, to: `${nats.url}/${out}` }),
    bridgeChild({ from: `${nats.url}/${out}`, to: `shm:${b}` }),
    bridgeChild({ from: `shm:${c}`, to: `${nats.url}/${back}` }),
    bridgeChild({ from: `${nats.url}/${back}`, to: `shm:${d}` }),
  ]
  for (const x of bridges) await x.ready
  const bridgedEcho = side('shm-echo', b, c)
  const bridgedPing = side('shm-ping', a, d)
  const server = `127.0.0.1:${nats.port}`
  const natsEcho = side('nats-echo', server, `bench.rt.plain.${tag}`)
  await natsEcho.ready
  const natsPing = side('nats-ping', server, `bench.rt.plain.${tag}`)
  for (const x of [echo, shm, bridgedEcho, bridgedPing, natsPing]) await x.ready
  const ask = (ping, size, count) =>
    new Promise((resolve, reject) => {
      const exited = (code) => reject(new Error(`a ping child exited ${code}`))
      ping.once('exit', exited)
      ping.once('message', (m) => {
        ping.off('exit', exited)
        resolve(m.samples)
      })
      ping.send({ size, count })
    })
  return {
    paths: { shmq: shm, bridge: bridgedPing, nats: natsPing },
    ask,
    close() {
      for (const x of [echo, shm, bridgedEcho, bridgedPing, natsEcho, natsPing, ...bridges]) x.kill('SIGKILL')
      drop(sa, sb, a, b, c, d)
    },
  }
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
const rate = (r) => (r >= 1e6 ? `${(r / 1e6).toFixed(2)} M msgs/s` : `${(r / 1e3).toFixed(1)} k msgs/s`)
const micros = (sorted) => `${percentile(sorted, 0.5).toFixed(0)} µs (p99 ${percentile(sorted, 0.99).toFixed(0)})`
const verdict = (added) => (Number.isNaN(added) ? 'n/a' : `${added >= 0 ? '+' : ''}${(added * 100).toFixed(0)}% ${added <= TARGET ? '(met)' : '(missed)'}`)

const started = performance.now()
const nats = await startNats()
try {
  const rows = []
  const cpuRows = []
  const SIZES = [
    // label, size, one-way count (NATS paths: long enough to leave the client's warm-up behind), shmq alone, round trips
    ['64 B', 64, 300_000, 2_000_000, 2000],
    ['64 KiB', 65536, 6_000, 40_000, 500],
  ]
  for (const [label, size, count, shmqCount] of SIZES) {
    const results = { shmq: [], bridge: [], nats: [], bridgeCpu: [], natsCpu: [] }
    // alternating, so a noisy moment of the host lands on every path
    for (let run = 0; run < runs; run++) {
      results.shmq.push(await shmqAlone(size, shmqCount))
      const plain = await plainNats(nats, size, count)
      results.nats.push(plain.rate)
      results.natsCpu.push(plain.cpuUs)
      const through = await bridged(nats, size, count)
      results.bridge.push(through.rate)
      results.bridgeCpu.push(through.cpuUs)
    }
    const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
    // cost per message is 1 / rate
    rows.push(`| one-way ${label} | ${rate(m.shmq)} | ${rate(m.bridge)} | ${rate(m.nats)} | ${verdict(m.nats / m.bridge - 1)} |`)
    cpuRows.push(`| one-way ${label} | ${m.bridgeCpu.toFixed(2)} µs | ${m.natsCpu.toFixed(2)} µs | ${verdict(m.bridgeCpu / m.natsCpu - 1)} |`)
  }
  const rt = await roundTripPaths(nats)
  try {
    for (const [label, size, , , trips] of SIZES) {
      const samples = { shmq: [], bridge: [], nats: [] }
      for (let run = 0; run < runs; run++) {
        for (const [name, ping] of Object.entries(rt.paths)) samples[name].push(...(await rt.ask(ping, size, trips)))
      }
      for (const list of Object.values(samples)) list.sort((x, y) => x - y)
      const added = percentile(samples.bridge, 0.5) / percentile(samples.nats, 0.5) - 1
      rows.push(`| round trip ${label} | ${micros(samples.shmq)} | ${micros(samples.bridge)} | ${micros(samples.nats)} | ${verdict(added)} |`)
    }
  } finally {
    rt.close()
  }
  console.log(`bridge benchmark: nats-server on loopback, ${runs} run${runs === 1 ? '' : 's'} per row (median; round trips: median and p99 of all)\n`)
  console.log('| | shmq alone | shmq → bridge → NATS → bridge → shmq | plain NATS, two Node processes | bridge adds (target ≤ 20%) |')
  console.log('|---|---|---|---|---|')
  for (const row of rows) console.log(row)
  // the host has 2 cores: the bridged path runs 5 busy processes where plain NATS runs 3, so its rate also pays for
  // scheduling; CPU time per message is the bridges' own cost beside the publisher's and subscriber's
  console.log('\n| CPU time per message | the two bridges | plain NATS publisher + subscriber | bridge adds (target ≤ 20%) |')
  console.log('|---|---|---|---|')
  for (const row of cpuRows) console.log(row)

  const rpc = path.join(here, 'bridge-rpc.mjs')
  if (fs.existsSync(rpc)) {
    const { rpcBridgeRows } = await import(pathToFileURL(rpc).href)
    if (typeof rpcBridgeRows === 'function') {
      const rpcRows = await rpcBridgeRows(nats, { runs })
      console.log('\n| request/response round trip | size | median | p99 | vs plain NATS |')
      console.log('|---|---|---|---|---|')
      for (const r of rpcRows) {
        const size = r.size >= 1024 ? `${r.size / 1024} KiB` : `${r.size} B`
        const ratio = r.ratio === undefined ? '' : verdict(r.ratio - 1)
        console.log(`| ${r.name} | ${size} | ${r.medianUs.toFixed(0)} µs | ${r.p99Us.toFixed(0)} µs | ${ratio} |`)
      }
    }
  }
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(0)} s)`)
} finally {
  await nats.dispose()
}
