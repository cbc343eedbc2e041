#!/usr/bin/env node
/**
 * The `shmq` command: housekeeping of shared-memory segments.
 *   shmq ls [--json] [--prefix P]        list shmq segments in /dev/shm with their state
 *   shmq gc [--dry-run] [--prefix P]     remove segments no live process is attached to
 *   shmq bench [--quick] [--json FILE] ...  run scripts/bench.mjs (git checkouts only) with a progress bar
 * Neither maps a segment nor waits for one: headers are read with pread, and a
 * file that cannot be read now (another user's, a file lease) is reported and skipped.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import * as path from 'node:path'
import { collectGarbage, listSegments, type PeerReport, type SegmentReport } from './admin'
import { CODEGEN_USAGE, codegenCommand } from './format/codegen-c'
import { STAT_USAGE, statCommand } from './stat-command'
import { TAIL_USAGE, tailCommand } from './tail-command'

function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)}G`
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)}M`
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)}K`
  return `${bytes}B`
}

function formatPeer(peer: PeerReport | null): string {
  return peer === null ? '-' : `${peer.pid} (${peer.alive ? 'alive' : 'dead'})`
}

/** SPSC: the producer; MPSC: how many of its slots are taken and how many of those live, then the first. */
function formatProducers(report: SegmentReport): string {
  // a work queue's roster runs as an MPSC ring whose consumer is the queue's producer
  if (report.kind === 'work queue') return formatPeer(report.consumer)
  if (report.kind !== 'mpsc' && report.kind !== 'server') return formatPeer(report.producer)
  const alive = report.producers.filter((producer) => producer.alive).length
  const first = report.producer === null ? '' : ` ${formatPeer(report.producer)}`
  // a server's listener: its producers are the clients, its consumer the server
  return `${report.producers.length}/${report.maxProducers}${report.kind === 'server' ? ' clients' : ''} (${alive} alive)${first}`
}

/** Queues: the consumer; broadcast and work queues: how many subscriber (worker) slots are taken and how many of those live. */
function formatConsumers(report: SegmentReport): string {
  if (report.kind === 'work queue') {
    // the roster's producer slots are the workers
    const alive = report.producers.filter((worker) => worker.alive).length
    return `${report.producers.length}/${report.maxProducers} workers (${alive} alive)`
  }
  if (report.kind !== 'broadcast') return formatPeer(report.consumer)
  const alive = report.subscribers.filter((subscriber) => subscriber.alive).length
  return `${report.subscribers.length}/${report.maxSubscribers} subscribers (${alive} alive)`
}

/** `5s`, `3m`, `2h`, `4d` (whole units, rounded down); `-` when unknown. */
export function formatAge(ms: number | null): string {
  if (ms === null) return '-'
  const seconds = Math.floor(ms / 1000)
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86400)}d`
}

function formatMode(mode: number | null): string {
  return mode === null ? '-' : mode.toString(8).padStart(4, '0')
}

function table(reports: SegmentReport[]): string {
  const rows = [['NAME', 'KIND', 'SIZE', 'FILL', 'PRODUCER', 'CONSUMER', 'AGE', 'UID', 'MODE', 'STATE']]
  for (const report of reports) {
    const fill = report.capacity > 0 ? `${formatBytes(report.fill)} (${Math.round((report.fill / report.capacity) * 100)}%)` : '-'
    const state = report.kind === 'unreadable' ? report.error ?? 'unreadable' : report.kind === 'initialising' ? 'not initialised' : report.ended ? 'ended' : 'open'
    rows.push([
      report.name,
      report.kind,
      formatBytes(report.size),
      fill,
      formatProducers(report),
      formatConsumers(report),
      formatAge(report.ageMs),
      report.uid === null ? '-' : String(report.uid),
      formatMode(report.mode),
      state,
    ])
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')).join('\n')
}

const EXIT_CODES = `exit codes: 0 ok, 1 failure, 2 usage error`

const LS_USAGE = 'shmq ls [--json] [--prefix P]      list shmq segments in /dev/shm (names starting with P)'
const GC_USAGE = 'shmq gc [--dry-run] [--json] [--prefix P]  remove segments no live process is attached to'
const BENCH_USAGE = 'shmq bench [--quick] [--json FILE] [--only ROWS] [--runs N] [--report FILE.md] [--ipc json|advanced]  run the benchmark (git checkouts only)'

const USAGE = `usage: ${LS_USAGE}
       ${GC_USAGE}
       ${BENCH_USAGE}
       ${STAT_USAGE}
       ${TAIL_USAGE}
       ${CODEGEN_USAGE}
       shmq bridge --from shm:NAME --to nats://HOST:PORT/SUBJECT [--delivery at-most-once|at-least-once] ...  (shmq bridge --help)
       shmq COMMAND --help                 help on one command
${EXIT_CODES}`

const LS_HELP = `usage: ${LS_USAGE}

