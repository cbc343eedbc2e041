/**
 * `shmq stat NAME [--json] [--watch] [--interval MS]`: a channel's counters
 * (lib/counters.ts) and their rates per second, read from the segment with
 * pread (lib/admin.ts statSegment): it never attaches, so the stream goes on
 * undisturbed. Exit codes: 0 ok, 1 failure (no such segment, unreadable),
 * 2 usage.
 */
import { statSegment } from './admin'
import { type BridgeStatsFile, readBridgeStats } from './bridge-stats'
import type { ChannelStats } from './stats'

export const STAT_USAGE = 'shmq stat NAME [--json] [--watch] [--interval MS]   counters, rates per second and fill of one channel'

const HELP = `usage: ${STAT_USAGE}

Reads the counters every participant of channel NAME keeps in its segment
(messages and bytes written and read, full rings, parks, wake-ups, padding,
losses, redeliveries), without attaching to it. Rates are per second over
--interval (default 1000 ms; 0: counters only, no rates).
  --json            one JSON object (with --watch: one per line, each interval)
  --watch           print again every interval until interrupted; in a terminal
                    the table is redrawn in place
  --interval MS     sampling interval in milliseconds (default 1000)
With timestamps (a channel created with { timestamps: true }), the latency
from commit to read: p50, p90, p99, p99.9, max. NATS bridges running on the
channel (shmq bridge) are listed with their counters, as they wrote them at
most a second ago.
Exit codes: 0 ok, 1 the channel cannot be read (missing, another user's,
corrupt), 2 bad usage. A busy participant's counts may lag by up to 1024
messages; an idle one's are exact.`

interface StatOptions {
  name: string
  json: boolean
  watch: boolean
  interval: number
}

function parse(args: string[]): StatOptions | string {
  let name: string | undefined
  let json = false
  let watch = false
  let interval = 1000
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--json') json = true
    else if (arg === '--watch') watch = true
    else if (arg === '--interval') {
      const value = Number(args[++i])
      if (!Number.isFinite(value) || value < 0) return `--interval needs a number of milliseconds >= 0 (got ${String(args[i])})`
      interval = value
    } else if (arg.startsWith('-')) return `unknown option ${arg}`
    else if (name === undefined) name = arg
    else return `one channel name only (got '${name}' and '${arg}')`
  }
  if (name === undefined) return 'which channel? shmq stat NAME'
  if (watch && interval === 0) return '--watch needs an --interval above 0'
  return { name, json, watch, interval }
}

function formatCount(value: number): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)}G`
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`
  return String(Math.round(value))
}

function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)}GiB`
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(2)}MiB`
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)}KiB`
  return `${bytes}B`
}

function fillBar(ratio: number, width = 20): string {
  const filled = Math.round(ratio * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0)}%`
}

/** Rates per second between two samples of the same channel, or null without a previous sample. */
function rates(now: ChannelStats, before: ChannelStats | null, seconds: number): { written: number; writtenBytes: number; read: number; readBytes: number } | null {
  if (before === null || seconds <= 0) return null
  return {
    written: (now.written.messages - before.written.messages) / seconds,
    writtenBytes: (now.written.bytes - before.written.bytes) / seconds,
    read: (now.read.messages - before.read.messages) / seconds,
    readBytes: (now.read.bytes - before.read.bytes) / seconds,
  }
}

