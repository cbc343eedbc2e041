/**
 * Stale-segment housekeeping: list the shmq segments in /dev/shm with their
 * state, and remove those no live process is attached to. Used by the `shmq`
 * command (lib/cli.ts) and exported for programs.
 */
import { readLatency } from './latency'
import { type ChannelStats, channelStats } from './stats'
import { accessSync, constants as fsConstants, lstatSync, readdirSync, type Stats, statSync, unlinkSync } from 'node:fs'
import { fromNative, ShmqError } from './errors'
import * as L from './layout'
import { peerReport, processGone } from './liveness'
import { checkName, Segment, probeFile, sleepSync, unallocated, unlinkSegment, type ValidHeader } from './segment'
import { native, type NativeSegmentFile } from './native'

export const SHM_DIRECTORY = '/dev/shm'

export interface PeerReport {
  pid: number
  alive: boolean
}

/** A producer slot in use: its index (lib/layout.ts) and its peer report. */
export interface ProducerSlotReport extends PeerReport {
  slot: number
}

export interface SegmentReport {
  name: string
  /**
   * 'spsc', 'mpsc', 'broadcast', 'work queue' or 'server' for a readable shmq segment; 'initialising' when its
   * creator has not published it (yet: a creator that died then leaves it so)
   * and its consumer's wake-up FIFO exists; 'unreadable' when it could not be
   * inspected (see `error`).
   */
  kind: L.KindName | 'initialising' | 'unreadable'
  /** Segment file size in bytes. */
  size: number
  capacity: number
  /** Bytes published (MPSC: claimed) and not yet released by the consumer; broadcast: from the oldest intact message to the tail. */
  fill: number
  /**
   * SPSC: the producer. MPSC: the first live producer, else the first recorded
   * one. Broadcast: the publisher. Work queue (its roster, an MPSC ring): the
   * first worker; the queue's producer is the roster's `consumer`.
   */
  producer: PeerReport | null
  /** Every producer slot in use (SPSC: at most one). */
  producers: ProducerSlotReport[]
  /** Producer slots (SPSC 1; MPSC maxProducers). */
  maxProducers: number
  consumer: PeerReport | null
  /** Broadcast: every subscriber slot in use (its index, pid, whether it lives); empty for queues. */
  subscribers: ProducerSlotReport[]
  /** Broadcast: subscriber slots (maxSubscribers); 0 for queues. */
  maxSubscribers: number
  /** The producer closed the stream. */
  ended: boolean
  /** Why the segment could not be inspected (`kind: 'unreadable'`). */
  error?: string
  /** The file's owner (uid); null when even lstat failed (an unreadable file that went away). */
  uid: number | null
  /** Permission bits of the file (e.g. 0o600); null as for `uid`. */
  mode: number | null
  /**
   * When the file was created, ms since the epoch: its birth time (statx
   * btime, which tmpfs records since Linux 5.x), else its ctime. Null as for `uid`.
   */
  createdAt: number | null
  /** ms from `createdAt` to when this report was made (>= 0); null as for `uid`. */
  ageMs: number | null
}

type FileFacts = Pick<SegmentReport, 'uid' | 'mode' | 'createdAt' | 'ageMs'>

const UNKNOWN_FILE: FileFacts = { uid: null, mode: null, createdAt: null, ageMs: null }

/**
 * Owner, permission bits and creation time of /dev/shm/`name`, by lstat (a
 * symlink is never followed). `owner` (uid, mode) comes from the fstat of the
 * descriptor inspected when there is one, so that they describe the very file
 * whose header was read. Creation time: the birth time when the kernel gives
 * one: on tmpfs (/dev/shm) statx reports btime, and it stays put when the file
 * is chmod'ed, chown'ed or resized, where ctime moves; with no btime (an older
 * kernel: Node's birthtimeMs is 0) ctime, which for a shmq segment is its
 * creation (shm_open, fchmod, ftruncate, posix_fallocate come together) unless
 * someone changed the file's mode or owner since. Never mtime: stores through
 * a mapping do not reliably update it (tmpfs updates it on ftruncate and
 * write(2), not on page writes).
 */
function fileFacts(name: string, owner?: { uid: number; mode: number }): FileFacts {
  try {
    const stat = lstatSync(`${SHM_DIRECTORY}/${name}`, { bigint: false })
    const createdAt = stat.birthtimeMs > 0 ? stat.birthtimeMs : stat.ctimeMs
    return {
      uid: owner?.uid ?? stat.uid,
      mode: (owner?.mode ?? stat.mode) & 0o7777,
      createdAt: Math.round(createdAt),
      ageMs: Math.max(0, Math.round(Date.now() - createdAt)),
    }
  } catch {
    return owner === undefined ? UNKNOWN_FILE : { ...UNKNOWN_FILE, uid: owner.uid, mode: owner.mode & 0o7777 }
  }
}

