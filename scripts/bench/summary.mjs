// The markdown printed by scripts/bench.mjs (and the summary in its --json file),
// computed from the runs: medians per row, paired ratios, targets, notes.

import os from 'node:os'
import { median, spread, fmtRate, fmtGB, fmtUs, fmtRatio, markdownTable } from './report.mjs'

function mb(bytes) {
  return (bytes / 1048576).toFixed(2)
}

/** One run's result in a progress line. */
export function describe(row, s) {
  if (!s) return 'failed'
  if (row.kind === 'throughput') return `${fmtRate(s.msgsPerSec)} msgs/s, ${fmtGB(s.gbPerSec)} GB/s`
  if (row.kind === 'rtt') return `median ${fmtUs(s.medianUs)} µs, p99 ${fmtUs(s.p99Us)} µs`
  return `heap ${mb(s.heapStart)} -> ${mb(s.heapEnd)} MB, ${s.gcsDuringStream} GCs`
}

/**
 * Builds the report. `ctx`: rows (the plan), results (row id -> system id ->
 * { samples, errors }), config, quick, elapsed (s), waitedMs, loadAtStart,
 * ringBinary, shmqUnavailable, ipcForced.
 * Returns { text, table, targets, cpu }.
 */
export function render(ctx) {
  const { rows, results, config, quick, elapsed, waitedMs, loadAtStart, ringBinary, shmqUnavailable, ringUnavailable, ipcForced } = ctx
  const small = config.small
  const large = config.large

  function probeNote() {
    if (!ringBinary) return 'Cross-core probe: n/a (no C ring).'
    const parts = rows.map((row) => {
      const list = row.systems.flatMap((s) => values(row.id, s.id, 'probeUs'))
      const [lo, hi] = spread(list)
      return `${row.id} ${fmtUs(median(list))}${hi > lo * 1.5 ? ` (${fmtUs(lo)}–${fmtUs(hi)})` : ''}`
    })
    const all = rows.flatMap((row) => row.systems.flatMap((s) => values(row.id, s.id, 'probeUs'))).filter((x) => !Number.isNaN(x))
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
        const inGB = row.id === 'tp64k' || row.primary === 'gb' // large messages: GB/s first
        const [lo, hi] = spread(values(row.id, system.id, inGB ? 'gbPerSec' : 'msgsPerSec'))
        const ratio = isRef ? '—' : fmtRatio(pairedRatio(row.id, 'shmq', row.id, system.id, 'msgsPerSec'))
        if (inGB) table.push([...cells, `**${fmtGB(gb)} GB/s**${failed}`, `${fmtRate(rate)} msgs/s`, `${fmtGB(lo)}–${fmtGB(hi)} GB/s`, ratio, others])
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
  /** A ratio for a target line: 3 decimals, so that 1.503× does not read as 1.50× and "NO". */
  const exact = (x) => (Number.isFinite(x) ? `${x.toFixed(3)}×` : '—')

  function target(text, measured, met) {
    targets.push({ text, measured, met: met === null ? 'n/a' : met ? 'yes' : 'NO' })
  }
  const kindOf = (rowId) => rows.find((row) => row.id === rowId)?.kind
  const has = (rowId, systemId) => values(rowId, systemId, kindOf(rowId) === 'throughput' ? 'msgsPerSec' : 'medianUs').some(Number.isFinite)
  if (results.tp64 && has('tp64', 'shmq')) {
    const rate = med('tp64', 'shmq', 'msgsPerSec')
    const raw = med('tp64', 'shmq-raw', 'msgsPerSec')
    target('64 B one-way ≥ 20 M msgs/s', `${fmtRate(rate)} msgs/s (drain), ${fmtRate(raw)} (drainRaw)`, rate >= 20e6)
    if (has('tp64', 'c')) {
      const ratio = pairedRatio('tp64', 'shmq', 'tp64', 'c', 'msgsPerSec')
      target('64 B one-way ≥ C ring, same run', `${exact(ratio)} of C (${fmtRate(rate)} vs ${fmtRate(med('tp64', 'c', 'msgsPerSec'))} msgs/s)`, ratio >= 1)
    } else target('64 B one-way ≥ C ring, same run', ringUnavailable ?? 'no C result', null)
  }
  if (results.tp64 && has('tp64', 'shmq-await')) {
    const rate = med('tp64', 'shmq-await', 'msgsPerSec')
    target('64 B await write → for await ≥ 10 M msgs/s', `${fmtRate(rate)} msgs/s`, rate >= 10e6)
  }
  if (results.tp64 && has('tp64', 'shmq-mixed') && has('tp64', 'shmq')) {
    const ratio = pairedRatio('tp64', 'shmq-mixed', 'tp64', 'shmq', 'msgsPerSec')
    target('64 B tryWrite|write → drain|read ≥ 0.8× the tuned row', `${exact(ratio)} (${fmtRate(med('tp64', 'shmq-mixed', 'msgsPerSec'))} vs ${fmtRate(med('tp64', 'shmq', 'msgsPerSec'))} msgs/s)`, ratio >= 0.8)
  }
  if (results.tp64 && has('tp64', 'shmq-uncounted') && has('tp64', 'shmq')) {
    // paired by round: the same moment of a noisy host
    const ratio = pairedRatio('tp64', 'shmq', 'tp64', 'shmq-uncounted', 'msgsPerSec')
    target('64 B counters cost ≤ 5% (counted ÷ counters off ≥ 0.95)', `${exact(ratio)} (${fmtRate(med('tp64', 'shmq', 'msgsPerSec'))} vs ${fmtRate(med('tp64', 'shmq-uncounted', 'msgsPerSec'))} msgs/s)`, ratio >= 0.95)
  }
  if (results.tp64 && has('tp64', 'shmq-stamped') && has('tp64', 'shmq')) {
    const ratio = pairedRatio('tp64', 'shmq-stamped', 'tp64', 'shmq', 'msgsPerSec')
    target('(shown, no target) 64 B with timestamps ÷ without', `${exact(ratio)} (${fmtRate(med('tp64', 'shmq-stamped', 'msgsPerSec'))} msgs/s)`, null)
  }
  if (results.tp64k && has('tp64k', 'shmq')) {
    const gb = med('tp64k', 'shmq', 'gbPerSec')
    target('64 KiB one-way ≥ 20 GB/s', `${fmtGB(gb)} GB/s`, gb >= 20)
  }
  if (results.mpsc1 && has('mpsc1', 'shmq')) {
    if (has('mpsc1', 'spsc')) {
      const r = pairedRatio('mpsc1', 'shmq', 'mpsc1', 'spsc', 'msgsPerSec')
      target('MPSC 64 B, 1 producer ≥ 0.8× SPSC (tryWrite → drainRaw), same rounds', `${exact(r)} (${fmtRate(med('mpsc1', 'shmq', 'msgsPerSec'))} vs ${fmtRate(med('mpsc1', 'spsc', 'msgsPerSec'))} msgs/s)`, r >= 0.8)
    }
    if (has('mpsc1', 'shmq-await') && has('mpsc1', 'spsc')) {
      const r = pairedRatio('mpsc1', 'shmq-await', 'mpsc1', 'spsc', 'msgsPerSec')
      target('(shown, no target) MPSC 64 B, 1 producer, await write per message ÷ SPSC', `${exact(r)} (${fmtRate(med('mpsc1', 'shmq-await', 'msgsPerSec'))} msgs/s)`, null)
    }
    if (has('mpsc1', 'unix')) {
      const r = pairedRatio('mpsc1', 'shmq', 'mpsc1', 'unix', 'msgsPerSec')
      target('(shown, no target) MPSC 64 B, 1 producer ÷ Unix-socket server with 1 client', `${exact(r)} (${fmtRate(med('mpsc1', 'unix', 'msgsPerSec'))} msgs/s for the socket)`, null)
    }
  }
  if (results.mpsc2 && has('mpsc2', 'shmq') && has('mpsc2', 'unix')) {
    const r = pairedRatio('mpsc2', 'shmq', 'mpsc2', 'unix', 'msgsPerSec')
    target('MPSC 64 B, 2 producers ≥ 3× a Unix-socket server with 2 clients', `${exact(r)} (${fmtRate(med('mpsc2', 'shmq', 'msgsPerSec'))} vs ${fmtRate(med('mpsc2', 'unix', 'msgsPerSec'))} msgs/s)`, r >= 3)
    if (results.mpsc1 && has('mpsc1', 'shmq')) {
      const scale = med('mpsc2', 'shmq', 'msgsPerSec') / med('mpsc1', 'shmq', 'msgsPerSec')
      target('(shown, no target) MPSC 2 producers ÷ 1 producer (medians; 3 processes share 2 cores)', exact(scale), null)
    }
  }
  for (const row of ['bc1', 'bc2']) {
    if (!results[row] || !has(row, 'shmq')) continue
    const n = row === 'bc1' ? 1 : 2
    const rate = med(row, 'shmq', 'msgsPerSec')
    for (const [system, what] of [['unix', 'the Unix-socket fan-out (64 KiB batches to each socket)'], ['unix-each', 'a Unix-socket server writing each message to each socket'], ['ipc', 'process.send to each child']]) {
      if (!has(row, system)) continue
      const r = pairedRatio(row, 'shmq', row, system, 'msgsPerSec')
      const named = n === 2 && system === 'unix-each'
      target(
        `${named ? '' : '(shown, no target) '}broadcast 64 B to ${n} subscriber${n > 1 ? 's' : ''}${named ? ' ≥ 5×' : ' ÷'} ${what}`,
        `${exact(r)} (${fmtRate(rate)} msgs/s to each, ${fmtRate(rate * n)} deliveries/s, vs ${fmtRate(med(row, system, 'msgsPerSec'))})`,
        named ? r >= 5 : null,
      )
    }
  }
  if (results.bc2 && has('bc2', 'shmq') && has('bc2', 'unix')) {
    const r = pairedRatio('bc2', 'shmq', 'bc2', 'unix', 'msgsPerSec')
    target('broadcast 64 B to 2 subscribers ≥ 5× the batched Unix-socket fan-out (the stricter reading)', exact(r), r >= 5)
  }
  for (const row of ['wq1', 'wq2']) {
    if (!results[row] || !has(row, 'shmq') || !has(row, 'unix')) continue
    const r = pairedRatio(row, 'shmq', row, 'unix', 'msgsPerSec')
    const named = row === 'wq2'
    target(
      `${named ? '' : '(shown, no target) '}work queue 64 B, ${row === 'wq1' ? '1 worker' : '2 workers'}${named ? ' ≥ 3×' : ' ÷'} the Unix-socket dispatcher`,
      `${exact(r)} (${fmtRate(med(row, 'shmq', 'msgsPerSec'))} vs ${fmtRate(med(row, 'unix', 'msgsPerSec'))} msgs/s)`,
      named ? r >= 3 : null,
    )
  }
  if (results.parked && has('parked', 'shmq')) {
    const shmqMed = med('parked', 'shmq', 'medianUs')
    if (has('parked', 'unix')) {
      const r = pairedRatio('parked', 'shmq', 'parked', 'unix', 'medianUs')
      target('round trip parked ≤ 0.85× Unix socket', `${exact(r)} (${fmtUs(shmqMed)} vs ${fmtUs(med('parked', 'unix', 'medianUs'))} µs)`, r <= 0.85)
    }
    if (has('parked', 'c-eventfd')) {
      const r = pairedRatio('parked', 'shmq', 'parked', 'c-eventfd', 'medianUs')
      target('round trip parked ≤ 1.15× C eventfd', `${exact(r)} (${fmtUs(shmqMed)} vs ${fmtUs(med('parked', 'c-eventfd', 'medianUs'))} µs)`, r <= 1.15)
    } else target('round trip parked ≤ 1.15× C eventfd', ringUnavailable ?? 'no C result', null)
  }
  if (results.async && has('async', 'shmq')) {
    const m = med('async', 'shmq', 'medianUs')
    target('async API back-to-back round trip ≤ 1 µs median', `${fmtUs(m)} µs (p99 ${fmtUs(med('async', 'shmq', 'p99Us'))} µs)`, m <= 1)
  }
  if (results.spin && has('spin', 'shmq')) {
    if (has('spin', 'c')) {
      const r = pairedRatio('spin', 'shmq', 'spin', 'c', 'medianUs')
      target('spinning round trip ≤ 1.5× C ring', `${exact(r)} (${fmtUs(med('spin', 'shmq', 'medianUs'))} vs ${fmtUs(med('spin', 'c', 'medianUs'))} µs)`, r <= 1.5)
    } else target('spinning round trip ≤ 1.5× C ring', ringUnavailable ?? 'no C result', null)
  }
  if (results.heap && results.heap.shmq.samples[0]) {
    const s = results.heap.shmq.samples[0]
    const grew = s.heapEnd - s.heapStart
    target('heap flat under drainRaw (end − start < 1 MB after gc)', `${grew >= 0 ? '+' : ''}${(grew / 1024).toFixed(0)} KB over ${fmtRate(s.received)} msgs, ${s.gcsDuringStream} GCs`, grew < 1 << 20)
  }

  if (shmqUnavailable) target('every shmq target', shmqUnavailable, null)

  // ---- print ----

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const header = [
    `### shmq benchmark: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, node ${process.version}, ${os.cpus().length}× ${cpu}, ${os.release()}` +
      (process.env.GLIBC_TUNABLES ? `, GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}` : ''),
    '',
    `${quick ? 'QUICK mode (small counts: development only). ' : ''}Medians of ${config.runs} runs per throughput row and ${config.rttRuns} per round-trip row, systems interleaved run by run; ` +
      `streams: ${small.warmMs} ms of warm-up (not counted), then 64 B: ${fmtRate(small.count)} messages or ${small.maxMs} ms, 64 KiB: ${fmtRate(large.count)} messages or ${large.maxMs} ms; ` +
      `round trips: ${config.rtt.count} timed after ${config.rtt.warmup} warm-up, per-iteration samples. ` +
      `"shmq ×" is how many times better shmq is (its rate ÷ this rate, or this latency ÷ shmq latency), the median of per-run ratios. ` +
      `"others’ CPU" is the cores used by processes other than the benchmark's during its runs (median; 0 = quiet machine; on 2 cores, anything near 1 means the spinning pair shared a core and the row is not trustworthy). ` +
      `Whole run: ${elapsed.toFixed(0)} s (${(waitedMs / 1e3).toFixed(1)} s of it waiting for a quiet machine); load average ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end.`,
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
      (rows.some((row) => row.kind === 'rtt') ? ` Round-trip samples include one clock read: ${timerNote()}.` : '') +
      (rows.some((row) => row.id.startsWith('mpsc'))
        ? ' MPSC rows: each producer (or socket client) is counted after its own warm-up mark, and the total over the first mark to the last end; with 2 producers a producer that finds the ring full parks (await write, spin 0) and the consumer waits in await read when a drainRaw finds nothing, so no more than 2 processes spin on the 2 cores.'
        : ''),
    '',
    probeNote(),
    '',
    'target / measured / met?',
    ...targets.map((t) => `- ${t.text} / ${t.measured} / **${t.met}**`),
    '',
    'shmq 0.1 (layout v1) against this layout, SPSC rows interleaved: node scripts/bench/v1-compare.mjs (builds 0.1 from git: needs git and a compiler; not part of this run).',
  ]
  const errors = rows.flatMap((row) => row.systems.flatMap((s) => (results[row.id][s.id].errors ?? []).map((e) => `- ${row.id} ${s.id}: ${e.split('\n').join(' ⏎ ')}`)))
  if (errors.length) out.push('', 'errors:', ...errors)

  return { text: out.join('\n'), table, targets, cpu }
}