Lists every shmq segment with its kind, size, fill, producer(s) and
consumer(s) (pid, alive or dead), age, owner uid and mode. Never maps a
segment: headers are read with pread; a file that cannot be read now is
listed as unreadable.
  --json        the reports as JSON (fields: name, kind, size, capacity, fill,
                producer(s), consumer, subscribers, ended, uid, mode, createdAt
                (ms since the epoch), ageMs)
  --prefix P    only segments whose name starts with P
${EXIT_CODES}`

const GC_HELP = `usage: ${GC_USAGE}

Removes the shmq segments no live process is attached to (with any unread
messages), segments whose creator died before initialising them, and wake-up
FIFOs whose segment is gone. Never touches a segment with a live peer, nor
files that are not shmq's; what this user may not remove is reported.
  --dry-run     report what would be removed, remove nothing
  --json        the result as JSON ({ removed, orphanFifos, staleBridgeFiles, skipped })
  --prefix P    only segments (and FIFOs) whose name starts with P
${EXIT_CODES}`

const BENCH_HELP = `usage: ${BENCH_USAGE}

Runs scripts/bench.mjs (shmq against child_process IPC, Unix sockets and a C
ring, between real processes) with the same arguments; a progress bar on
stderr while it runs, the table on stdout at the end. The benchmark ships
with the git repository, not with the npm package.
  --quick       fewer runs and smaller counts
  --json FILE   also write every raw number to FILE
  --only ROWS   run some rows only (comma-separated, e.g. tp64,heap)
exit codes: the benchmark's (0 ok, 1 failure, 2 usage error)`

const HELP_FLAGS = ['--help', '-h']

function usageError(message: string, usage: string): number {
  process.stderr.write(`shmq: ${message}\n${usage}\n`)
  return 2
}

function main(argv: string[]): number {
  const [command, ...rest] = argv
  if (command === 'codegen') return codegenCommand(rest)
  if (command === undefined || HELP_FLAGS.includes(command) || command === 'help') {
    // `shmq` alone is a usage error; `shmq --help` asks for it
    if (command === undefined) return usageError('no command', USAGE)
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  if (command !== 'ls' && command !== 'gc') return usageError(`unknown command '${command}'`, USAGE)
  const help = command === 'ls' ? LS_HELP : GC_HELP
  if (rest.some((flag) => HELP_FLAGS.includes(flag))) {
    process.stdout.write(`${help}\n`)
    return 0
  }
  let prefix = ''
  const flags: string[] = []
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--prefix') {
      if (i + 1 >= rest.length) return usageError('--prefix needs a value', help)
      prefix = rest[++i]!
    } else flags.push(rest[i]!)
  }
  const known = command === 'ls' ? ['--json'] : ['--json', '--dry-run']
  const unknown = flags.filter((flag) => !known.includes(flag))
  if (unknown.length > 0) return usageError(`unknown argument${unknown.length > 1 ? 's' : ''} ${unknown.join(' ')}`, help)
  if (command === 'ls') {
    const reports = listSegments(prefix)
    process.stdout.write(flags.includes('--json') ? `${JSON.stringify(reports, null, 2)}\n` : reports.length > 0 ? `${table(reports)}\n` : 'no shmq segments\n')
    return 0
  }
  const dryRun = flags.includes('--dry-run')
  const result = collectGarbage({ dryRun, prefix })
  if (flags.includes('--json')) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    return 0
  }
  const verb = dryRun ? 'would remove' : 'removed'
  for (const report of result.removed) process.stdout.write(`${verb} ${report.name} (${formatBytes(report.size)}, ${formatBytes(report.fill)} unread)\n`)
  for (const fifo of result.orphanFifos) process.stdout.write(`${verb} orphan FIFO ${fifo}\n`)
  for (const file of result.staleBridgeFiles) process.stdout.write(`${verb} stats file of a dead bridge ${file}\n`)
  for (const { name, error } of result.skipped) process.stdout.write(`${dryRun ? 'would skip' : 'skipped'} ${name}: ${error}\n`)
  if (result.removed.length === 0 && result.orphanFifos.length === 0 && result.staleBridgeFiles.length === 0 && result.skipped.length === 0) process.stdout.write('nothing to remove\n')
  return 0
}

/** A progress line of scripts/bench.mjs: `ROW run R/N SYSTEM: RESULT (T ms, ...)`. */
const PROGRESS_LINE = /^(\S+) run (\d+)\/(\d+) (\S+): (.*)$/

/**
 * Turns scripts/bench.mjs's stderr into a progress bar. The benchmark prints one
 * line per measurement (a row, a run of it, a system) and nothing up front
 * about how many there are: the bar counts rows (known from --only, else
 * unknown) and, within a row, runs and the systems seen in its first run.
 * On a TTY the bar is one line redrawn with \r (other lines: failures, notes,
 * printed above it); elsewhere each progress line is passed on as it is.
 */
class BenchProgress {
  private row = ''
  private rowsDone = 0
  private systems: string[] = []
  private systemsKnown = false
  private pending = ''
  private barShown = false
  private readonly started = Date.now()

