#!/usr/bin/env node
// shmq 0.1 (layout v1: 32-bit positions, 1024-byte header) against this
// checkout (layout v2), SPSC one-way streams between two processes, run
// interleaved: v1, v2, v1, v2, ... so that both see the same machine.
//
//   node scripts/bench/v1-compare.mjs            5 rounds per row (about a minute)
//   node scripts/bench/v1-compare.mjs --runs N   N rounds
//   node scripts/bench/v1-compare.mjs --quick    2 rounds, short streams (development)
//
// 0.1 is built from git commit c65786f (the last layout v1 commit) in a
// temporary worktree at /tmp/shmq-v1: node_modules linked from this checkout,
// tsc, then the addon with node-gyp. The worktree is removed from git once
// built, but its build (dist/, build/Release/shmq.node, package.json) stays in
// /tmp/shmq-v1 and is reused by later runs. The builds run under
// flock /tmp/shmq-cpu.lock unless this process already holds that lock (a run
// started as `flock /tmp/shmq-cpu.lock node scripts/bench/v1-compare.mjs`).
// This checkout's dist/ is used as it is (npm run build:ts first).
//
// Rows: 64 B tryWrite → drain (the tuned row of npm run bench), 64 B tryWrite →
// drainRaw, 64 KiB tryWrite → drain with a copy out. Both versions run the same
// child (this file, roles below) with the dist path passed in.
//
// Run as a child: node scripts/bench/v1-compare.mjs <role> <json params>
//   tp-consumer  loads params.dist, creates params.name, drain() or drainRaw()
//                (params.raw) until the end message
//   tp-producer  loads params.dist, opens params.name, tryWrite() in a loop,
//                retrying while full (warm-up, mark, count or maxMs, end)

import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { execFileSync } from 'node:child_process'
import { args, barrier, result, nowNs, payload, streamChunks, Tally, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'

const self = fileURLToPath(import.meta.url)
const require = createRequire(import.meta.url)

// ---- children ----

async function tpConsumer(params) {
  const { Consumer } = require(path.join(params.dist, 'index.js'))
  const c = Consumer.create(params.name, { capacity: params.capacity, maxMessage: params.size })
  const tally = new Tally()
  const out = new Uint8Array(params.size)
  let sum = 0
  const copy = params.work === 'copy'
  const view = copy
    ? (message) => {
        if (message.length <= CONTROL_MAX) return tally.control(message.length)
        out.set(message)
        tally.received++
      }
    : (message) => {
        if (message.length <= CONTROL_MAX) return tally.control(message.length)
        sum += message[0] + message[message.length - 1]
        tally.received++
      }
  const raw = (bytes, offset, length) => {
    if (length <= CONTROL_MAX) return tally.control(length)
    sum += bytes[offset] + bytes[offset + length - 1]
    tally.received++
  }
  try {
    await barrier()
    if (params.raw) while (!tally.done) c.drainRaw(raw)
    else while (!tally.done) c.drain(view)
  } finally {
    c.close()
  }
  result(tally.report({ sum: sum + out[0] }))
}

async function tpProducer(params) {
  const { Producer } = require(path.join(params.dist, 'index.js'))
  const p = Producer.open(params.name, { timeout: 5000 })
  const message = payload(params.size)
  const chunk = Math.max(16, Math.min(4096, Math.floor((4 << 20) / params.size)))
  const write = (bytes) => {
    while (!p.tryWrite(bytes)); // full: retry at once
  }
  const writeChunk = (n) => {
    for (let i = 0; i < n; i++) write(message)
  }
  let sent
  try {
    await barrier()
    await streamChunks(writeChunk, chunk, Infinity, nowNs() + params.warmMs * 1e6)
    write(new Uint8Array(MARK_LENGTH))
    sent = await streamChunks(writeChunk, chunk, params.count, nowNs() + params.maxMs * 1e6)
    write(new Uint8Array(END_LENGTH))
  } finally {
    p.close()
  }
  result({ sent })
}

// ---- building 0.1 ----

const V1_COMMIT = 'c65786f'
const V1_DIR = '/tmp/shmq-v1'
const CPU_LOCK = '/tmp/shmq-cpu.lock'

function parentPid(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return 0
  }
}

/** Whether this process or one of its ancestors holds the flock on CPU_LOCK (/proc/locks names the holder's pid). */
function holdsCpuLock() {
  let st
  try {
    st = fs.statSync(CPU_LOCK)
  } catch {
    return false
  }
  const device = `${((st.dev >> 8) & 0xfff).toString(16).padStart(2, '0')}:${((st.dev & 0xff) | ((st.dev >> 12) & 0xfff00)).toString(16).padStart(2, '0')}:${st.ino}`
  const holders = new Set()
  for (const line of fs.readFileSync('/proc/locks', 'latin1').split('\n')) {
    const f = line.trim().split(/\s+/) // "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"; waiters have "->" second
    if (f[1] === 'FLOCK' && f[5] === device) holders.add(Number(f[4]))
  }
  for (let pid = process.pid; pid > 1; pid = parentPid(pid)) if (holders.has(pid)) return true
  return false
}

