#!/usr/bin/env node
// `npm run bench`: shmq against what a Node user would otherwise use, measured
// side by side in one run, between real separate processes.
//
//   node scripts/bench.mjs            full run (5 interleaved runs per row, < ~2 min)
//   node scripts/bench.mjs --quick    fewer runs and smaller counts, for development
//   node scripts/bench.mjs --json out.json     also write every raw number
//   --runs N                          override the number of runs per row
//   --only tp64,tp64k,parked,spin,async,heap,mpsc1,mpsc2,bc1,bc2,wq1,wq2,rpc-rtt,rpc-tp1,rpc-tp32,format,format64,sweep   run some rows only
//                                     (sweep: sweep-64,sweep-1k,sweep-16k,sweep-64k,sweep-256k,sweep-1m)
//   --report docs/benchmarks.md       also write a markdown report (the table, the machine, the date)
//                                     and SVG plots next to it (bench-throughput.svg, bench-latency.svg,
//                                     bench-rpc-latency.svg); adds the size-sweep rows (sweep-64 ...
//                                     sweep-1m, `--only sweep` for just those): scripts/bench/markdown.mjs
//   --ipc json|advanced               force child_process serialization (default: the
//                                     faster one per row, measured on this machine)
//
// Systems: shmq (this package, from dist/), child_process IPC, `net` over a Unix
// socket with length prefixes, and scripts/ring.c: the same ring protocol in C
// (compiled here with cc; its rows say "n/a (no cc)" without a compiler).
// The MPSC rows (mpsc1, mpsc2) put 1 and 2 producer processes into one shmq
// consumer beside a Unix-socket server with as many clients.
// shmq 0.1 (layout v1) against this one: node scripts/bench/v1-compare.mjs
// (separate: it builds 0.1 from git, so it needs git and a compiler).
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
import { runChildren, runProgram, accounting } from './bench/spawn.mjs'
import { fmtUs } from './bench/report.mjs'
import { describe, render } from './bench/summary.mjs'
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
// --bridge: the NATS bridge rows only, with their own table (scripts/bench/bridge.mjs; needs nats-server)
if (argv.includes('--bridge')) {
  try {
    execFileSync(process.execPath, [path.join(here, 'bench/bridge.mjs'), ...argv.filter((a) => a !== '--bridge')], { stdio: 'inherit' })
    process.exit(0)
  } catch (error) {
    process.exit(error.status ?? 1)
  }
}
const known = new Set(['--quick', '--json', '--runs', '--only', '--ipc', '--report'])
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) {
    console.error(`unknown argument ${argv[i]}\nusage: node scripts/bench.mjs [--quick] [--json FILE] [--report FILE.md] [--runs N] [--only rows] [--ipc json|advanced]`)
    process.exit(2)
  }
  if (argv[i] !== '--quick') i++
}
const quick = argv.includes('--quick')
const jsonFile = option('--json')
const reportFile = option('--report')
const only = option('--only')?.split(',')
const ipcForced = option('--ipc')
if (ipcForced && ipcForced !== 'json' && ipcForced !== 'advanced') throw new Error('--ipc must be json or advanced')

const config = quick
  ? { runs: 2, rttRuns: 1, small: { count: 1_000_000, maxMs: 300, warmMs: 100 }, large: { count: 10_000, maxMs: 300, warmMs: 100 }, rtt: { count: 5_000, warmup: 2_000 }, heapCount: 2_000_000 }
  : { runs: 5, rttRuns: 5, small: { count: 5_000_000, maxMs: 1000, warmMs: 200 }, large: { count: 50_000, maxMs: 1000, warmMs: 200 }, rtt: { count: 20_000, warmup: 2_000 }, heapCount: 10_000_000 }
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
const noise = new NoiseMeter(quick ? 3_000 : 10_000)
accounting.onChildCpu = (ms) => noise.addChildCpu(ms)
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

/** `style`: undefined for the tuned spin loops, 'await' or 'mixed' for the patterns people write first (bench/shmq.mjs). */
function shmqThroughput(size, limits, raw, style, { timestamps = false, uncounted = false } = {}) {
  return withSegments(async (name) => {
    const [consumer, producer] = await runChildren(
      [
        { file: 'shmq.mjs', role: 'tp-consumer', params: { name, size, work: work(size), raw, style, capacity: CAPACITY, timestamps, uncounted } },
        { file: 'shmq.mjs', role: 'tp-producer', params: { name, size, style, uncounted, ...limits } },
      ],
      TIMEOUT_MS,
    )
    const sample = throughputSample(consumer.received, producer.sent, (consumer.tEnd - consumer.tMark) / 1e9, size)
    return { ...sample, batches: consumer.batches, emptyPolls: consumer.emptyPolls, fullSpins: producer.fullSpins }
  })
}