  constructor(
    private readonly tty: boolean,
    private readonly totalRows: number | null,
  ) {}

  write(chunk: string): void {
    this.pending += chunk
    let newline
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      this.line(this.pending.slice(0, newline))
      this.pending = this.pending.slice(newline + 1)
    }
  }

  end(): void {
    if (this.pending !== '') this.line(this.pending)
    this.pending = ''
    this.clear()
  }

  private clear(): void {
    if (this.tty && this.barShown) process.stderr.write('\r\x1b[K')
    this.barShown = false
  }

  private line(text: string): void {
    const match = PROGRESS_LINE.exec(text)
    if (match === null || !this.tty) {
      this.clear()
      process.stderr.write(`${text}\n`)
      if (match === null) return
    }
    const [, row, runText, runsText, system] = match
    const run = Number(runText)
    const runs = Number(runsText)
    if (row !== this.row) {
      if (this.row !== '') this.rowsDone++
      this.row = row!
      this.systems = []
      this.systemsKnown = false
    }
    if (run === 1 && !this.systemsKnown) this.systems.push(system!)
    else this.systemsKnown = true
    if (!this.tty) return
    // the fraction of this row done: whole runs, then this run's systems once their number is known
    const index = Math.max(0, this.systems.indexOf(system!))
    const rowFraction = this.systemsKnown ? (run - 1 + (index + 1) / this.systems.length) / runs : (run - 1) / runs
    const total = this.totalRows
    const fraction = total === null ? rowFraction : Math.min(1, (this.rowsDone + rowFraction) / total)
    const width = 24
    const filled = Math.round(fraction * width)
    const elapsed = Math.round((Date.now() - this.started) / 1000)
    const rows = total === null ? `row ${this.rowsDone + 1}` : `row ${this.rowsDone + 1}/${total}`
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(fraction * 100)}% ${rows} ${row} run ${run}/${runs} ${system} ${elapsed}s`
    const columns = process.stderr.columns ?? 80
    process.stderr.write(`\r\x1b[K${bar.length >= columns ? bar.slice(0, columns - 1) : bar}`)
    this.barShown = true
  }
}

/** How many rows `--only` names (sweep is six), or null when it is absent. */
function onlyRows(args: string[]): number | null {
  const i = args.indexOf('--only')
  if (i < 0 || i + 1 >= args.length) return null
  return args[i + 1]!.split(',').reduce((count, id) => count + (id === 'sweep' ? 6 : 1), 0)
}

/** `shmq bench ...`: scripts/bench.mjs as a child, with the same arguments; resolves to its exit code. */
function benchCommand(args: string[]): Promise<number> {
  if (args.some((flag) => HELP_FLAGS.includes(flag))) {
    process.stdout.write(`${BENCH_HELP}\n`)
    return Promise.resolve(0)
  }
  const script = path.join(__dirname, '..', 'scripts', 'bench.mjs')
  if (!existsSync(script)) {
    process.stderr.write(
      `shmq bench: ${script} is not there: the benchmark ships with the git repository, not with the npm package; run it from a checkout:\n` +
        `  git clone <the shmq git repository> shmq && cd shmq && npm install && npm run bench\n`,
    )
    return Promise.resolve(1)
  }
  const progress = new BenchProgress(process.stderr.isTTY === true, onlyRows(args))
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'inherit', 'pipe'] })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => progress.write(chunk))
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal)
    const onInt = forward('SIGINT')
    const onTerm = forward('SIGTERM')
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
    child.on('error', (error) => {
      progress.end()
      process.stderr.write(`shmq bench: ${error.message}\n`)
      resolve(1)
    })
    child.on('close', (code, signal) => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      progress.end()
      if (signal !== null) process.stderr.write(`shmq bench: the benchmark was killed by ${signal}\n`)
      resolve(code ?? 1)
    })
  })
}

const bridgeArgs = process.argv[2] === 'bridge' ? process.argv.slice(3) : null
if (process.argv[2] === 'bench') {
  benchCommand(process.argv.slice(3)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`shmq: ${(error as Error).message}\n`)
      process.exitCode = 1
    },
  )
} else if (process.argv[2] === 'stat' || process.argv[2] === 'tail') {
  ;(process.argv[2] === 'stat' ? statCommand : tailCommand)(process.argv.slice(3)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`shmq: ${(error as Error).message}\n`)
      process.exitCode = 1
    },
  )
} else if (bridgeArgs !== null) {
  // loaded only for this command (docs/BRIDGE.md)
  ;(require('./bridge/cli') as typeof import('./bridge/cli')).bridgeCommand(bridgeArgs).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`shmq: ${(error as Error).message}\n`)
      process.exitCode = 1
    },
  )
} else try {
  process.exitCode = main(process.argv.slice(2))
} catch (error) {
  process.stderr.write(`shmq: ${(error as Error).message}\n`)
  process.exitCode = 1
}
