// How much CPU the rest of the machine used while we measured.
//
// This host has two cores shared with other work; one busy process is enough
// to put a spinning producer and consumer on the same core and divide a
// throughput figure by ten. So around each measurement the orchestrator reads
// the machine's busy time (/proc/stat: every process, short-lived ones and
// kernel threads included) and subtracts what the benchmark itself used: its
// own CPU time and the CPU time every child reports with its result
// (`cpuMs`: Node's process.cpuUsage(), C's getrusage()). The rest, per second
// of wall time, is what others used, in cores: 0 = quiet, 1 = a core busy
// elsewhere. /proc/stat counts in 10 ms ticks, so runs of a few tens of ms
// read coarse. Before each measurement it also waits, within a budget, for quiet.

import fs from 'node:fs'

const TICK_MS = 10 // CLK_TCK = 100 on Linux x64
const available = fs.existsSync('/proc/stat')

/** Busy time of all CPUs so far, in ms (user + nice + system + irq + softirq + steal). */
function machineBusyMs() {
  const line = fs.readFileSync('/proc/stat', 'latin1').slice(0, 256).split('\n', 1)[0]
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number)
  return (user + nice + system + irq + softirq + steal) * TICK_MS
}

function ownCpuMs() {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

export class NoiseMeter {
  constructor(waitBudgetMs) {
    this.waitBudgetMs = waitBudgetMs
    this.waitedMs = 0
    this.childCpuMs = 0 // CPU time reported by finished children, running total
  }

  /** Adds what a finished child (or a C program and its forked peer) reported. */
  addChildCpu(ms) {
    if (Number.isFinite(ms)) this.childCpuMs += ms
  }

  /** Starts a measurement window; returns a function that ends it and gives the cores others used. */
  start() {
    if (!available) return () => NaN
    const busy0 = machineBusyMs()
    const own0 = ownCpuMs()
    const children0 = this.childCpuMs
    const t0 = performance.now()
    return () => {
      const wallMs = performance.now() - t0
      const ours = ownCpuMs() - own0 + (this.childCpuMs - children0)
      const others = machineBusyMs() - busy0 - ours
      return wallMs > 0 ? Math.max(0, others) / wallMs : NaN
    }
  }

  /** Waits up to `maxMs` (and within the run's budget) until others use < `threshold` cores over 100 ms. */
  async waitForQuiet(maxMs = 1000, threshold = 0.25) {
    if (!available) return NaN
    const deadline = performance.now() + Math.min(maxMs, this.waitBudgetMs - this.waitedMs)
    for (;;) {
      const t = performance.now()
      const stop = this.start()
      await new Promise((resolve) => setTimeout(resolve, 100))
      const busy = stop()
      this.waitedMs += performance.now() - t
      if (!(busy >= threshold) || performance.now() >= deadline) return busy
    }
  }
}
