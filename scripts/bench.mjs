#!/usr/bin/env node
// `npm run bench`: shmq against what a Node user would otherwise use, measured
// side by side in one run, between real separate processes.
//
//   node scripts/bench.mjs            full run (5 interleaved runs per row, < ~2 min)
//   node scripts/bench.mjs --quick    fewer runs and smaller counts, for development
//   node scripts/bench.mjs --json out.json     also write every raw number
//   --runs N                          override the number of runs per row
//   --only tp64,tp64k,parked,spin,async,heap   run some rows only
//   --ipc json|advanced               force child_process serialization (default: the
//                                     faster one per row, measured on this machine)
//
// Systems: shmq (this package, from dist/), child_process IPC, `net` over a Unix
// socket with length prefixes, and scripts/ring.c: the same ring protocol in C
// (compiled here with cc; its rows say "n/a (no cc)" without a compiler).
// Every measurement spawns fresh processes; rows are run round-robin across
// systems (shmq, ipc, unix, C, shmq, ...) because this machine is noisy, and
// each row reports the median over runs. Ratios are medians of per-run ratios.
// The table goes to stdout; progress goes to stderr.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { execFileSync } from 'node:child_process'
import { runChildren, runProgram } from './bench/spawn.mjs'
import { median, spread, fmtRate, fmtGB, fmtUs, fmtRatio, markdownTable } from './bench/report.mjs'
import { NoiseMeter } from './bench/noise.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')

// ---- options ----