function isShmqCandidate(name: string): boolean {
  try {
    checkName(name)
    return true
  } catch {
    return false
  }
}

/**
 * The wake-up FIFO of slot 0 of `name` (every kind has one, made before the
 * header is published: the consumer's, or a broadcast ring's publisher's)
 * exists, is a FIFO (not followed if a symlink) and belongs to `uid`.
 */
function hasFifos(name: string, uid: number): boolean {
  for (const kind of [L.KIND_SPSC, L.KIND_BROADCAST]) {
    try {
      const stat = lstatSync(`${SHM_DIRECTORY}/.shmq-${name}.wake-${L.slotFifoSuffix(kind, 0)}`)
      if (stat.isFIFO() && stat.uid === uid) return true
    } catch {
      // not this kind's
    }
  }
  return false
}

/** The role at `offset`: the pid its owner word names, alive while a live endpoint holds its role lock. */
function peer(file: NativeSegmentFile, header: DataView, offset: number): PeerReport | null {
  return peerReport(header.getBigUint64(offset, true), file.roleLocked(offset))
}

const EMPTY_REPORT = { capacity: 0, fill: 0, producer: null, producers: [], maxProducers: 0, consumer: null, subscribers: [], maxSubscribers: 0, ended: false } as const

function unreadable(name: string, size: number, error: ShmqError, facts: FileFacts = fileFacts(name)): SegmentReport {
  return { ...EMPTY_REPORT, name, kind: 'unreadable', size, producers: [], subscribers: [], error: `${error.code}: ${error.message}`, ...facts }
}

/**
 * Inspects segment `name` without attaching to it and without mapping it (the
 * header is read with pread: a file whose pages do not exist cannot fault);
 * null if it is not a shmq segment. Never waits: a file another process holds
 * a lease on is 'unreadable' (EAGAIN).
 */
export function inspectSegment(name: string): SegmentReport | null {
  let file
  try {
    file = openSegmentFile(name)
    if (file === null) return null
  } catch (error) {
    const shmqError = error as ShmqError
    let size = 0
    try {
      size = lstatSync(`${SHM_DIRECTORY}/${name}`).size
    } catch {
      // unreadable: report what we know
    }
    return unreadable(name, size, shmqError)
  }
  let facts: FileFacts | undefined
  try {
    const probe = probeFile(file)
    const { verdict, header, size } = probe
    if (verdict === 'not-shmq') return null
    facts = fileFacts(name, file.stat())
    if (verdict === 'initialising') {
      // any program's fresh shared memory is zero-filled: only the FIFOs make it a segment being made
      if (!hasFifos(name, probe.uid)) return null
      return { ...EMPTY_REPORT, name, kind: 'initialising', size, producers: [], subscribers: [], ...facts }
    }
    if (typeof verdict === 'string') return unreadable(name, size, Segment.problemError(verdict, name), facts)
    const sparse = unallocated(probe, name)
    if (sparse !== null) return unreadable(name, size, sparse, facts)
    const { layout } = verdict
    const fill = fillOf(header, layout)
    if (layout.kind === L.KIND_BROADCAST) {
      const subscribers: ProducerSlotReport[] = []
      for (let slot = 1; slot < layout.slotCount; slot++) {
        const report = peer(file, header, layout.slots[slot]!.owner)
        if (report !== null) subscribers.push({ slot, ...report })
      }
      const publisher = peer(file, header, layout.slots[L.PUBLISHER_SLOT]!.owner)
      return {
        ...EMPTY_REPORT,
        name,
        kind: layout.kindName,
        size,
        capacity: verdict.capacity,
        fill,
        producer: publisher,
        producers: publisher === null ? [] : [{ slot: L.PUBLISHER_SLOT, ...publisher }],
        maxProducers: 1,
        subscribers,
        maxSubscribers: layout.slotCount - 1,
        ended: header.getInt32(L.END_OF_STREAM_OFFSET, true) !== 0,
        ...facts,
      }
    }
    const producers: ProducerSlotReport[] = []
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < layout.slotCount; slot++) {
      const report = peer(file, header, layout.slots[slot]!.owner)
      if (report !== null) producers.push({ slot, ...report })
    }
    const first = producers.find((report) => report.alive) ?? producers[0]
    return {
      name,
      kind: layout.kindName,
      size,
      capacity: verdict.capacity,
      fill,
      producer: first === undefined ? null : { pid: first.pid, alive: first.alive },
      producers,
      maxProducers: layout.slotCount - 1,
      consumer: peer(file, header, layout.slots[L.CONSUMER_SLOT]!.owner),
      subscribers: [],
      maxSubscribers: 0,
      ended: header.getInt32(L.END_OF_STREAM_OFFSET, true) !== 0,
      ...facts,
    }
  } catch (error) {
    return unreadable(name, 0, fromNative(error, name), facts)
  } finally {
    file.close()
  }
}

