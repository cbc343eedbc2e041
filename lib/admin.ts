/**
 * Stale-segment housekeeping: list the shmq segments in /dev/shm with their
 * state, and remove those no live process is attached to. Used by the `shmq`
 * command (lib/cli.ts) and exported for programs.
 */
import { readdirSync } from 'node:fs'
import { ShmqError } from './errors'
import * as L from './layout'
import { checkName, isOwnerAlive, ownerPid, type Role, Segment, sleepSync, unlinkSegment } from './segment'
import { native } from './native'

export const SHM_DIRECTORY = '/dev/shm'

export interface PeerReport {
  pid: number
  alive: boolean
}

export interface SegmentReport {
  name: string
  /**
   * 'spsc' for a readable shmq segment; 'initialising' when its creator has not
   * published it (yet: a creator that died then leaves it so); 'unreadable'
   * when it could not be inspected (see `error`).
   */
  kind: 'spsc' | 'initialising' | 'unreadable'
  /** Segment file size in bytes. */
  size: number
  capacity: number
  /** Bytes published and not yet released by the consumer. */
  fill: number
  producer: PeerReport | null
  consumer: PeerReport | null
  /** The producer closed the stream. */
  ended: boolean
  /** Why the segment could not be inspected (`kind: 'unreadable'`). */
  error?: string
}

function isShmqCandidate(name: string): boolean {
  try {
    checkName(name)
    return true
  } catch {
    return false
  }
}

function peer(segment: Segment, role: Role): PeerReport | null {
  const owner = segment.owner(role)
  return owner === 0n ? null : { pid: ownerPid(owner), alive: isOwnerAlive(owner) }
}

/** Inspects segment `name` without attaching to it; null if it is not a shmq segment. */
export function inspectSegment(name: string): SegmentReport | null {
  let segment: Segment
  try {
    segment = Segment.open(name, { timeout: 0 }, 0)
  } catch (error) {
    const code = error instanceof ShmqError ? error.code : 'EIO'
    if (code === 'ERR_SHMQ_NOT_SHMQ' || code === 'ENOENT') return null
    const kind = code === 'ERR_SHMQ_NOT_READY' ? 'initialising' : 'unreadable'
    let size = 0
    try {
      const info = native.segmentOpen(name)
      size = info.size
      if (info.buffer !== null) native.segmentUnmap(info.buffer)
    } catch {
      // unreadable: report what we know
    }
    return { name, kind, size, capacity: 0, fill: 0, producer: null, consumer: null, ended: false, error: `${code}: ${(error as Error).message}` }
  }
  try {
    const words = segment.words
    const fill = (Atomics.load(words, L.word(L.PRODUCER_POSITION_OFFSET)) - Atomics.load(words, L.word(L.CONSUMER_POSITION_OFFSET))) | 0
    return {
      name,
      kind: 'spsc',
      size: L.HEADER_BYTES + segment.capacity,
      capacity: segment.capacity,
      fill,
      producer: peer(segment, 'producer'),
      consumer: peer(segment, 'consumer'),
      ended: Atomics.load(words, L.word(L.END_OF_STREAM_OFFSET)) !== 0,
    }
  } finally {
    segment.close()
  }
}

/** Every shmq segment in /dev/shm (whose name starts with `prefix`), by name. Files that are not shmq's are left out. */
export function listSegments(prefix = ''): SegmentReport[] {
  const reports: SegmentReport[] = []
  for (const entry of readdirSync(SHM_DIRECTORY, { withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.startsWith(prefix) || !isShmqCandidate(entry.name)) continue
    const report = inspectSegment(entry.name)
    if (report !== null) reports.push(report)
  }
  return reports.sort((a, b) => a.name.localeCompare(b.name))
}

function hasLivePeer(report: SegmentReport): boolean {
  return report.producer?.alive === true || report.consumer?.alive === true
}

export interface GcOptions {
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean
  /**
   * A segment must look abandoned twice, this many ms apart, to be removed: a
   * creator between publishing the header and attaching has no peer yet. Default 200.
   */
  graceMs?: number
  /** Only segments (and FIFOs of segments) whose name starts with this. */
  prefix?: string
}

export interface GcResult {
  /** Segments removed (or that would be, with dryRun), with their state. */
  removed: SegmentReport[]
  /** Wake-up FIFOs left behind without their segment, removed too. */
  orphanFifos: string[]
}

/**
 * Removes the shmq segments that no live process is attached to (all recorded
 * peers dead or detached), with any unread messages in them, segments whose
 * creator died before initialising them, and wake-up FIFOs whose segment is
 * gone. Never touches files that are not shmq's, nor segments with a live
 * peer, nor ones it cannot read.
 */
export function collectGarbage(options: GcOptions = {}): GcResult {
  const graceMs = options.graceMs ?? 200
  const prefix = options.prefix ?? ''
  const abandoned = (report: SegmentReport): boolean => (report.kind === 'spsc' && !hasLivePeer(report)) || report.kind === 'initialising'
  const candidates = listSegments(prefix).filter(abandoned)
  if (candidates.length > 0 && graceMs > 0) sleepSync(graceMs)
  const removed: SegmentReport[] = []
  for (const candidate of candidates) {
    const again = inspectSegment(candidate.name)
    if (again === null || again.kind !== candidate.kind || !abandoned(again)) continue
    if (!options.dryRun) {
      try {
        unlinkSegment(again.name)
      } catch (error) {
        if ((error as ShmqError).code !== 'ENOENT') throw error
      }
    }
    removed.push(again)
  }
  const orphanFifos: string[] = []
  const present = new Set(readdirSync(SHM_DIRECTORY))
  for (const entry of present) {
    const match = /^\.shmq-(.+)\.wake-(consumer|producer)$/.exec(entry)
    if (match === null || !match[1]!.startsWith(prefix) || !isShmqCandidate(match[1]!) || present.has(match[1]!)) continue
    if (!options.dryRun) {
      try {
        native.doorbellUnlink(match[1]!, match[2] as Role)
      } catch {
        continue
      }
    }
    orphanFifos.push(entry)
  }
  return { removed, orphanFifos }
}