const argv = process.argv.slice(2)
function option(name) {
  const i = argv.indexOf(name)
  if (i < 0) return undefined
  const value = argv[i + 1]
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`)
  return value
}
const known = new Set(['--quick', '--json', '--runs', '--only', '--ipc'])
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) {
    console.error(`unknown argument ${argv[i]}\nusage: node scripts/bench.mjs [--quick] [--json FILE] [--runs N] [--only rows] [--ipc json|advanced]`)
    process.exit(2)
  }
  if (argv[i] !== '--quick') i++
}
const quick = argv.includes('--quick')
const jsonFile = option('--json')
const only = option('--only')?.split(',')
const ipcForced = option('--ipc')
if (ipcForced && ipcForced !== 'json' && ipcForced !== 'advanced') throw new Error('--ipc must be json or advanced')

const config = quick
  ? { runs: 2, rttRuns: 1, small: { count: 1_000_000, maxMs: 300 }, large: { count: 10_000, maxMs: 300 }, rtt: { count: 5_000, warmup: 500 }, heapCount: 2_000_000 }
  : { runs: 5, rttRuns: 5, small: { count: 5_000_000, maxMs: 1500 }, large: { count: 50_000, maxMs: 1500 }, rtt: { count: 20_000, warmup: 2_000 }, heapCount: 10_000_000 }
if (option('--runs')) {
  const runs = Number(option('--runs'))
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer')
  config.runs = config.rttRuns = runs
}
const CAPACITY = 1 << 22 // 4 MiB rings for the one-way streams, shmq and C alike
const TIMEOUT_MS = 60_000

const log = (...a) => console.error(...a)

// ---- setup: the C ring, the shmq package ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-bench-'))
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }))

let ringBinary = null
let ringUnavailable = null
try {
  const bin = path.join(tmp, 'ring')
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, path.join(here, 'ring.c')], { stdio: ['ignore', 'ignore', 'pipe'] })
  ringBinary = bin
} catch (error) {
  ringUnavailable = error.code === 'ENOENT' ? 'n/a (no cc)' : `n/a (cc failed: ${String(error.stderr ?? error.message).trim().split('\n')[0]})`
  log(`C ring: ${ringUnavailable}`)
}

let shmq = null
let shmqUnavailable = null
try {
  shmq = createRequire(import.meta.url)(path.join(root, 'dist/index.js'))
  if (typeof shmq.Producer?.create !== 'function' || typeof shmq.unlink !== 'function') throw new Error('dist/index.js lacks Producer/unlink')
} catch (error) {
  shmqUnavailable = `n/a (cannot load dist/index.js: ${error.message.split('\n')[0]})`
  log(`shmq: ${shmqUnavailable}`)
}

// other processes' CPU use, measured around every run (see bench/noise.mjs)
const noise = new NoiseMeter([`${path.join(here, 'bench')}${path.sep}`, tmp], quick ? 3_000 : 20_000)
const loadAtStart = os.loadavg()[0]

let sequence = 0
const segmentName = () => `bench-${process.pid}-${++sequence}`
const socketPath = () => path.join(tmp, `s${++sequence}.sock`)

const liveSegments = new Set()

function unlinkSegments(name) {
  for (const n of [name, `${name}-ping`, `${name}-pong`]) {
    try {
      shmq.unlink(n)
    } catch (error) {
      if (error.code !== 'ENOENT') log(`unlink ${n}: ${error.message}`)
    }
  }
}

/** Runs `body(name)` with a fresh segment name; removes name, name-ping, name-pong afterwards. */
async function withSegments(body) {
  const name = segmentName()
  liveSegments.add(name)
  try {
    return await body(name)
  } finally {
    unlinkSegments(name)
    liveSegments.delete(name)
  }
}

// Ctrl-C reaches the children too (same process group); clean up what we own and stop.
process.once('SIGINT', () => {
  for (const name of liveSegments) unlinkSegments(name)
  log('interrupted')
  process.exit(130) // runs the 'exit' handler: removes the temporary directory
})

function ipcSerialization(row) {
  return ipcForced ?? (row === 'tp64k' ? 'advanced' : 'json')
}

// ---- measurements: each returns one sample ----

function throughputSample(received, sent, seconds, size) {
  if (received !== sent) throw new Error(`sent ${sent} messages but ${received} arrived`)
  if (!(seconds > 0)) throw new Error(`bad duration ${seconds}`)
  return { msgsPerSec: received / seconds, gbPerSec: (received * size) / seconds / 1e9, count: received, seconds }
}

const work = (size) => (size >= 4096 ? 'copy' : 'touch')

function shmqThroughput(size, limits, raw) {
  return withSegments(async (name) => {
    const [consumer, producer] = await runChildren(
      [
        { file: 'shmq.mjs', role: 'tp-consumer', params: { name, size, work: work(size), raw, capacity: CAPACITY } },
        { file: 'shmq.mjs', role: 'tp-producer', params: { name, size, ...limits } },
      ],
      TIMEOUT_MS,
    )
    const sample = throughputSample(consumer.received, producer.sent, (consumer.tEnd - producer.t0) / 1e9, size)
    return { ...sample, batches: consumer.batches, emptyPolls: consumer.emptyPolls, fullSpins: producer.fullSpins }
  })
}

async function ipcThroughput(size, limits, row) {
  const serialization = ipcSerialization(row)
  const [r] = await runChildren([{ file: 'ipc.mjs', role: 'tp', params: { size, work: work(size), serialization, ...limits } }], TIMEOUT_MS)
  return { ...throughputSample(r.received, r.sent, (r.tEnd - r.t0) / 1e9, size), serialization }
}

async function unixThroughput(size, limits) {
  const p = socketPath()
  try {
    const [consumer, producer] = await runChildren(
      [
        { file: 'unix.mjs', role: 'tp-consumer', params: { path: p, size, work: work(size) }, startAfter: 'LISTENING' },
        { file: 'unix.mjs', role: 'tp-producer', params: { path: p, size, ...limits } },
      ],
      TIMEOUT_MS,
    )
    return throughputSample(consumer.received, producer.sent, (consumer.tEnd - producer.t0) / 1e9, size)
  } finally {
    fs.rmSync(p, { force: true })
  }
}

async function ringJson(args) {
  const out = await runProgram(ringBinary, args.map(String), TIMEOUT_MS)
  return JSON.parse(out.trim().split('\n').pop())
}

async function cThroughput(size, limits) {
  const r = await ringJson(['throughput', size, limits.count, CAPACITY])
  return { msgsPerSec: r.msgsPerSec, gbPerSec: r.gbPerSec, count: r.count, seconds: r.seconds }
}

function shmqRtt(mode) {
  return withSegments(async (name) => {
    const params = { name, mode, ...config.rtt }
    const [ping] = await runChildren(
      [
        { file: 'shmq.mjs', role: 'rtt-ping', params },
        { file: 'shmq.mjs', role: 'rtt-echo', params },
      ],
      TIMEOUT_MS,
    )
    return ping
  })
}

async function ipcRtt() {
  const serialization = ipcSerialization('rtt')
  const [r] = await runChildren([{ file: 'ipc.mjs', role: 'rtt', params: { serialization, ...config.rtt } }], TIMEOUT_MS)
  return { ...r, serialization }
}

async function unixRtt(spin) {
  const p = socketPath()
  try {
    const params = { path: p, spin, ...config.rtt }
    const [, ping] = await runChildren(
      [
        { file: 'unix.mjs', role: 'rtt-echo', params, startAfter: 'LISTENING' },
        { file: 'unix.mjs', role: 'rtt-ping', params },
      ],
      TIMEOUT_MS,
    )
    return ping
  } finally {
    fs.rmSync(p, { force: true })
  }
}

const cRtt = (mode) => ringJson([mode, config.rtt.count, config.rtt.warmup])

function shmqHeap() {
  return withSegments(async (name) => {
    const [consumer, producer] = await runChildren(
      [
        { file: 'shmq.mjs', role: 'heap-consumer', params: { name, size: 64, capacity: CAPACITY }, nodeArgs: ['--expose-gc'] },
        { file: 'shmq.mjs', role: 'tp-producer', params: { name, size: 64, count: config.heapCount, maxMs: TIMEOUT_MS } },
      ],
      TIMEOUT_MS * 1.5,
    )
    return { ...consumer, ...throughputSample(consumer.received, producer.sent, (consumer.tEnd - producer.t0) / 1e9, 64) }
  })
}

// ---- the plan: rows, each with its systems ----

const needShmq = shmqUnavailable
const needC = ringUnavailable
const small = config.small
const large = config.large

const rows = [
  {
    id: 'tp64',
    title: 'one-way 64 B',
    kind: 'throughput',
    runs: config.runs,
    systems: [
      { id: 'shmq', label: 'shmq (tryWrite → drain)', unavailable: needShmq, run: () => shmqThroughput(64, small, false) },
      { id: 'shmq-raw', label: 'shmq (tryWrite → drainRaw)', unavailable: needShmq, run: () => shmqThroughput(64, small, true) },
      { id: 'ipc', label: `child_process IPC (${ipcSerialization('tp64')}${ipcSerialization('tp64') === 'json' ? ', 64-char string' : ', Buffer'})`, run: () => ipcThroughput(64, small, 'tp64') },
      { id: 'unix', label: 'Unix socket (net, length-prefixed, 64 KiB batches)', run: () => unixThroughput(64, small) },
      { id: 'c', label: 'C ring (ring.c)', unavailable: needC, run: () => cThroughput(64, small) },
    ],
  },
  {
    id: 'tp64k',
    title: 'one-way 64 KiB',
    kind: 'throughput',
    runs: config.runs,
    systems: [
      { id: 'shmq', label: 'shmq (tryWrite → drain, copy out)', unavailable: needShmq, run: () => shmqThroughput(65536, large, false) },
      { id: 'shmq-raw', label: 'shmq (tryWrite → drainRaw, copy out)', unavailable: needShmq, run: () => shmqThroughput(65536, large, true) },
      { id: 'ipc', label: `child_process IPC (${ipcSerialization('tp64k')}${ipcSerialization('tp64k') === 'json' ? ', latin1 string' : ', Buffer'})`, run: () => ipcThroughput(65536, large, 'tp64k') },
      { id: 'unix', label: 'Unix socket (net, length-prefixed, copy out)', run: () => unixThroughput(65536, large) },
      { id: 'c', label: 'C ring (ring.c, memcpy out)', unavailable: needC, run: () => cThroughput(65536, large) },
    ],
  },
  {
    id: 'parked',
    title: 'round trip 64 B, peer parked',
    kind: 'rtt',
    runs: config.rttRuns,
    systems: [
      { id: 'shmq', label: 'shmq (await write/read, spin: 0)', unavailable: needShmq, run: () => shmqRtt('parked') },
      { id: 'ipc', label: `child_process IPC (${ipcSerialization('rtt')})`, run: () => ipcRtt() },
      { id: 'unix', label: 'Unix socket (net, event loop)', run: () => unixRtt(false) },
      { id: 'c-eventfd', label: 'C eventfd ping-pong (blocking read)', unavailable: needC, run: () => cRtt('rtt-eventfd') },
      { id: 'c-futex', label: 'C ring + futex wait/wake', unavailable: needC, run: () => cRtt('rtt-futex') },
    ],
  },
  {
    id: 'spin',
    title: 'round trip 64 B, spinning',
    kind: 'rtt',
    runs: config.rttRuns,
    systems: [
      { id: 'shmq', label: 'shmq (tryWrite/tryRead loops)', unavailable: needShmq, run: () => shmqRtt('spin') },
      { id: 'ipc', label: 'child_process IPC', unavailable: 'n/a (no way to poll the channel)' },
      { id: 'unix', label: 'Unix socket (fs.readSync on the O_NONBLOCK fd)', run: () => unixRtt(true) },
      { id: 'c', label: 'C ring, both spinning', unavailable: needC, run: () => cRtt('rtt-spin') },
    ],
  },
  {
    id: 'async',
    title: 'round trip 64 B, default async API',
    kind: 'rtt',
    runs: config.rttRuns,
    systems: [{ id: 'shmq', label: 'shmq (await write/read, default spin then park)', unavailable: needShmq, run: () => shmqRtt('default') }],
  },
  {
    id: 'heap',
    title: `heap, drainRaw over ${config.heapCount / 1e6} M × 64 B`,
    kind: 'heap',
    runs: 1,
    systems: [{ id: 'shmq', label: 'shmq (drainRaw consumer, --expose-gc)', unavailable: needShmq, run: () => shmqHeap() }],
  },
]
for (const id of only ?? []) {
  if (!rows.some((row) => row.id === id)) throw new Error(`--only: no row '${id}' (rows: ${rows.map((row) => row.id).join(', ')})`)
}
if (only) rows.splice(0, rows.length, ...rows.filter((row) => only.includes(row.id)))

// ---- run, interleaved ----

/**
 * Cross-core probe, taken before every run: the C ring's spinning round trip
 * (2,000 of them, a few ms). It moves 3-4x when the host re-places the two
 * vCPUs, which the guest cannot otherwise see; runs far from the row's usual
 * probe value were measured on a different machine, in effect.
 */
async function crossCoreProbe() {
  if (!ringBinary) return NaN
  try {
    return (await ringJson(['rtt-spin', 2000, 200])).medianUs
  } catch {
    return NaN
  }
}

const results = {} // row id -> system id -> { samples: [], errors: [] }
const started = Date.now()
for (const row of rows) {
  results[row.id] = {}
  for (const system of row.systems) results[row.id][system.id] = { samples: [], errors: [] }
  for (let run = 0; run < row.runs; run++) {
    for (const system of row.systems) {
      if (system.unavailable) continue
      const slot = results[row.id][system.id]
      await noise.waitForQuiet()
      const probeUs = await crossCoreProbe()
      const t = Date.now()
      const stop = noise.start()
      try {
        const sample = await system.run()
        sample.otherCores = stop()
        sample.probeUs = probeUs
        slot.samples.push(sample)
      } catch (error) {
        slot.errors.push(error.message)
        slot.samples.push(null)
        log(`  ${row.id} ${system.id} run ${run + 1}: FAILED: ${error.message}`)
      }
      const others = slot.samples.at(-1)?.otherCores
      log(
        `${row.id} run ${run + 1}/${row.runs} ${system.id}: ${describe(row, slot.samples.at(-1))} ` +
          `(${Date.now() - t} ms, others used ${Number.isFinite(others) ? others.toFixed(2) : '?'} cores, probe ${fmtUs(probeUs)} µs)`,
      )
    }
  }
}
const elapsed = (Date.now() - started) / 1000

function describe(row, s) {
  if (!s) return 'failed'
  if (row.kind === 'throughput') return `${fmtRate(s.msgsPerSec)} msgs/s, ${fmtGB(s.gbPerSec)} GB/s`
  if (row.kind === 'rtt') return `median ${fmtUs(s.medianUs)} µs, p99 ${fmtUs(s.p99Us)} µs`
  return `heap ${mb(s.heapStart)} -> ${mb(s.heapEnd)} MB, ${s.gcsDuringStream} GCs`
}

function probeNote() {
  if (!ringBinary) return 'Cross-core probe: n/a (no C ring).'
  const parts = rows.map((row) => {
    const list = row.systems.flatMap((s) => values(row.id, s.id, 'probeUs'))
    const [lo, hi] = spread(list)
    return `${row.id} ${fmtUs(median(list))}${hi > lo * 1.5 ? ` (${fmtUs(lo)}–${fmtUs(hi)})` : ''}`
  })
  const all = rows.flatMap((row) => row.systems.flatMap((s) => values(row.id, s.id, 'probeUs'))).filter(Number.isFinite)
  const m = median(all)
  const off = all.filter((x) => x > m * 1.5 || x < m / 1.5).length
  return (
    `Cross-core probe before every run (C ring spinning round trip, µs, median per row): ${parts.join(', ')}.` +
    (off
      ? ` ${off} of ${all.length} runs had a probe more than 1.5× away from the median ${fmtUs(m)} µs: the host moved the vCPUs at times, and those runs measured a different machine, in effect (--json tells which).`
      : ' Stable: one machine state for the whole run (bandwidth can still vary: the probe measures latency).')
  )
}

function timerNote() {
  const ns = median(rows.flatMap((row) => (row.kind === 'rtt' ? row.systems.flatMap((s) => values(row.id, s.id, 'timerNs')) : [])))
  return `performance.now() ≈ ${Number.isFinite(ns) ? ns.toFixed(0) : '?'} ns in the Node children, clock_gettime ≈ 20 ns in C`
}

/** Median (and max) over runs of the cores other processes used, e.g. "0.02" or "0.05 (max 1.10)". */
function fmtCores(list) {
  const m = median(list)
  if (!Number.isFinite(m)) return '?'
  const [, hi] = spread(list)
  return hi >= 0.3 && hi - m >= 0.1 ? `${m.toFixed(2)} (max ${hi.toFixed(2)})` : m.toFixed(2)
}

function mb(bytes) {
  return (bytes / 1048576).toFixed(2)
}

// ---- summarise ----

const values = (rowId, systemId, key) => (results[rowId]?.[systemId]?.samples ?? []).map((s) => (s ? s[key] : NaN))
const med = (rowId, systemId, key) => median(values(rowId, systemId, key))
/** Median over runs of a[i] / b[i]: both measured in the same round, minutes apart at most. */
function pairedRatio(rowA, sysA, rowB, sysB, key) {
  const a = values(rowA, sysA, key)
  const b = values(rowB, sysB, key)
  const r = []
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] > 0) r.push(a[i] / b[i])
  return median(r)
}

const table = []
for (const row of rows) {
  for (const system of row.systems) {
    const slot = results[row.id][system.id]
    const ok = slot.samples.filter(Boolean)
    const cells = [row.title, system.label]
    if (system.unavailable) {
      table.push([...cells, system.unavailable, '', '', '', ''])
      continue
    }
    if (ok.length === 0) {
      table.push([...cells, `error: ${slot.errors[0]?.split('\n')[0] ?? 'no result'}`, '', '', '', ''])
      continue
    }
    const failed = slot.errors.length ? ` (${slot.errors.length} failed)` : ''
    const isRef = system.id === 'shmq'
    const others = fmtCores(values(row.id, system.id, 'otherCores'))
    if (row.kind === 'throughput') {
      const rate = med(row.id, system.id, 'msgsPerSec')
      const gb = med(row.id, system.id, 'gbPerSec')
      const [lo, hi] = spread(values(row.id, system.id, row.id === 'tp64k' ? 'gbPerSec' : 'msgsPerSec'))
      const ratio = isRef ? '—' : fmtRatio(pairedRatio(row.id, 'shmq', row.id, system.id, 'msgsPerSec'))
      if (row.id === 'tp64k') table.push([...cells, `**${fmtGB(gb)} GB/s**${failed}`, `${fmtRate(rate)} msgs/s`, `${fmtGB(lo)}–${fmtGB(hi)} GB/s`, ratio, others])
      else table.push([...cells, `**${fmtRate(rate)} msgs/s**${failed}`, `${fmtGB(gb)} GB/s`, `${fmtRate(lo)}–${fmtRate(hi)}`, ratio, others])
    } else if (row.kind === 'rtt') {
      const m = med(row.id, system.id, 'medianUs')
      const p99 = med(row.id, system.id, 'p99Us')
      const [lo, hi] = spread(values(row.id, system.id, 'medianUs'))
      const ratio = isRef ? '—' : fmtRatio(pairedRatio(row.id, system.id, row.id, 'shmq', 'medianUs'))
      table.push([...cells, `**${fmtUs(m)} µs**${failed}`, `p99 ${fmtUs(p99)} µs`, `${fmtUs(lo)}–${fmtUs(hi)} µs`, ratio, others])
    } else {
      const s = ok[0]
      table.push([
        ...cells,
        `**${mb(s.heapStart)} → ${mb(s.heapEnd)} MB**`,
        `heapUsed after gc(), start → end; peak without gc ${mb(s.heapPeakNoGc)} MB; ${s.gcsDuringStream} GCs during the stream (${fmtRate(s.msgsPerSec)} msgs/s)`,
        '—',
        '—',
        others,
      ])
    }
  }
}

// ---- targets ----

const targets = []
function target(text, measured, met) {
  targets.push({ text, measured, met: met === null ? 'n/a' : met ? 'yes' : 'NO' })
}
const has = (rowId, systemId) => values(rowId, systemId, rowId.startsWith('tp') ? 'msgsPerSec' : 'medianUs').some(Number.isFinite)
if (results.tp64 && has('tp64', 'shmq')) {
  const rate = med('tp64', 'shmq', 'msgsPerSec')
  const raw = med('tp64', 'shmq-raw', 'msgsPerSec')
  target('64 B one-way ≥ 20 M msgs/s', `${fmtRate(rate)} msgs/s (drain), ${fmtRate(raw)} (drainRaw)`, rate >= 20e6)
  if (has('tp64', 'c')) {
    const ratio = pairedRatio('tp64', 'shmq', 'tp64', 'c', 'msgsPerSec')
    target('64 B one-way ≥ C ring, same run', `${fmtRatio(ratio)} of C (${fmtRate(rate)} vs ${fmtRate(med('tp64', 'c', 'msgsPerSec'))} msgs/s)`, ratio >= 1)
  } else target('64 B one-way ≥ C ring, same run', ringUnavailable ?? 'no C result', null)
}
if (results.tp64k && has('tp64k', 'shmq')) {
  const gb = med('tp64k', 'shmq', 'gbPerSec')
  target('64 KiB one-way ≥ 20 GB/s', `${fmtGB(gb)} GB/s`, gb >= 20)
}
if (results.parked && has('parked', 'shmq')) {
  const shmqMed = med('parked', 'shmq', 'medianUs')
  if (has('parked', 'unix')) {
    const r = pairedRatio('parked', 'shmq', 'parked', 'unix', 'medianUs')
    target('round trip parked ≤ 0.85× Unix socket', `${fmtRatio(r)} (${fmtUs(shmqMed)} vs ${fmtUs(med('parked', 'unix', 'medianUs'))} µs)`, r <= 0.85)
  }
  if (has('parked', 'c-eventfd')) {
    const r = pairedRatio('parked', 'shmq', 'parked', 'c-eventfd', 'medianUs')
    target('round trip parked ≤ 1.15× C eventfd', `${fmtRatio(r)} (${fmtUs(shmqMed)} vs ${fmtUs(med('parked', 'c-eventfd', 'medianUs'))} µs)`, r <= 1.15)
  } else target('round trip parked ≤ 1.15× C eventfd', ringUnavailable ?? 'no C result', null)
}
if (results.async && has('async', 'shmq')) {
  const m = med('async', 'shmq', 'medianUs')
  target('async API back-to-back round trip ≤ 1 µs median', `${fmtUs(m)} µs (p99 ${fmtUs(med('async', 'shmq', 'p99Us'))} µs)`, m <= 1)
}
if (results.spin && has('spin', 'shmq')) {
  if (has('spin', 'c')) {
    const r = pairedRatio('spin', 'shmq', 'spin', 'c', 'medianUs')
    target('spinning round trip ≤ 1.5× C ring', `${fmtRatio(r)} (${fmtUs(med('spin', 'shmq', 'medianUs'))} vs ${fmtUs(med('spin', 'c', 'medianUs'))} µs)`, r <= 1.5)
  } else target('spinning round trip ≤ 1.5× C ring', ringUnavailable ?? 'no C result', null)
}
if (results.heap && results.heap.shmq.samples[0]) {
  const s = results.heap.shmq.samples[0]
  const grew = s.heapEnd - s.heapStart
  target('heap flat under drainRaw (end − start < 1 MB after gc)', `${grew >= 0 ? '+' : ''}${(grew / 1024).toFixed(0)} KB over ${fmtRate(s.received)} msgs, ${s.gcsDuringStream} GCs`, grew < 1 << 20)
}

// ---- print ----

const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
const header = [
  `### shmq benchmark: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, node ${process.version}, ${os.cpus().length}× ${cpu}, ${os.release()}`,
  '',
  `${quick ? 'QUICK mode (small counts: development only). ' : ''}Medians of ${config.runs} runs per throughput row and ${config.rttRuns} per round-trip row, systems interleaved run by run; ` +
    `64 B streams: ${fmtRate(small.count)} messages or ${small.maxMs} ms, 64 KiB: ${fmtRate(large.count)} messages or ${large.maxMs} ms; ` +
    `round trips: ${config.rtt.count} timed after ${config.rtt.warmup} warm-up, per-iteration samples. ` +
    `"shmq ×" is how many times better shmq is (its rate ÷ this rate, or this latency ÷ shmq latency), the median of per-run ratios. ` +
    `"others’ CPU" is the cores used by processes other than the benchmark's during its runs (median; 0 = quiet machine; on 2 cores, anything near 1 means the spinning pair shared a core and the row is not trustworthy). ` +
    `Whole run: ${elapsed.toFixed(0)} s (${(noise.waitedMs / 1e3).toFixed(1)} s of it waiting for a quiet machine); load average ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end.`,
  '',
]
const out = [
  ...header,
  markdownTable(['measurement', 'system', 'median', 'detail', 'range over runs', 'shmq ×', 'others’ CPU'], table),
  '',
  'Consumers: 64 B streams read the first and last byte of each message; 64 KiB streams copy each message out (C: memcpy + a byte sum). ' +
    (ipcForced
      ? `IPC serialization forced to ${ipcForced}.`
      : 'IPC uses the faster serialization per row, measured on this machine: json with a string payload for 64 B and round trips, advanced with a Buffer for 64 KiB.') +
    ` Round-trip samples include one clock read: ${timerNote()}.`,
  '',
  probeNote(),
  '',
  'target / measured / met?',
  ...targets.map((t) => `- ${t.text} / ${t.measured} / **${t.met}**`),
]
const errors = rows.flatMap((row) => row.systems.flatMap((s) => (results[row.id][s.id].errors ?? []).map((e) => `- ${row.id} ${s.id}: ${e.split('\n').join(' ⏎ ')}`)))
if (errors.length) out.push('', 'errors:', ...errors)
console.log(out.join('\n'))

if (jsonFile) {
  const raw = {
    date: new Date().toISOString(),
    node: process.version,
    cpu,
    cpus: os.cpus().length,
    kernel: os.release(),
    quick,
    config,
    elapsedSeconds: elapsed,
    rows: rows.map((row) => ({
      id: row.id,
      title: row.title,
      kind: row.kind,
      systems: row.systems.map((s) => ({ id: s.id, label: s.label, unavailable: s.unavailable ?? null, ...results[row.id][s.id] })),
    })),
    table,
    targets,
  }
  fs.writeFileSync(jsonFile, `${JSON.stringify(raw, null, 2)}\n`)
  log(`raw numbers written to ${jsonFile}`)
}
