#!/usr/bin/env node
/**
 * The `shmq` command: housekeeping of shared-memory segments.
 *   shmq ls [--json] [--prefix P]        list shmq segments in /dev/shm with their state
 *   shmq gc [--dry-run] [--prefix P]     remove segments no live process is attached to
 * Neither maps a segment nor waits for one: headers are read with pread, and a
 * file that cannot be read now (another user's, a file lease) is reported and skipped.
 */
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

function table(reports: SegmentReport[]): string {
  const rows = [['NAME', 'KIND', 'SIZE', 'FILL', 'PRODUCER', 'CONSUMER', 'STATE']]
  for (const report of reports) {
    const fill = report.capacity > 0 ? `${formatBytes(report.fill)} (${Math.round((report.fill / report.capacity) * 100)}%)` : '-'
    const state = report.kind === 'unreadable' ? report.error ?? 'unreadable' : report.kind === 'initialising' ? 'not initialised' : report.ended ? 'ended' : 'open'
    rows.push([report.name, report.kind, formatBytes(report.size), fill, formatProducers(report), formatConsumers(report), state])
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')).join('\n')
}

const USAGE = `usage: shmq ls [--json] [--prefix P]     list shmq segments in /dev/shm (names starting with P)
       shmq gc [--dry-run] [--prefix P]  remove segments no live process is attached to
       ${STAT_USAGE}
       ${TAIL_USAGE}
       ${CODEGEN_USAGE}
       shmq bridge --from shm:NAME --to nats://HOST:PORT/SUBJECT [--delivery at-most-once|at-least-once] ...  (shmq bridge --help)`

function main(argv: string[]): number {
  const [command, ...rest] = argv
  if (command === 'codegen') return codegenCommand(rest)
  let prefix = ''
  const flags: string[] = []
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--prefix' && i + 1 < rest.length) prefix = rest[++i]!
    else flags.push(rest[i]!)
  }
  const unknown = flags.filter((flag) => !['--json', '--dry-run'].includes(flag))
  if (unknown.length > 0 || (command !== 'ls' && command !== 'gc')) {
    process.stderr.write(`${USAGE}\n`)
    return command === undefined || command === '--help' || command === '-h' ? 0 : 2
  }
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
  for (const { name, error } of result.skipped) process.stdout.write(`${dryRun ? 'would skip' : 'skipped'} ${name}: ${error}\n`)
  if (result.removed.length === 0 && result.orphanFifos.length === 0 && result.skipped.length === 0) process.stdout.write('nothing to remove\n')
  return 0
}

const bridgeArgs = process.argv[2] === 'bridge' ? process.argv.slice(3) : null
if (process.argv[2] === 'stat' || process.argv[2] === 'tail') {
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