/**
 * The counters of segment `name` (lib/stats.ts), read like inspectSegment():
 * with pread, without attaching or mapping, so that the stream is not
 * disturbed. Null when it is no shmq segment; throws ShmqError when it cannot
 * be read (another user's, corrupt, not initialised yet).
 */
export function statSegment(name: string): ChannelStats | null {
  const file = openSegmentFile(name)
  if (file === null) return null
  try {
    const read = readValidHeader(file, name)
    if (read === null) return null
    const { header, verdict } = read
    const { layout } = verdict
    let latency = null
    if ((verdict.incompatibleFlags & L.INCOMPATIBLE_TIMESTAMPS) !== 0) {
      const region = file.read(layout.headerBytes + verdict.capacity, L.LATENCY_REGION_BYTES)
      latency = readLatency(new DataView(region.buffer, region.byteOffset, region.byteLength))
    }
    return channelStats(header, layout, verdict.capacity, fillOf(header, layout), (slot) => file.roleLocked(layout.slots[slot]!.owner), latency)
  } finally {
    file.close()
  }
}

/**
 * Opens segment `name` to read it with pread (never mapped, never written);
 * null when there is none (gone, or a symlink: never followed). Other
 * failures (another user's, EMFILE, a lease) throw a ShmqError.
 */
export function openSegmentFile(name: string): NativeSegmentFile | null {
  checkName(name)
  try {
    return new native.SegmentFile(name, false)
  } catch (error) {
    const shmqError = fromNative(error, name)
    if (shmqError.code === 'ENOENT' || shmqError.code === 'ELOOP') return null
    throw shmqError
  }
}

/**
 * The checked header of an opened segment file (for readers that need one
 * now: `shmq stat`, `shmq tail`); null when the file is no shmq segment.
 * Throws ShmqError when it is one that cannot be read yet or at all: still
 * being created, corrupt, of an unknown layout, with pages that do not exist.
 */
export function readValidHeader(file: NativeSegmentFile, name: string): { header: DataView; verdict: ValidHeader } | null {
  const probe = probeFile(file)
  const { verdict, header } = probe
  if (verdict === 'not-shmq') return null
  if (verdict === 'initialising') throw new ShmqError('ERR_SHMQ_NOT_READY', `segment '${name}' is still being created (or its creator died before it was ready): try again`, { segment: name })
  if (typeof verdict === 'string') throw Segment.problemError(verdict, name)
  const sparse = unallocated(probe, name)
  if (sparse !== null) throw sparse
  return { header, verdict }
}

/** Bytes written and not yet released, from a header; broadcast: from the oldest intact message (there is no read position). */
function fillOf(header: DataView, layout: L.RingLayout): number {
  const readOffset = layout.kind === L.KIND_BROADCAST ? L.OLDEST_POSITION_OFFSET : L.READ_POSITION_OFFSET
  return (header.getInt32(L.WRITE_POSITION_OFFSET, true) - header.getInt32(readOffset, true)) | 0
}

/**
 * Removes the segments in /dev/shm whose names `isOurs` accepts and that
 * `isDead` finds abandoned (an SPSC segment whose side that matters is not
 * alive): rings a process made for another that died. Other users' files,
 * and files that went meanwhile, are left.
 */