function run(command, argv, cwd, locked) {
  const [file, list] = locked ? ['flock', [CPU_LOCK, command, ...argv]] : [command, argv]
  console.error(`  ${cwd}$ ${locked ? `flock ${CPU_LOCK} ` : ''}${command} ${argv.join(' ')}`)
  const env = { ...process.env }
  // node-gyp uses this machine's Node headers rather than downloading them (as .ci/run does)
  if (!env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr'
  execFileSync(file, list, { cwd, env, stdio: ['ignore', 2, 2] }) // build output to stderr: stdout is the table
}

function git(root, argv) {
  return execFileSync('git', ['-C', root, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

function v1Built() {
  return fs.existsSync(path.join(V1_DIR, 'build/Release/shmq.node')) && fs.existsSync(path.join(V1_DIR, 'dist/index.js'))
}

/** Builds 0.1 into V1_DIR unless a build is there; returns its dist path. */
function ensureV1(root) {
  if (v1Built()) {
    console.error(`shmq 0.1: using the build cached in ${V1_DIR}`)
    return path.join(V1_DIR, 'dist')
  }
  const lock = !holdsCpuLock()
  console.error(`shmq 0.1: building ${V1_COMMIT} in a worktree at ${V1_DIR}`)
  fs.rmSync(V1_DIR, { recursive: true, force: true }) // an incomplete build of an earlier run
  git(root, ['worktree', 'prune'])
  const keep = fs.mkdtempSync('/tmp/shmq-v1-build-')
  try {
    git(root, ['worktree', 'add', '--detach', V1_DIR, V1_COMMIT])
    try {
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(V1_DIR, 'node_modules'))
      run('npx', ['tsc', '-p', 'tsconfig.json'], V1_DIR, lock)
      // node-gyp as npm bundles it (npx would fetch its own): the package's build:native script is `node-gyp rebuild`
      run('npm', ['run', '--silent', 'build:native'], V1_DIR, lock)
      for (const item of ['dist', 'build/Release/shmq.node', 'package.json']) fs.cpSync(path.join(V1_DIR, item), path.join(keep, item), { recursive: true })
    } finally {
      git(root, ['worktree', 'remove', '--force', V1_DIR])
    }
    // the build, without the checkout, where the next run looks for it
    fs.cpSync(keep, V1_DIR, { recursive: true })
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(V1_DIR, 'node_modules'))
  } finally {
    fs.rmSync(keep, { recursive: true, force: true })
  }
  if (!v1Built()) throw new Error(`the build of ${V1_COMMIT} left no ${V1_DIR}/build/Release/shmq.node or dist/`)
  return path.join(V1_DIR, 'dist')
}

// ---- the comparison ----

async function main() {
  const { runChildren, accounting } = await import('./spawn.mjs')
  const { median, spread, fmtRate, fmtGB, fmtRatio, markdownTable } = await import('./report.mjs')
  const { NoiseMeter } = await import('./noise.mjs')
  const os = await import('node:os')

  const argv = process.argv.slice(2)
  const quick = argv.includes('--quick')
  const runsAt = argv.indexOf('--runs')
  const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : quick ? 2 : 5
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer')
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') i++
    else if (argv[i] !== '--quick') throw new Error(`unknown argument ${argv[i]}\nusage: node scripts/bench/v1-compare.mjs [--quick] [--runs N]`)
  }
  const small = quick ? { count: 1_000_000, maxMs: 300, warmMs: 100 } : { count: 5_000_000, maxMs: 1000, warmMs: 200 }
  const large = quick ? { count: 10_000, maxMs: 300, warmMs: 100 } : { count: 50_000, maxMs: 1000, warmMs: 200 }
  const CAPACITY = 1 << 22

  const root = path.resolve(path.dirname(self), '../..')
  const versions = [
    { id: 'v1', label: `0.1 (layout v1, ${V1_COMMIT})`, dist: ensureV1(root) },
    { id: 'v2', label: `this checkout (layout v2, ${git(root, ['rev-parse', '--short', 'HEAD'])}${git(root, ['status', '--porcelain', '--', 'lib']) ? ', lib/ modified' : ''})`, dist: path.join(root, 'dist') },
  ]
  for (const v of versions) v.shmq = require(path.join(v.dist, 'index.js')) // for unlink(), and a load check before any run

  const rows = [
    { id: 'tp64', title: 'one-way 64 B, tryWrite → drain', size: 64, raw: false, limits: small },
    { id: 'tp64-raw', title: 'one-way 64 B, tryWrite → drainRaw', size: 64, raw: true, limits: small },
    { id: 'tp64k', title: 'one-way 64 KiB, tryWrite → drain, copy out', size: 65536, raw: false, limits: large },
  ]

  const noise = new NoiseMeter(quick ? 3_000 : 10_000)
  accounting.onChildCpu = (ms) => noise.addChildCpu(ms)
  let sequence = 0
  const once = async (row, version) => {
    const name = `v1cmp-${process.pid}-${++sequence}`
    try {
      const common = { dist: version.dist, name, size: row.size }
      const [consumer, producer] = await runChildren(
        [
          { file: 'v1-compare.mjs', role: 'tp-consumer', params: { ...common, raw: row.raw, work: row.size >= 4096 ? 'copy' : 'touch', capacity: CAPACITY } },
          { file: 'v1-compare.mjs', role: 'tp-producer', params: { ...common, ...row.limits } },
        ],
        60_000,
      )
      if (consumer.received !== producer.sent) throw new Error(`sent ${producer.sent} messages but ${consumer.received} arrived`)
      const seconds = (consumer.tEnd - consumer.tMark) / 1e9
      return { msgsPerSec: consumer.received / seconds, gbPerSec: (consumer.received * row.size) / seconds / 1e9 }
    } finally {
      try {
        version.shmq.unlink(name)
      } catch (error) {
        if (error.code !== 'ENOENT') console.error(`unlink ${name}: ${error.message}`)
      }
    }
  }

  const samples = {} // row id -> version id -> [sample | null]
  for (const row of rows) samples[row.id] = { v1: [], v2: [] }
  const started = Date.now()
  for (let round = 0; round < runs; round++) {
    for (const row of rows) {
      for (const version of versions) {
        await noise.waitForQuiet()
        const stop = noise.start()
        let sample = null
        try {
          sample = await once(row, version)
          sample.otherCores = stop()
        } catch (error) {
          console.error(`  ${row.id} ${version.id} round ${round + 1}: FAILED: ${error.message}`)
        }
        samples[row.id][version.id].push(sample)
        console.error(`${row.id} round ${round + 1}/${runs} ${version.id}: ${sample ? `${fmtRate(sample.msgsPerSec)} msgs/s, ${fmtGB(sample.gbPerSec)} GB/s, others used ${sample.otherCores.toFixed(2)} cores` : 'failed'}`)
      }
    }
  }

  const values = (rowId, v, key) => samples[rowId][v].map((s) => (s ? s[key] : NaN))
  const table = []
  for (const row of rows) {
    const key = row.size >= 4096 ? 'gbPerSec' : 'msgsPerSec'
    const fmt = (x) => (key === 'gbPerSec' ? `${fmtGB(x)} GB/s` : `${fmtRate(x)} msgs/s`)
    const cell = (v) => {
      const list = values(row.id, v, key)
      const [lo, hi] = spread(list)
      const failed = list.filter((x) => !Number.isFinite(x)).length
      return [`**${fmt(median(list))}**${failed ? ` (${failed} failed)` : ''}`, `${fmt(lo).replace(/ .*/, '')}–${fmt(hi)}`]
    }
    const a = values(row.id, 'v1', key)
    const b = values(row.id, 'v2', key)
    const ratios = a.map((x, i) => b[i] / x).filter(Number.isFinite)
    const others = [...values(row.id, 'v1', 'otherCores'), ...values(row.id, 'v2', 'otherCores')]
    const [v1Median, v1Range] = cell('v1')
    const [v2Median, v2Range] = cell('v2')
    const [rlo, rhi] = spread(ratios)
    table.push([row.title, v1Median, v1Range, v2Median, v2Range, `**${fmtRatio(median(ratios))}**`, `${fmtRatio(rlo)}–${fmtRatio(rhi)}`, median(others).toFixed(2)])
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  console.log(
    [
      `### shmq SPSC, 0.1 (layout v1) against layout v2: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, node ${process.version}, ${os.cpus().length}× ${cpu}`,
      '',
      `${quick ? 'QUICK mode (development only). ' : ''}${runs} rounds, each running every row for v1 then v2 (fresh processes every run, 4 MiB rings); ` +
        `streams: ${small.warmMs} ms of warm-up, then 64 B: ${fmtRate(small.count)} messages or ${small.maxMs} ms, 64 KiB: ${fmtRate(large.count)} messages or ${large.maxMs} ms. ` +
        `v2/v1 is the median of per-round ratios (above 1: v2 is faster). "others’ CPU": cores used by other processes during the runs (median). Whole run: ${((Date.now() - started) / 1000).toFixed(0)} s.`,
      `v1: ${versions[0].label}, from ${versions[0].dist}; v2: ${versions[1].label}, from ${versions[1].dist}.`,
      '',
      markdownTable(['measurement', 'v1 median', 'v1 range', 'v2 median', 'v2 range', 'v2/v1', 'v2/v1 range', 'others’ CPU'], table),
    ].join('\n'),
  )
}

if (process.argv[1] === self) {
  const roles = { 'tp-consumer': tpConsumer, 'tp-producer': tpProducer }
  const role = process.argv[2]
  if (roles[role]) roles[role](args().params).catch(fail)
  else main().catch(fail)
}
