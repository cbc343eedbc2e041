// Helpers shared by the benchmark children (scripts/bench/*.mjs).
//
// A child is started by scripts/bench.mjs as `node <file> <role> <json params>`.
// It talks to the orchestrator over stdio with one line per event:
//   child -> stdout  "READY"          set up and attached, waiting for the start signal
//   parent -> stdin  "GO"             start now (sent once every child of a run is ready)
//   child -> stdout  "RESULT {json}"  its measurements; then it exits on its own
// A server child may first print another line (unix.mjs: "LISTENING") that the
// orchestrator waits for before it starts the client. Diagnostics go to stderr.

import { performance } from 'node:perf_hooks'

/** The role and parameters given on the command line. */
export function args() {
  const role = process.argv[2]
  const params = JSON.parse(process.argv[3] ?? '{}')
  return { role, params }
}

/** Tells the orchestrator we are ready, then waits for its GO line. */
export function barrier() {
  process.stdout.write('READY\n')
  return new Promise((resolve, reject) => {
    let seen = ''
    const onData = (chunk) => {
      seen += chunk
      if (!seen.includes('GO')) return
      process.stdin.off('data', onData)
      process.stdin.pause()
      process.stdin.destroy() // nothing else keeps the event loop alive
      resolve()
    }
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', onData)
    process.stdin.once('end', () => reject(new Error('orchestrator closed stdin before GO')))
  })
}

/** Prints the RESULT line, with this process's CPU time (plus `peerCpuMs`, a forked peer's) as cpuMs. */
export function result(value) {
  const { user, system } = process.cpuUsage()
  const cpuMs = (user + system) / 1000 + (value.peerCpuMs ?? 0)
  process.stdout.write(`RESULT ${JSON.stringify({ ...value, cpuMs })}\n`)
}

/** CPU time of this process so far, in ms (for a forked peer to report to its driver). */
export function cpuMs() {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/** Monotonic clock in nanoseconds, as a Number (same clock in every process). */
export function nowNs() {
  return Number(process.hrtime.bigint())
}

/** performance.now() in nanoseconds: cheap enough to call around every round trip. */
export function perfNs() {
  return performance.now() * 1e6
}

/** What one perfNs() call adds to a sample (median of back-to-back reads), in ns. */
export function timerCost() {
  const d = new Float64Array(2001)
  let last = perfNs()
  for (let i = 0; i < d.length; i++) {
    const t = perfNs()
    d[i] = t - last
    last = t
  }
  return d.sort()[d.length >> 1]
}

/** Median, p99, min and mean of round-trip samples in nanoseconds, reported in µs. */
export function summarize(samples) {
  const sorted = Float64Array.from(samples).sort()
  const n = sorted.length
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]
  const at = (q) => sorted[Math.min(n - 1, Math.floor(n * q))] / 1e3
  let slow = 0
  for (let i = 0; i < n; i++) if (sorted[i] > 10_000) slow++
  return {
    count: n,
    medianUs: sorted[n >> 1] / 1e3,
    p90Us: at(0.9),
    p99Us: at(0.99),
    p999Us: at(0.999),
    maxUs: sorted[n - 1] / 1e3,
    over10UsShare: slow / n,
    minUs: sorted[0] / 1e3,
    meanUs: sum / n / 1e3,
    timerNs: timerCost(),
  }
}

/** A payload of `size` bytes with a recognisable pattern. */
export function payload(size) {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = i & 0xff
  return bytes
}

// Throughput streams carry two control messages, told apart from data (64 B or
// larger) by their length: MARK ends the warm-up (the JIT has tiered up, the
// buffers are faulted in), END ends the stream. The rate is counted from MARK to END.
/**
 * Sends up to `limit` messages, `chunk` at a time through `sendChunk(n)` (which
 * may return a promise), stopping at the first chunk boundary past `deadline`
 * (a nowNs() time). Returns how many it sent.
 */
export async function streamChunks(sendChunk, chunk, limit, deadline) {
  let sent = 0
  while (sent < limit) {
    const n = Math.min(chunk, limit - sent)
    await sendChunk(n)
    sent += n
    if (nowNs() >= deadline) break
  }
  return sent
}

export const END_LENGTH = 1
export const MARK_LENGTH = 2
export const CONTROL_MAX = 3

/** The consumer's count of a stream: data messages after MARK, and the clock at MARK and END. */
export class Tally {
  constructor() {
    this.received = 0
    this.tMark = 0
    this.tEnd = 0
    this.done = false
  }

  /** For a message shorter than CONTROL_MAX + 1 bytes. */
  control(length) {
    if (length === MARK_LENGTH) {
      this.tMark = nowNs()
      this.received = 0
    } else {
      this.tEnd = nowNs()
      this.done = true
    }
  }

  report(extra) {
    if (this.tMark === 0) throw new Error('stream ended without its warm-up mark')
    return { received: this.received, tMark: this.tMark, tEnd: this.tEnd, ...extra }
  }
}

export function fail(error) {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`)
  process.exit(1)
}
