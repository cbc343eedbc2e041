/**
 * A running NATS bridge's counters where `shmq stat` finds them without
 * talking to the bridge: a small JSON file beside the channel's FIFOs,
 * /dev/shm/.shmq-NAME.bridge-PID, rewritten every STATS_FILE_MS while the
 * bridge runs (a new file renamed over the old one, so a reader never sees
 * half of one) and removed when it stops. Its mode is the channel segment's,
 * so it tells no more to other users than the segment does.
 *
 * Here, not in lib/bridge/: `shmq stat` reads these files and must not load
 * the NATS client.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { SHM_DIRECTORY } from './admin'
import { processGone, processStartTime } from './liveness'

/** Milliseconds between two rewrites of a running bridge's file. */
export const STATS_FILE_MS = 1000
/** A file not rewritten for this long belongs to a bridge that is stuck or gone. */
export const STALE_MS = 5 * STATS_FILE_MS
/** Largest file a reader takes (a bridge's stats are about 1 KiB). */
const MAX_FILE_BYTES = 64 * 1024

const fileOf = (channel: string, pid: number): string => `${SHM_DIRECTORY}/.shmq-${channel}.bridge-${pid}`

export interface BridgeStatsFile {
  pid: number
  /** The bridge's endpoints and mode, as it was started. */
  from: string
  to: string
  /** When the bridge last wrote the file (ms since the epoch), and whether that is longer than STALE_MS ago or its process is gone (its pid gone, or now another process's). */
  updatedAt: number
  stale: boolean
  /** The bridge's stats() (lib/bridge/stats.ts), as it wrote them. */
  stats: Record<string, unknown>
  /** The file's owner. */
  uid: number
}

/** Writes `body` as the bridge file of `channel` for this process: a fresh file, then renamed over the last one. */
function writeFile(channel: string, mode: number, body: string): void {
  const target = fileOf(channel, process.pid)
  const temporary = `${target}.new`
  try {
    unlinkSync(temporary)
  } catch {}
  // O_EXCL | O_NOFOLLOW: never through a file or symlink someone else put there
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
  try {
    writeSync(fd, body)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, target)
}

/**
 * Publishes `stats()` of a bridge on `channel` until the returned stop() is
 * called (which removes the file). Failures to write (a full /dev/shm, the
 * channel gone) only skip that rewrite: the bridge's work never depends on it.
 */
export function publishBridgeStats(channel: string, endpoints: { from: string; to: string }, stats: () => object): () => void {
  let mode = 0o600
  try {
    mode = statSync(`${SHM_DIRECTORY}/${channel}`).mode & 0o666
  } catch {}
  // with the pid, a reader tells this process from a later one that got its pid
  const start = processStartTime(process.pid) ?? null
  const write = (): void => {
    try {
      writeFile(channel, mode, JSON.stringify({ pid: process.pid, start, ...endpoints, updatedAt: Date.now(), stats: stats() }))
    } catch {}
  }
  write()
  const timer = setInterval(write, STATS_FILE_MS)
  timer.unref()
  return () => {
    clearInterval(timer)
    for (const file of [fileOf(channel, process.pid), `${fileOf(channel, process.pid)}.new`]) {
      try {
        unlinkSync(file)
      } catch {}
    }
  }
}

/** Reads one bridge file, or null when it is not a readable, sane one (never follows a symlink). */
function readFile(path: string, pid: number, now: number): BridgeStatsFile | null {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile() || stat.size > MAX_FILE_BYTES) return null
    const buffer = Buffer.alloc(stat.size)
    const length = readSync(fd, buffer, 0, buffer.length, 0)
    const parsed = JSON.parse(buffer.subarray(0, length).toString('utf8')) as Record<string, unknown>
    if (parsed === null || typeof parsed !== 'object' || parsed.pid !== pid || typeof parsed.updatedAt !== 'number' || typeof parsed.stats !== 'object' || parsed.stats === null) return null
    return {
      pid,
      from: String(parsed.from),
      to: String(parsed.to),
      updatedAt: parsed.updatedAt,
      stale: now - parsed.updatedAt > STALE_MS || processGone(pid, typeof parsed.start === 'number' ? parsed.start : undefined),
      stats: parsed.stats as Record<string, unknown>,
      uid: stat.uid,
    }
  } catch {
    return null
  } finally {
    closeSync(fd)
  }
}

/** The bridges of `channel` that left a file: running ones, and stale ones (stuck, or died without removing it). */
export function readBridgeStats(channel: string): BridgeStatsFile[] {
  const prefix = `.shmq-${channel}.bridge-`
  let entries: string[]
  try {
    entries = readdirSync(SHM_DIRECTORY)
  } catch {
    return []
  }
  const now = Date.now()
  const found: BridgeStatsFile[] = []
  for (const entry of entries) {
    if (!entry.startsWith(prefix)) continue
    const pid = entry.slice(prefix.length)
    if (!/^[1-9][0-9]{0,9}$/.test(pid)) continue
    const file = readFile(`${SHM_DIRECTORY}/${entry}`, Number(pid), now)
    if (file !== null) found.push(file)
  }
  return found.sort((a, b) => a.pid - b.pid)
}
