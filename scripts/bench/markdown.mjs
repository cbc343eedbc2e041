// The markdown report of `node scripts/bench.mjs --report FILE` and its SVG plots
// (written next to FILE): throughput by message size (the sweep-* rows, see
// scripts/bench/sweep.mjs), round-trip latency percentiles (the parked, spin and
// async rows) and request/response latency percentiles (the rpc-rtt row).
//
// Pure parts, tested in test/bench-report.test.mjs on fixed data:
//   throughputChart(rows, results), latencyChart(rows, results), rpcLatencyChart(rows, results)
//     → { svg, series, sentence } or null when none of the chart's rows ran
//   renderMarkdown({ text, machine, date, command, quick, plots }) → string
//   machineDescription() → { cpu, cores, ramGiB, kernel, node, line }

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { median, fmtUs, fmtRate } from './report.mjs'
import { lineChart, fmtBytes } from './plot.mjs'
import { SWEEP_SIZES, sweepId } from './sweep.mjs'

export function machineDescription() {
  const cpus = os.cpus()
  const cpu = cpus[0]?.model?.trim() || 'unknown CPU'
  const ramGiB = os.totalmem() / 2 ** 30
  const kernel = `${os.type()} ${os.release()}`
  const line = `${cpus.length}× ${cpu} (${cpus.length} logical cores), ${ramGiB.toFixed(1)} GiB RAM, ${kernel} (${os.arch()}), Node ${process.version}`
  return { cpu, cores: cpus.length, ramGiB, kernel, node: process.version, line }
}

/** Median over a system's successful runs of `key`. */
function med(results, rowId, systemId, key) {
  return median((results[rowId]?.[systemId]?.samples ?? []).map((s) => (s && Number.isFinite(s[key]) ? s[key] : NaN)))
}

const ran = (rows, ids) => rows.some((row) => ids.includes(row.id))

// colours per system, the same in every plot: shmq blue/green/teal, sockets orange, IPC red, C greys/purple
const THROUGHPUT_SERIES = [
  { system: 'shmq', label: 'shmq (tryWrite → drain)', color: '#1f77b4' },
  { system: 'ipc', label: 'process.send (child_process IPC)', color: '#d62728' },
  { system: 'unix', label: 'Unix socket (net)', color: '#ff7f0e' },
  { system: 'c', label: 'C ring (scripts/ring.c)', color: '#555555', dash: '6 3' },
]

export function throughputChart(rows, results) {
  const ids = SWEEP_SIZES.map(sweepId)
  if (!ran(rows, ids)) return null
  const series = THROUGHPUT_SERIES.map((s) => ({
    ...s,
    points: SWEEP_SIZES.map((size) => {
      const gb = med(results, sweepId(size), s.system, 'gbPerSec')
      const rate = med(results, sweepId(size), s.system, 'msgsPerSec')
      return { x: size, y: gb * 1000, msgsPerSec: rate, title: `${fmtBytes(size)}: ${(gb * 1000).toFixed(0)} MB/s, ${fmtRate(rate)} msgs/s` }
    }),
  }))
  const svg = lineChart({
    title: 'One-way throughput by message size',
    x: { scale: 'log', label: 'message size (bytes, log scale)', ticks: SWEEP_SIZES.map((v) => ({ value: v, label: fmtBytes(v) })), minor: [128, 256, 512, 2048, 4096, 8192, 32768, 131072, 524288] },
    y: { scale: 'log', label: 'throughput, MB/s of payload (1 MB = 10⁶ B, log scale)' },
    series,
  })
  return {
    svg,
    series,
    sentence:
      'One-way throughput between two processes (payload MB/s, log–log) at 64 B, 1 KiB, 16 KiB, 64 KiB, 256 KiB and 1 MiB messages, for shmq, process.send, a Unix socket and the C ring; the median of the runs of each sweep-* row.',
  }
}

const PERCENTILES = [
  { key: 'medianUs', label: 'p50' },
  { key: 'p90Us', label: 'p90' },
  { key: 'p99Us', label: 'p99' },
  { key: 'p999Us', label: 'p99.9' },
]

function percentileSeries(results, specs) {
  return specs.map((s) => ({
    ...s,
    points: PERCENTILES.map((p, i) => {
      const v = med(results, s.row, s.system, p.key)
      return { x: i, y: v, title: `${p.label} ${fmtUs(v)} µs` }
    }),
  }))
}

/** "C ring, spinning reports no p90" notes for series with some percentiles missing. */
function missingNote(series) {
  const parts = series
    .filter((s) => s.points.some((p) => Number.isFinite(p.y)))
    .map((s) => [s.label, PERCENTILES.filter((_, i) => !Number.isFinite(s.points[i].y)).map((p) => p.label)])
    .filter(([, missing]) => missing.length)
    .map(([label, missing]) => `${label}: no ${missing.join('/')}`)
  return parts.length ? ` Missing percentiles (not reported by that row): ${parts.join('; ')}.` : ''
}