async function ipcThroughput(size, limits, serialization) {
  const [r] = await runChildren([{ file: 'ipc.mjs', role: 'tp', params: { size, work: work(size), serialization, ...limits } }], TIMEOUT_MS)
  return { ...throughputSample(r.received, r.sent, (r.tEnd - r.tMark) / 1e9, size), serialization }
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
    return throughputSample(consumer.received, producer.sent, (consumer.tEnd - consumer.tMark) / 1e9, size)
  } finally {
    fs.rmSync(p, { force: true })
  }
}

async function ringJson(args, timeoutMs = TIMEOUT_MS) {
  const out = await runProgram(ringBinary, args.map(String), timeoutMs)
  const r = JSON.parse(out.trim().split('\n').pop())
  noise.addChildCpu(r.cpuMs)
  return r
}

async function cThroughput(size, limits) {
  const r = await ringJson(['throughput', size, limits.count, CAPACITY, limits.maxMs, limits.warmMs])
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
        { file: 'shmq.mjs', role: 'tp-producer', params: { name, size: 64, count: config.heapCount, maxMs: TIMEOUT_MS, warmMs: 0 } },
      ],
      TIMEOUT_MS * 1.5,
    )
    return { ...consumer, ...throughputSample(consumer.received, producer.sent, (consumer.tEnd - consumer.tMark) / 1e9, 64) }
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
      { id: 'shmq-await', label: 'shmq (await write → for await)', unavailable: needShmq, run: () => shmqThroughput(64, small, false, 'await') },
      { id: 'shmq-mixed', label: 'shmq (tryWrite, else await write → drain, else await read)', unavailable: needShmq, run: () => shmqThroughput(64, small, false, 'mixed') },
      // what observability costs: the first row without per-message counting, and with timestamps
      { id: 'shmq-uncounted', label: 'shmq (tryWrite → drain), counters off (control)', unavailable: needShmq, run: () => shmqThroughput(64, small, false, undefined, { uncounted: true }) },
      { id: 'shmq-stamped', label: 'shmq (tryWrite → drain), timestamps: true', unavailable: needShmq, run: () => shmqThroughput(64, small, false, undefined, { timestamps: true }) },
      { id: 'ipc', label: `child_process IPC (${ipcSerialization('tp64')}${ipcSerialization('tp64') === 'json' ? ', 64-char string' : ', Buffer'})`, run: () => ipcThroughput(64, small, ipcSerialization('tp64')) },
      { id: 'unix', label: 'Unix socket (net, length-prefixed, 64 KiB batches)', run: () => unixThroughput(64, small) },
      { id: 'c', label: 'C ring (ring.c)', unavailable: needC, run: () => cThroughput(64, small) },
    ],
  },
  {
    // Note: every 64 KiB copy here except the kernel's goes through glibc memmove. glibc 2.36
    // on this AMD EPYC picks `rep movsb` for it, which copies lines the other core just wrote
    // at ~11 GB/s most runs (~35 GB/s in some); GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4000000
    // makes C and shmq alike run at ~35-40 GB/s. The header shows GLIBC_TUNABLES when set.
    id: 'tp64k',
    title: 'one-way 64 KiB',
    kind: 'throughput',
    runs: config.runs,
    systems: [
      { id: 'shmq', label: 'shmq (tryWrite → drain, copy out)', unavailable: needShmq, run: () => shmqThroughput(65536, large, false) },
      { id: 'shmq-raw', label: 'shmq (tryWrite → drainRaw, copy out)', unavailable: needShmq, run: () => shmqThroughput(65536, large, true) },
      { id: 'ipc', label: `child_process IPC (${ipcSerialization('tp64k')}${ipcSerialization('tp64k') === 'json' ? ', latin1 string' : ', Buffer'})`, run: () => ipcThroughput(65536, large, ipcSerialization('tp64k')) },
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
// the MPSC rows: 1 and 2 producer processes, beside SPSC and a Unix-socket server with as many clients (scripts/bench/mpsc.mjs)
const mpsc = await import('./bench/mpsc.mjs')
rows.push(
  ...mpsc.mpscRows({ config, withSegments, runChildren, socketPath, rmSocket: (p) => fs.rmSync(p, { force: true }), shmqThroughput, needShmq, CAPACITY, TIMEOUT_MS }),
)
// the broadcast rows: 1 publisher to 1 and 2 subscriber processes, beside Unix-socket and IPC fan-out (scripts/bench/broadcast.mjs)
const broadcast = await import('./bench/broadcast.mjs')
rows.push(...broadcast.broadcastRows({ config, withSegments, runChildren, socketPath, rmSocket: (p) => fs.rmSync(p, { force: true }), needShmq, CAPACITY, TIMEOUT_MS }))
// the work-queue rows: 1 producer to 1 and 2 worker processes, beside a Unix-socket dispatcher (scripts/bench/work-queue.mjs)
const workQueue = await import('./bench/work-queue.mjs')
rows.push(...workQueue.workQueueRows({ config, withSegments, runChildren, socketPath, rmSocket: (p) => fs.rmSync(p, { force: true }), needShmq, CAPACITY, TIMEOUT_MS }))
// the request/response rows: 1 client process, 1 and 32 outstanding, beside a Unix-socket protocol, node:http and IPC (scripts/bench/rpc.mjs)
const rpc = await import('./bench/rpc.mjs')
rows.push(...rpc.rpcRows({ config, quick, runChildren, socketPath, rmSocket: (p) => fs.rmSync(p, { force: true }), needShmq, TIMEOUT_MS }))
// the message format's rows (scripts/bench/format.mjs)
const format = await import('./bench/format.mjs')
rows.push(...format.formatRows({ config, withSegments, runChildren, throughputSample, cThroughput, shmqThroughput, needShmq, needC, CAPACITY, TIMEOUT_MS }))
// the size sweep (scripts/bench/sweep.mjs): for --report, or when --only names it
const sweep = await import('./bench/sweep.mjs')
const sweepRows = sweep.sweepRows({
  quick,
  runsOverride: option('--runs') ? config.runs : undefined,
  ipcSerialization: (size) => ipcForced ?? (size >= 4096 ? 'advanced' : 'json'),
  shmqThroughput,
  ipcThroughput,
  unixThroughput,
  cThroughput,
  needShmq,
  needC,
})
if (only?.includes('sweep')) only.splice(only.indexOf('sweep'), 1, ...sweepRows.map((row) => row.id))
if (reportFile || only) rows.push(...sweepRows)
for (const id of only ?? []) {
  if (!rows.some((row) => row.id === id)) throw new Error(`--only: no row '${id}' (rows: ${rows.map((row) => row.id).join(', ')}, sweep)`)
}
if (only) rows.splice(0, rows.length, ...rows.filter((row) => only.includes(row.id)))

// ---- run, interleaved ----

/**
 * Cross-core probe, taken before every run: the C ring's spinning round trip
 * (1,000 of them, about a millisecond). It moves 3-4x when the host re-places
 * the two vCPUs, which the guest cannot otherwise see; runs far from the row's
 * usual probe value were measured on a different machine, in effect. When the
 * two spinners must share a core each round trip costs a scheduler slice, so
 * the probe gives up after 500 ms and reads Infinity.
 */
async function crossCoreProbe() {
  if (!ringBinary) return NaN
  try {
    return (await ringJson(['rtt-spin', 1000, 100], 500)).medianUs
  } catch (error) {
    if (/timed out|SIGKILL|killed/i.test(error.message)) return Infinity
    log(`  cross-core probe failed: ${error.message}`)
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
          `(${Date.now() - t} ms, others used ${Number.isFinite(others) ? others.toFixed(2) : '?'} cores, probe ${probeUs === Infinity ? 'timed out: the pair shared a core' : `${fmtUs(probeUs)} µs`})`,
      )
    }
  }
}
const elapsed = (Date.now() - started) / 1000