export function removeAbandoned(isOurs: (entry: string) => boolean, isDead: (report: SegmentReport) => boolean): void {
  let entries: string[]
  try {
    entries = readdirSync(SHM_DIRECTORY)
  } catch {
    return
  }
  for (const entry of entries) {
    if (!isOurs(entry)) continue
    try {
      const report = inspectSegment(entry)
      if (report !== null && report.kind === 'spsc' && isDead(report)) unlinkSegment(entry)
    } catch {
      // another user's, or gone
    }
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
  return report.consumer?.alive === true || report.producers.some((producer) => producer.alive) || report.subscribers.some((subscriber) => subscriber.alive)
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
  /** Stats files of NATS bridges whose process is gone (lib/bridge-stats.ts). */
  staleBridgeFiles: string[]
  /** Abandoned segments and orphan FIFOs that this user cannot remove (or that failed to go), and why. */
  skipped: Array<{ name: string; error: string }>
}

/**
 * Why this process cannot unlink `path`, or null if it can: /dev/shm is
 * sticky, so only the file's owner, the directory's owner or root removes it.
 */
function removalBlocker(path: string): string | null {
  const euid = process.geteuid?.() ?? 0
  if (euid === 0) return null
  try {
    accessSync(SHM_DIRECTORY, fsConstants.W_OK | fsConstants.X_OK)
  } catch {
    return `EACCES: this user may not remove files from ${SHM_DIRECTORY}`
  }
  try {
    const directory = statSync(SHM_DIRECTORY)
    const file = lstatSync(path)
    if ((directory.mode & 0o1000) !== 0 && file.uid !== euid && directory.uid !== euid) {
      return `EPERM: '${path}' belongs to uid ${file.uid}, and in the sticky ${SHM_DIRECTORY} only its owner or root may remove it`
    }
  } catch (error) {
    return `${(error as NodeJS.ErrnoException).code ?? 'EIO'}: ${(error as Error).message}`
  }
  return null
}

/**
 * Removes the shmq segments that no live process is attached to (all recorded
 * peers dead or detached), with any unread messages in them, segments whose
 * creator died before initialising them (both FIFOs present), and wake-up
 * FIFOs whose segment is gone, and stats files of NATS bridges that died. Never touches files that are not shmq's, nor
 * segments with a live peer, nor ones it cannot read. What this user may not
 * remove is reported in `skipped` (with dryRun too), and the rest goes on.
 */
export function collectGarbage(options: GcOptions = {}): GcResult {
  const graceMs = options.graceMs ?? 200
  const prefix = options.prefix ?? ''
  const abandoned = (report: SegmentReport): boolean => ((report.kind === 'spsc' || report.kind === 'mpsc' || report.kind === 'broadcast' || report.kind === 'work queue' || report.kind === 'server') && !hasLivePeer(report)) || report.kind === 'initialising'
  const candidates = listSegments(prefix).filter(abandoned)
  if (candidates.length > 0 && graceMs > 0) sleepSync(graceMs)
  const removed: SegmentReport[] = []
  const skipped: GcResult['skipped'] = []
  for (const candidate of candidates) {
    const again = inspectSegment(candidate.name)
    if (again === null || again.kind !== candidate.kind || !abandoned(again)) continue
    const blocker = removalBlocker(`${SHM_DIRECTORY}/${again.name}`)
    if (blocker !== null) {
      skipped.push({ name: again.name, error: blocker })
      continue
    }
    if (!options.dryRun) {
      try {
        unlinkSegment(again.name)
      } catch (error) {
        const code = (error as ShmqError).code
        if (code !== 'ENOENT') skipped.push({ name: again.name, error: `${code}: ${(error as Error).message}` })
        continue
      }
    }
    removed.push(again)
  }
  const present = new Set(readdirSync(SHM_DIRECTORY))
  /**
   * Removes /dev/shm/`entry` when it is of the type `isType` wants (a file
   * merely named like one of ours is not ours) and this user may remove it;
   * records what it did or could not do. True when it was (or would be) removed.
   */
  const removeEntry = (entry: string, isType: (stat: Stats) => boolean, remove: () => void): boolean => {
    const path = `${SHM_DIRECTORY}/${entry}`
    try {
      if (!isType(lstatSync(path))) return false
    } catch {
      return false
    }
    const blocker = removalBlocker(path)
    if (blocker !== null) {
      skipped.push({ name: entry, error: blocker })
      return false
    }
    if (!options.dryRun) {
      try {
        remove()
      } catch (error) {
        const code = (error as { code?: string }).code
        if (code !== 'ENOENT') skipped.push({ name: entry, error: `${code}: ${(error as Error).message}` })
        return false
      }
    }
    return true
  }
  const orphanFifos: string[] = []
  for (const entry of present) {
    const match = /^\.shmq-(.+)\.wake-([a-z][a-z0-9-]*)$/.exec(entry)
    if (match === null || !match[1]!.startsWith(prefix) || !isShmqCandidate(match[1]!) || present.has(match[1]!)) continue
    const removed = removeEntry(entry, (stat) => stat.isFIFO(), () => {
      try {
        native.doorbellUnlink(match[1]!, match[2]!)
      } catch (error) {
        throw fromNative(error, match[1]!)
      }
    })
    if (removed) orphanFifos.push(entry)
  }
  const staleBridgeFiles: string[] = []
  for (const entry of present) {
    const match = /^\.shmq-(.+)\.bridge-([1-9][0-9]{0,9})(\.new)?$/.exec(entry)
    if (match === null || !match[1]!.startsWith(prefix) || !processGone(Number(match[2]))) continue
    if (removeEntry(entry, (stat) => stat.isFile(), () => unlinkSync(`${SHM_DIRECTORY}/${entry}`))) staleBridgeFiles.push(entry)
  }
  return { removed, orphanFifos, staleBridgeFiles, skipped }
}