const LATENCY_SERIES = [
  { row: 'spin', system: 'shmq', label: 'shmq, spinning (tryWrite/tryRead)', color: '#1f77b4' },
  { row: 'async', system: 'shmq', label: 'shmq, default (spin, then park)', color: '#17becf' },
  { row: 'parked', system: 'shmq', label: 'shmq, parked (spin: 0)', color: '#2ca02c' },
  { row: 'spin', system: 'unix', label: 'Unix socket, spinning readSync', color: '#ff7f0e', dash: '6 3' },
  { row: 'parked', system: 'unix', label: 'Unix socket, event loop', color: '#ff7f0e' },
  { row: 'parked', system: 'ipc', label: 'process.send', color: '#d62728' },
  { row: 'spin', system: 'c', label: 'C ring, spinning', color: '#555555', dash: '6 3' },
  { row: 'parked', system: 'c-futex', label: 'C ring + futex', color: '#9467bd', dash: '6 3' },
  { row: 'parked', system: 'c-eventfd', label: 'C eventfd (blocking read)', color: '#8c564b', dash: '2 3' },
]

const RPC_SERIES = [
  { row: 'rpc-rtt', system: 'shmq', label: 'shmq Server/Client (default)', color: '#17becf' },
  { row: 'rpc-rtt', system: 'shmq-parked', label: 'shmq Server/Client, spin: 0', color: '#2ca02c' },
  { row: 'rpc-rtt', system: 'unix', label: 'Unix socket (net, pipelined)', color: '#ff7f0e' },
  { row: 'rpc-rtt', system: 'http', label: 'node:http (Unix socket)', color: '#e377c2' },
  { row: 'rpc-rtt', system: 'ipc', label: 'process.send', color: '#d62728' },
]

function percentileChart(rows, results, specs, title) {
  if (!ran(rows, [...new Set(specs.map((s) => s.row))])) return null
  const series = percentileSeries(results, specs)
  const svg = lineChart({
    title,
    x: { scale: 'category', label: 'percentile of the round trips of a run (median over runs)', categories: PERCENTILES.map((p) => p.label) },
    y: { scale: 'log', label: 'round-trip time, µs (log scale)' },
    series,
  })
  return { svg, series, missing: missingNote(series) }
}

export function latencyChart(rows, results) {
  const chart = percentileChart(rows, results, LATENCY_SERIES, 'Round trip, 64 B: latency percentiles')
  if (!chart) return null
  chart.sentence =
    'Round-trip time of a 64 B ping-pong between two processes at p50, p90, p99 and p99.9 (µs, log scale), from the parked, spin and async rows: shmq spinning, default and parked, a Unix socket with and without the event loop, process.send and the C ring.' +
    chart.missing
  return chart
}

export function rpcLatencyChart(rows, results) {
  const chart = percentileChart(rows, results, RPC_SERIES, 'Request/response, 64 B, 1 outstanding: latency percentiles')
  if (!chart) return null
  chart.sentence =
    'Time of one request/response (64 B each way, one outstanding) at p50, p90, p99 and p99.9 (µs, log scale), from the rpc-rtt row: shmq Server/Client with default spin and parked, a pipelined Unix-socket protocol, node:http and process.send.' +
    chart.missing
  return chart
}

/**
 * The markdown: title, date, machine, command, the plots (relative links, a
 * sentence each), then `text`: what the bench printed (table, notes, targets).
 * plots: [{ file (relative to the report), alt, sentence }]; skipped: [sentence].
 */
export function renderMarkdown({ text, machine, date, command, quick, plots, skipped = [] }) {
  const lines = [
    '# shmq benchmarks',
    '',
    `Date: ${date.toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    `Machine: ${machine.line}.`,
    '',
    `Command: \`${command}\`${quick ? ' (QUICK mode: small counts, for development; a full run omits --quick)' : ''}. Every number is between separate processes on this machine; the notes under the table say how each row measures.`,
    '',
    '## Plots',
    '',
  ]
  for (const p of plots) lines.push(`![${p.alt}](${p.file})`, '', `${p.sentence} ([SVG](${p.file}))`, '')
  for (const s of skipped) lines.push(`- ${s}`, '')
  lines.push('## Results', '', text.trim(), '')
  return lines.join('\n')
}

/** Writes FILE and the SVGs next to it; returns the paths written. */
export function writeReport({ file, text, rows, results, quick, command, date = new Date() }) {
  const dir = path.dirname(path.resolve(file))
  fs.mkdirSync(dir, { recursive: true })
  const plots = []
  const skipped = []
  const written = []
  const charts = [
    ['bench-throughput.svg', 'Throughput by message size', throughputChart, 'Throughput by message size: not measured in this run (the sweep-* rows did not run; `--only sweep`).'],
    ['bench-latency.svg', 'Round-trip latency percentiles', latencyChart, 'Round-trip latency percentiles: not measured in this run (the parked, spin and async rows did not run).'],
    ['bench-rpc-latency.svg', 'Request/response latency percentiles', rpcLatencyChart, 'Request/response latency percentiles: not measured in this run (the rpc-rtt row did not run).'],
  ]
  for (const [name, alt, make, none] of charts) {
    const chart = make(rows, results)
    if (!chart) {
      skipped.push(none)
      continue
    }
    const svgPath = path.join(path.dirname(file), name)
    fs.writeFileSync(svgPath, chart.svg)
    written.push(svgPath)
    plots.push({ file: path.relative(dir, svgPath).split(path.sep).join('/'), alt, sentence: chart.sentence })
  }
  fs.writeFileSync(file, renderMarkdown({ text, machine: machineDescription(), date, command, quick, plots, skipped }))
  return [file, ...written]
}