const report = render({ rows, results, config, quick, elapsed, waitedMs: noise.waitedMs, loadAtStart, ringBinary, shmqUnavailable, ringUnavailable, ipcForced })
const printed = [report.text, format.formatTargets(results), rpc.rpcTargets(results)]
if (rows.some((row) => sweep.isSweepRow(row.id))) {
  const s = sweep.sweepConfig(quick, option('--runs') ? config.runs : undefined)
  printed.push(`Size sweep (sweep-* rows): one-way, ${s.warmMs} ms of warm-up then ${s.maxMs} ms per point, ${s.runs} run${s.runs > 1 ? 's' : ''} per point; consumers touch 2 bytes below 4 KiB and copy each message out from 4 KiB up (C always copies); IPC: json string below 4 KiB, advanced Buffer from 4 KiB.`)
}
for (const text of printed) console.log(text)

if (reportFile) {
  const { writeReport } = await import('./bench/markdown.mjs')
  const written = writeReport({ file: reportFile, text: printed.join('\n'), rows, results, quick, command: `node scripts/bench.mjs ${argv.join(' ')}` })
  log(`report written to ${written.join(', ')}`)
}

if (jsonFile) {
  const raw = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: report.cpu,
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
    table: report.table,
    targets: report.targets,
  }
  fs.writeFileSync(jsonFile, `${JSON.stringify(raw, null, 2)}\n`)
  log(`raw numbers written to ${jsonFile}`)
}
