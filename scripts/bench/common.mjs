// Helpers shared by the benchmark children (scripts/bench/*.mjs).
//
// A child is started by scripts/bench.mjs as `node <file> <role> <json params>`.
// It talks to the orchestrator over stdio with one line per event:
//   child -> stdout  "READY"          set up and attached, waiting for the start signal
//   parent -> stdin  "GO"             start now (sent once every child of a run is ready)
//   child -> stdout  "RESULT {json}"  its measurements; then it exits on its own
// Anything else a child prints goes to stderr.

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

export function result(value) {
  process.stdout.write(`RESULT ${JSON.stringify(value)}\n`)
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
  return {
    count: n,
    medianUs: sorted[n >> 1] / 1e3,
    p99Us: sorted[Math.min(n - 1, Math.floor(n * 0.99))] / 1e3,
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

/** The message that ends a throughput stream: one byte (data messages are 64 B or larger). */
export const END_LENGTH = 1

export function fail(error) {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`)
  process.exit(1)
}
