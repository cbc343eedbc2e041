#!/usr/bin/env node
// `npm run bench -- --bridge`: one-way throughput over loopback: shmq alone, shmq → bridge → NATS → bridge → shmq
// (at-most-once), and plain NATS publish/subscribe between two Node processes with the same client. Needs nats-server.
import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MISSING, natsServerPath, startNats } from '../../test/bridge/nats-server.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { Consumer, unlink } = require('../../dist/index.js')
if (natsServerPath() === null) {
  console.error(MISSING)
  process.exit(1)
}
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 3
const child = (args) => {
  const c = fork(path.join(here, 'bridge-child.cjs'), args)
  c.result = new Promise((resolve, reject) => {
    c.on('message', (m) => (m.ready ? c.emit('ready') : resolve(m)))
    c.on('exit', (code) => code !== 0 && reject(new Error(`${args[0]} exited ${code}`)))
  })
  c.ready = new Promise((resolve) => c.once('ready', resolve))
  return c
}
const children = new Set()
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')))
const track = (c) => (children.add(c), c)

async function shmqAlone(size, count) {
  const name = `bench-bridge-${process.pid}`
  Consumer.create(name, { capacity: 1 << 22 }).close()
  const consumer = track(child(['consume', name, '', String(size), String(count)]))
  await consumer.ready
  track(child(['produce', name, '', String(size), String(count)]))
  const { ms } = await consumer.result
  unlink(name)
  return (count / ms) * 1000
}

async function bridged(nats, size, count) {
  const [a, b] = [`bench-bridge-a-${process.pid}`, `bench-bridge-b-${process.pid}`]
  Consumer.create(a, { capacity: 1 << 22 }).close()
  Consumer.create(b, { capacity: 1 << 22 }).close()
  const subject = `bench.${process.pid}`
  const inbound = track(fork(path.join(here, '../../test/fixtures/bridge-run.cjs'), [JSON.stringify({ from: `${nats.url}/${subject}`, to: `shm:${b}`, maxInFlightMessages: 1 << 20, maxInFlightBytes: 1 << 30 })]))
  await new Promise((resolve) => inbound.once('message', resolve))
  const consumer = track(child(['consume', b, '', String(size), String(count)]))
  await consumer.ready
  const outbound = track(fork(path.join(here, '../../test/fixtures/bridge-run.cjs'), [JSON.stringify({ from: `shm:${a}`, to: `${nats.url}/${subject}` })]))
  await new Promise((resolve) => outbound.once('message', resolve))
  track(child(['produce', a, '', String(size), String(count)]))
  const { ms, received } = await consumer.result
  for (const c of [inbound, outbound]) c.kill('SIGTERM')
  unlink(a)
  unlink(b)
  return received === count ? (count / ms) * 1000 : NaN
}

async function plainNats(nats, size, count) {
  const subject = `plain.${process.pid}`
  const sub = track(child(['nats-sub', `127.0.0.1:${nats.port}`, subject, String(size), String(count)]))
  await sub.ready
  track(child(['nats-pub', `127.0.0.1:${nats.port}`, subject, String(size), String(count)]))
  const { ms } = await sub.result
  return (count / ms) * 1000
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const nats = await startNats()
try {
  const rows = []
  for (const [label, size, count] of [['64 B', 64, 200_000], ['64 KiB', 65536, 5_000]]) {
    const results = { shmq: [], bridge: [], nats: [] }
    for (let run = 0; run < runs; run++) {
      results.shmq.push(await shmqAlone(size, count * 5))
      results.nats.push(await plainNats(nats, size, count))
      results.bridge.push(await bridged(nats, size, count))
    }
    const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
    rows.push(`| one-way ${label} | ${(m.shmq / 1e6).toFixed(2)} M msgs/s | ${(m.bridge / 1e3).toFixed(1)} k msgs/s | ${(m.nats / 1e3).toFixed(1)} k msgs/s | ${((m.nats / m.bridge - 1) * 100).toFixed(0)}% |`)
  }
  console.log('| | shmq alone | shmq → bridge → NATS → bridge → shmq | plain NATS pub/sub | bridge cost over plain NATS |')
  console.log('|---|---|---|---|---|')
  for (const row of rows) console.log(row)
} finally {
  await nats.dispose()
}
