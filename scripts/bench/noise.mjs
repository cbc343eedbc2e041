// How much CPU the rest of the machine used while we measured.
//
// This host has two cores shared with other work; one busy process is enough
// to put a spinning producer and consumer on the same core and divide a
// throughput figure by ten. So the orchestrator snapshots every process's CPU
// time (/proc/PID/stat, kernel threads included) before and after each
// measurement, and reports what processes other than the benchmark's used, in
// cores (0 = quiet, 1 = one core busy elsewhere). Processes that start and end
// inside one measurement are missed; ticks are 10 ms, so short runs read coarse.
// Before each measurement it also waits (briefly, within a budget) for quiet.

import fs from 'node:fs'

const TICKS_PER_SECOND = 100 // CLK_TCK on Linux x64
const available = fs.existsSync('/proc/self/stat')

function readStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state): utime = field 14, stime = 15, starttime = 22
    return { cpu: Number(fields[11]) + Number(fields[12]), start: fields[19] }
  } catch {
    return null // exited meanwhile
  }
}

function isOurs(pid, markers) {
  if (pid === process.pid) return true
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1')
    return markers.some((m) => cmdline.includes(m))
  } catch {
    return true
  }
}

/** CPU ticks of every process but ours, keyed by pid and start time. */
function snapshot(markers) {
  const map = new Map()
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || isOurs(pid, markers)) continue
    const stat = readStat(pid)
    if (stat) map.set(`${pid}:${stat.start}`, stat.cpu)
  }
  return map
}

export class NoiseMeter {
  /** `markers`: strings, one of which is in the command line of every benchmark process. */
  constructor(markers, waitBudgetMs) {
    this.markers = markers
    this.waitBudgetMs = waitBudgetMs
    this.waitedMs = 0
  }

  /** Starts a measurement window; returns a function that ends it and gives cores used elsewhere. */
  start() {
    if (!available) return () => NaN
    const before = snapshot(this.markers)
    const t0 = performance.now()
    return () => {
      const seconds = (performance.now() - t0) / 1e3
      const after = snapshot(this.markers)
      let ticks = 0
      for (const [key, cpu] of after) ticks += cpu - (before.get(key) ?? 0)
      return seconds > 0 ? ticks / TICKS_PER_SECOND / seconds : NaN
    }
  }

  /** Waits up to `maxMs` (and within the run's budget) until others use < `threshold` cores over 50 ms. */
  async waitForQuiet(maxMs = 1000, threshold = 0.25) {
    if (!available) return
    const deadline = performance.now() + Math.min(maxMs, this.waitBudgetMs - this.waitedMs)
    for (;;) {
      const t = performance.now()
      const stop = this.start()
      await new Promise((resolve) => setTimeout(resolve, 50))
      const busy = stop()
      this.waitedMs += performance.now() - t
      if (!(busy >= threshold) || performance.now() >= deadline) return busy
    }
  }
}