function table(name: string, stats: ChannelStats, rate: ReturnType<typeof rates>): string {
  const lines = [`${name}  ${stats.kind}  capacity ${formatBytes(stats.capacity)}  fill ${fillBar(stats.fillRatio)} (${formatBytes(stats.fill)})`]
  const rows = [['', 'MESSAGES', 'BYTES', 'MSGS/S', 'BYTES/S', 'FULL/LOST', 'PARKS', 'WAKE-UPS', 'PADDING/REDELIVERED']]
  rows.push([
    'written',
    formatCount(stats.written.messages),
    formatBytes(stats.written.bytes),
    rate === null ? '-' : formatCount(rate.written),
    rate === null ? '-' : `${formatBytes(rate.writtenBytes)}`,
    formatCount(stats.written.full),
    formatCount(stats.written.parks),
    formatCount(stats.written.wakeups),
    formatCount(stats.written.padding),
  ])
  rows.push([
    'read',
    formatCount(stats.read.messages),
    formatBytes(stats.read.bytes),
    rate === null ? '-' : formatCount(rate.read),
    rate === null ? '-' : `${formatBytes(rate.readBytes)}`,
    formatCount(stats.read.lost),
    formatCount(stats.read.parks),
    formatCount(stats.read.wakeups),
    formatCount(stats.read.redelivered),
  ])
  for (const slot of stats.slots) {
    rows.push([
      `  ${slot.role} ${slot.slot} (${slot.pid === null ? 'none' : `${slot.pid}${slot.alive ? '' : ' dead'}`})`,
      formatCount(slot.messages),
      formatBytes(slot.bytes),
      '',
      '',
      formatCount(slot.fullOrLost),
      formatCount(slot.parks),
      formatCount(slot.wakeups),
      formatCount(slot.paddingOrRedelivered),
    ])
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  for (const row of rows) lines.push(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '))
  if (stats.read.corrupt > 0 || stats.read.formatErrors > 0) lines.push(`corrupt rings refused ${stats.read.corrupt}, format errors ${stats.read.formatErrors}`)
  if (stats.latency !== null) {
    const l = stats.latency
    lines.push(
      l.count === 0
        ? 'latency (commit -> read): no message read yet'
        : `latency (commit -> read, ${formatCount(l.count)} msgs): p50 ${formatNs(l.p50)}  p90 ${formatNs(l.p90)}  p99 ${formatNs(l.p99)}  p99.9 ${formatNs(l.p999)}  max ${formatNs(l.max)}  mean ${formatNs(l.mean)}`,
    )
  }
  return lines.join('\n')
}

const number = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0)

/** One line per bridge: what it moved each way, waited, lost and how its connection went. */
function bridgeLine(bridge: BridgeStatsFile): string {
  const s = bridge.stats
  const parts = [
    `bridge ${bridge.pid}${bridge.stale ? ' (stale)' : ''} ${bridge.from} -> ${bridge.to} ${String(s.delivery ?? '')}:`,
    `in ${formatCount(number(s.messagesIn))} msgs ${formatBytes(number(s.bytesIn))}`,
    `out ${formatCount(number(s.messagesOut))} msgs ${formatBytes(number(s.bytesOut))}`,
    `batches ${formatCount(number(s.batches))}`,
    `backpressure ${formatCount(number(s.backpressureMs))} ms`,
    `reconnects ${formatCount(number(s.reconnects))}`,
    `dropped ${formatCount(number(s.dropped))}`,
  ]
  if (number(s.redeliveries) > 0) parts.push(`redelivered ${formatCount(number(s.redeliveries))}`)
  if (typeof s.error === 'string') parts.push(`error: ${s.error}`)
  return parts.join('  ')
}

/** A duration in ns as people read it: 850 ns, 12.3 µs, 4.56 ms, 1.20 s. */
export function formatNs(ns: number): string {
  if (ns < 1000) return `${Math.round(ns)} ns`
  if (ns < 1e6) return `${(ns / 1e3).toPrecision(3)} µs`
  if (ns < 1e9) return `${(ns / 1e6).toPrecision(3)} ms`
  return `${(ns / 1e9).toPrecision(3)} s`
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds))
}

export async function statCommand(args: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out.write(`${HELP}\n`)
    return 0
  }
  const options = parse(args)
  if (typeof options === 'string') {
    err.write(`shmq stat: ${options}\n${HELP}\n`)
    return 2
  }
  const read = (): ChannelStats | null => statSegment(options.name)
  let before: ChannelStats | null
  try {
    before = read()
  } catch (error) {
    err.write(`shmq stat: ${(error as Error).message}\n`)
    return 1
  }
  if (before === null) {
    err.write(`shmq stat: no shmq segment named '${options.name}' (shmq ls lists them)\n`)
    return 1
  }
  let takenAt = performance.now()
  const redraw = options.watch && !options.json && out.isTTY === true
  let drawnLines = 0
  let stopped = false
  const stop = (): void => {
    stopped = true
  }
  if (options.watch) process.once('SIGINT', stop)
  try {
    for (;;) {
      let current: ChannelStats | null = before
      let rate: ReturnType<typeof rates> = null
      if (options.interval > 0) {
        await sleep(options.interval)
        if (stopped) return 0
        try {
          current = read()
        } catch (error) {
          err.write(`shmq stat: ${(error as Error).message}\n`)
          return 1
        }
        if (current === null) {
          err.write(`shmq stat: segment '${options.name}' is gone\n`)
          return 1
        }
        const now = performance.now()
        rate = rates(current, before, (now - takenAt) / 1000)
        takenAt = now
      }
      const bridges = readBridgeStats(options.name)
      if (options.json) out.write(`${JSON.stringify({ name: options.name, ...current!, rates: rate, bridges })}\n`)
      else {
        const text = [table(options.name, current!, rate), ...bridges.map(bridgeLine)].join('\n')
        // in a terminal, move back over the last table and draw this one in its place
        if (redraw && drawnLines > 0) out.write(`\x1b[${drawnLines}A\x1b[J`)
        out.write(`${text}\n`)
        drawnLines = text.split('\n').length
      }
      if (!options.watch || stopped) return 0
      before = current
    }
  } finally {
    process.off('SIGINT', stop)
  }
}
