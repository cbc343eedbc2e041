/**
 * A mapped shmq segment: create, open, validate, attach a role, close, unlink.
 * Knows the segment header (lib/layout.ts); knows nothing of frames.
 */
import { fromNative, ShmqError } from './errors'
import * as L from './layout'
import { ownerPid, ownOwner } from './liveness'
import { writeHeader } from './memory'
import { MAX_NAME_BYTES, native, type NativeDoorbell, type NativeDoorbellWriter, type NativeSegmentFile } from './native'

export type Role = 'producer' | 'consumer'

export interface CreateOptions {
  /** Ring size in bytes: a power of two from 1 KiB to 1 GiB. Default 1 MiB. */
  capacity?: number
  /** Largest message in bytes. Default and upper bound: capacity / 2 - 8. */
  maxMessage?: number
  /** File mode of the segment and its wake-up FIFOs. Default 0o600 (owner only). */
  mode?: number
}

export interface OpenOptions {
  /**
   * Milliseconds to wait for the segment to appear and for its creator to
   * finish initialising it. Default 0: fail at once with ENOENT if it does not
   * exist (a segment being initialised still gets a short grace period).
   */
  timeout?: number
}

/** Grace period for a creator that is between shm_open and publishing "ready". */
const INITIALISATION_GRACE_MS = 250

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/

/** Throws ERR_SHMQ_INVALID_NAME unless `name` can name a segment. */
export function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new ShmqError('ERR_SHMQ_INVALID_NAME', 'a segment name must be a non-empty string, e.g. "jobs"')
  }
  if (name.length > MAX_NAME_BYTES) {
    throw new ShmqError('ERR_SHMQ_INVALID_NAME', `segment name is ${name.length} characters long; use at most ${MAX_NAME_BYTES}`)
  }
  if (!NAME_PATTERN.test(name)) {
    throw new ShmqError(
      'ERR_SHMQ_INVALID_NAME',
      `invalid segment name ${JSON.stringify(name)}: use letters, digits, '_', '-' and '.', not starting with '.' or '-' (no '/': names live in /dev/shm)`,
      { segment: name },
    )
  }
}

/** Blocks the thread for `milliseconds` without spinning. */
export function sleepSync(milliseconds: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, milliseconds)
}

const OWNER_OFFSET = {
  producer: L.PRODUCER_OWNER_OFFSET,
  consumer: L.CONSUMER_OWNER_OFFSET,
} as const

export class Segment {
  readonly name: string
  /** The mapping; detached (length 0) once closed. */
  readonly buffer: ArrayBuffer
  /** The whole segment as 32-bit words: header fields and frame headers. */
  readonly words: Int32Array
  /** The whole segment as bytes: payloads. */
  readonly bytes: Uint8Array
  /** The header's 64-bit words: the owner words. */
  private readonly owners: BigInt64Array
  readonly capacity: number
  readonly maxMessage: number
  /** Owner of the segment file; the wake-up FIFOs must have the same. */
  readonly ownerUid: number
  private mapped = true
  private isShrunk = false
  /** The owner word this endpoint wrote when it attached; 0n when not attached. */
  private attachedOwner = 0n

  /** `capacity` and `maxMessage` are the values the opener validated: the header is read once. */
  private constructor(name: string, buffer: ArrayBuffer, ownerUid: number, capacity: number, maxMessage: number) {
    this.name = name
    this.buffer = buffer
    this.words = new Int32Array(buffer)
    this.bytes = new Uint8Array(buffer)
    this.owners = new BigInt64Array(buffer, 0, L.HEADER_BYTES / 8)
    this.capacity = capacity
    this.maxMessage = maxMessage
    this.ownerUid = ownerUid
  }

  /** Creates segment `name` (O_EXCL) and its wake-up FIFOs, and publishes its header. */
  static create(name: string, options: CreateOptions = {}): Segment {
    checkName(name)
    const capacity = options.capacity ?? L.DEFAULT_CAPACITY
    const capacityProblem = L.checkCapacity(capacity)
    if (capacityProblem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', capacityProblem, { segment: name })
    const maxMessage = options.maxMessage ?? L.maxMessageFor(capacity)
    const maxMessageProblem = L.checkMaxMessage(maxMessage, capacity)
    if (maxMessageProblem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', maxMessageProblem, { segment: name })
    const mode = options.mode ?? 0o600
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `mode must be a file mode from 0o000 to 0o777, e.g. 0o600 (got ${String(mode)})`, { segment: name })
    }

    let buffer: ArrayBuffer
    try {
      buffer = native.segmentCreate(name, L.HEADER_BYTES + capacity, mode)
    } catch (error) {
      throw fromNative(error, name)
    }
    const made: Array<'consumer' | 'producer'> = []
    try {
      for (const which of ['consumer', 'producer'] as const) {
        native.doorbellCreate(name, which, mode)
        made.push(which)
      }
    } catch (error) {
      for (const which of made) native.doorbellUnlink(name, which)
      native.segmentUnmap(buffer)
      native.segmentUnlink(name)
      throw fromNative(error, name)
    }

    // READY last: an opener that sees it sees every header field
    writeHeader(buffer, capacity, maxMessage)
    // files are owned by the effective uid
    return new Segment(name, buffer, process.geteuid?.() ?? 0, capacity, maxMessage)
  }

  /**
   * Opens and validates segment `name`, waiting up to `timeout` ms for it.
   * `graceMs`: how long a segment still being initialised is waited for at least.
   * The header is read with pread and checked before the file is mapped, and a
   * file with unallocated pages is never mapped (touching one can be SIGBUS).
   */
  static open(name: string, options: OpenOptions = {}, graceMs: number = INITIALISATION_GRACE_MS): Segment {
    checkName(name)
    const timeout = options.timeout ?? 0
    if (typeof timeout !== 'number' || !(timeout >= 0)) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `timeout must be a number of milliseconds >= 0 (got ${String(timeout)})`, { segment: name })
    }
    const started = Date.now()
    let initialisingSince: number | null = null
    for (;;) {
      const waited = Date.now() - started
      let file: NativeSegmentFile
      try {
        file = new native.SegmentFile(name, true)
      } catch (error) {
        const shmqError = fromNative(error, name)
        // EAGAIN: another process holds a file lease on it; never wait past the timeout for it
        if ((shmqError.code === 'ENOENT' || shmqError.code === 'EAGAIN') && waited < timeout) {
          sleepSync(Math.min(2, timeout - waited))
          continue
        }
        if (shmqError.code === 'EAGAIN') throw leaseError(name, timeout, shmqError)
        throw shmqError
      }
      let problem: Verdict
      try {
        const probe = probeFile(file)
        problem = probe.verdict
        if (typeof problem !== 'string') {
          const sparse = unallocated(probe, name)
          if (sparse !== null) throw sparse
          let buffer: ArrayBuffer
          try {
            buffer = file.map(probe.size)
          } catch (error) {
            throw fromNative(error, name)
          }
          return new Segment(name, buffer, probe.uid, problem.capacity, problem.maxMessage)
        }
      } finally {
        file.close()
      }
      if (problem !== 'initialising') throw Segment.problemError(problem, name)
      initialisingSince ??= Date.now()
      const grace = Math.max(timeout - waited, graceMs - (Date.now() - initialisingSince))
      if (grace <= 0) {
        throw new ShmqError(
          'ERR_SHMQ_NOT_READY',
          `segment '${name}' exists but its creator has not finished initialising it: pass a longer { timeout }, or unlink('${name}') if its creator died`,
          { segment: name },
        )
      }
      sleepSync(Math.min(2, grace))
    }
  }

  /**
   * What is wrong with a segment of `size` bytes whose header bytes are `header`
   * (read after `state`, the state word, was read on its own), or its checked
   * sizes if it is a valid, ready one. Reads each field once; trusts none of them.
   */
  static validate(header: DataView, state: number, size: number): Verdict {
    // every segment is a 1024-byte header plus a power-of-two ring
    if (L.checkCapacity(size - L.HEADER_BYTES) !== null || header.byteLength < L.HEADER_BYTES) return 'not-shmq'
    const magic = header.getInt32(L.MAGIC_OFFSET, true)
    if (state !== L.STATE_READY) return magic === 0 || magic === L.MAGIC ? 'initialising' : 'not-shmq'
    if (magic !== L.MAGIC) return 'not-shmq'
    const major = header.getUint16(L.VERSION_OFFSET, true)
    if (major !== L.VERSION_MAJOR) return `version:${major}.${header.getUint16(L.VERSION_OFFSET + 2, true)}`
    const kind = header.getInt32(L.KIND_OFFSET, true)
    if (kind !== L.KIND_SPSC) return `corrupt:unknown ring kind ${kind}`
    const headerBytes = header.getInt32(L.HEADER_BYTES_OFFSET, true)
    if (headerBytes !== L.HEADER_BYTES) return `corrupt:header size ${headerBytes}, expected ${L.HEADER_BYTES}`
    const capacity = header.getInt32(L.CAPACITY_OFFSET, true)
    if (L.checkCapacity(capacity) !== null) return `corrupt:capacity ${capacity} is not a valid ring size`
    if (headerBytes + capacity !== size) return `corrupt:header says ${headerBytes + capacity} bytes, the segment has ${size}`
    const maxMessage = header.getInt32(L.MAX_MESSAGE_OFFSET, true)
    if (L.checkMaxMessage(maxMessage, capacity) !== null) return `corrupt:max message ${maxMessage} does not fit a ${capacity}-byte ring`
    // both positions may move while we look, so only their alignment is checked
    // here; their distance once attached (lib/endpoint.ts), when ours stands still
    const producerPosition = header.getInt32(L.PRODUCER_POSITION_OFFSET, true)
    const consumerPosition = header.getInt32(L.CONSUMER_POSITION_OFFSET, true)
    if ((producerPosition & 7) !== 0 || (consumerPosition & 7) !== 0) {
      return `corrupt:positions ${producerPosition >>> 0}/${consumerPosition >>> 0} are not 8-byte aligned`
    }
    return { capacity, maxMessage }
  }

  static problemError(problem: string, name: string): ShmqError {
    if (problem === 'not-shmq') {
      return new ShmqError('ERR_SHMQ_NOT_SHMQ', `'/dev/shm/${name}' is not a shmq segment: pick another name, or remove that file if it is yours`, { segment: name })
    }
    if (problem.startsWith('version:')) {
      return new ShmqError(
        'ERR_SHMQ_VERSION',
        `segment '${name}' has layout version ${problem.slice(8)}; this shmq reads major version ${L.VERSION_MAJOR}: use the same shmq version on both sides`,
        { segment: name },
      )
    }
    return new ShmqError('ERR_SHMQ_CORRUPT', `segment '${name}' is corrupt (${problem.slice(8)}): unlink it and create it anew`, { segment: name })
  }

  /** checkSize() found the file shrunk: nothing may touch the mapping any more. */
  get shrunk(): boolean {
    return this.isShrunk
  }

  get isClosed(): boolean {
    return !this.mapped
  }

  /**
   * Attaches this endpoint as the segment's `role`: takes the role lock (see
   * lib/liveness.ts), then writes its owner word. Throws ERR_SHMQ_BUSY while
   * another endpoint, of this process or another, holds the role; the role of
   * one that died is free, whatever its owner word still says.
   */
  attach(role: Role): void {
    const offset = OWNER_OFFSET[role]
    if (!this.roleLock(offset, 'take')) {
      const holder = this.owner(role)
      const why = this.roleLock(offset, 'test')
        ? `pid ${ownerPid(holder)}${holder === ownOwner() ? ', this process' : ''}`
        : 'a process that can read the segment holds a read lock on its slot'
      throw new ShmqError(
        'ERR_SHMQ_BUSY',
        `segment '${this.name}' already has a ${role} (${why}): a channel has one ${role}; close the other one first`,
        { segment: this.name },
      )
    }
    const owner = ownOwner()
    this.attachedOwner = owner
    // SYNC POINT: the owner word is written once the lock is ours; readers take it as a label only
    Atomics.store(this.owners, offset / 8, owner)
    // an endpoint never closed (its worker thread ended, it was collected) gives the word back; its lock goes with its fd
    native.segmentClearOnFinalize(this.buffer, offset, owner)
  }

  /** Gives up `role`, if this endpoint holds it: the owner word first, then the lock. */
  detach(role: Role): void {
    if (!this.mapped || this.isShrunk || this.attachedOwner === 0n) return
    Atomics.compareExchange(this.owners, OWNER_OFFSET[role] / 8, this.attachedOwner, 0n)
    this.attachedOwner = 0n
    this.roleLock(OWNER_OFFSET[role], 'release')
  }

  /** Clears `role`'s owner word if it still names the dead `owner`, so waiting resumes for a successor. */
  reap(role: Role, owner: bigint): void {
    // SYNC POINT: a successor's attach store wins over this compare-exchange, or runs after it
    Atomics.compareExchange(this.owners, OWNER_OFFSET[role] / 8, owner, 0n)
  }

  /** Whether another endpoint, alive, holds `role` (its role lock; see lib/liveness.ts). */
  roleHeld(role: Role): boolean {
    return this.roleLock(OWNER_OFFSET[role], 'test')
  }

  private roleLock(offset: number, action: 'take' | 'release' | 'test'): boolean {
    try {
      return native.segmentRoleLock(this.buffer, offset, action)
    } catch (error) {
      throw fromNative(error, this.name)
    }
  }

  /** The owner word of `role` (see layout.ts), 0n when none. */
  owner(role: Role): bigint {
    return Atomics.load(this.owners, OWNER_OFFSET[role] / 8)
  }

  /** Opens the wake-up FIFO that wakes `which` side, to wait on it. */
  openDoorbell(which: Role, onRing: () => void): NativeDoorbell {
    try {
      return new native.Doorbell(this.name, which, this.ownerUid, onRing)
    } catch (error) {
      throw fromNative(error, this.name)
    }
  }

  /** Opens the wake-up FIFO that wakes `which` side only to ring it: no event-loop handle. */
  openDoorbellWriter(which: Role): NativeDoorbellWriter {
    try {
      return new native.DoorbellWriter(this.name, which, this.ownerUid)
    } catch (error) {
      throw fromNative(error, this.name)
    }
  }

  /**
   * Throws ERR_SHMQ_CORRUPT if another process shrank the segment file or
   * punched a hole in it (fallocate PUNCH_HOLE): touching a page past its end
   * faults (SIGBUS), and so does a freed page when /dev/shm is full. Checked on
   * open and on every wake-up; a change between two checks cannot be caught
   * (see docs/GUARANTEES.md).
   */
  checkSize(): void {
    if (!this.mapped) return
    const { size, blocks } = native.segmentStat(this.buffer)
    const mapped = this.buffer.byteLength
    if (size < mapped) {
      this.isShrunk = true
      throw new ShmqError(
        'ERR_SHMQ_CORRUPT',
        `segment '${this.name}' was shrunk to ${size} bytes while mapped (${mapped}): another process truncated it; stop using it and create it anew`,
        { segment: this.name },
      )
    }
    if (blocks * 512 < mapped) {
      this.isShrunk = true
      throw new ShmqError(
        'ERR_SHMQ_CORRUPT',
        `segment '${this.name}' lost pages while mapped (${blocks * 512} of ${mapped} bytes allocated): another process punched a hole in it; stop using it and create it anew`,
        { segment: this.name },
      )
    }
  }

  /** Unmaps the segment. Views into it become empty; they never touch unmapped memory. */
  close(): void {
    if (!this.mapped) return
    this.mapped = false
    native.segmentUnmap(this.buffer)
  }
}

/** validate()'s verdict: 'initialising', 'not-shmq', 'version:…', 'corrupt:…', or the checked sizes. */
export type Verdict = string | { capacity: number; maxMessage: number }

/** What a segment file says about itself, read with pread: nothing is mapped. */
export interface SegmentProbe {
  size: number
  /** Allocated 512-byte blocks. */
  blocks: number
  uid: number
  /** The header bytes (all 1024 when the size can be a segment's, else none). */
  header: DataView
  verdict: Verdict
}

/** Reads and validates the header of an opened segment file without mapping it. */
export function probeFile(file: NativeSegmentFile): SegmentProbe {
  const { size, blocks, uid, regular } = file.stat()
  const empty = new DataView(new ArrayBuffer(0))
  // not a regular file (a FIFO, a socket): never a segment; size 0: created, not sized yet
  if (!regular) return { size, blocks, uid, header: empty, verdict: 'not-shmq' }
  if (size === 0) return { size, blocks, uid, header: empty, verdict: 'initialising' }
  if (L.checkCapacity(size - L.HEADER_BYTES) !== null) return { size, blocks, uid, header: empty, verdict: 'not-shmq' }
  // SYNC POINT: the state word is read on its own, first: when it says READY, every
  // header field the creator stored before it is in the read that follows
  const stateBytes = file.read(L.STATE_OFFSET, 4)
  const state = stateBytes.length === 4 ? new DataView(stateBytes.buffer, stateBytes.byteOffset, 4).getInt32(0, true) : 0
  const bytes = file.read(0, L.HEADER_BYTES)
  const header = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return { size, blocks, uid, header, verdict: Segment.validate(header, state, size) }
}

/** ERR_SHMQ_CORRUPT if some page of the file does not exist (never map such a file), else null. */
export function unallocated(probe: SegmentProbe, name: string): ShmqError | null {
  if (probe.blocks * 512 >= probe.size) return null
  return new ShmqError(
    'ERR_SHMQ_CORRUPT',
    `segment '${name}' has unallocated pages (${probe.blocks * 512} of ${probe.size} bytes): shmq reserves every page when it creates a segment, so another process made this file sparse or punched a hole in it, and touching such a page can crash with SIGBUS; unlink it and create it anew`,
    { segment: name },
  )
}

function leaseError(name: string, timeout: number, cause: ShmqError): ShmqError {
  return new ShmqError(
    'EAGAIN',
    `'/dev/shm/${name}' cannot be opened now: another process holds a file lease on it (fcntl F_SETLEASE)${timeout > 0 ? `, still after ${timeout} ms` : ''}; pass a longer { timeout }, or find the process that holds the lease`,
    { segment: name, syscall: cause.syscall, errno: cause.errno, cause },
  )
}

/**
 * Removes segment `name` and its wake-up FIFOs. Processes that have it open
 * keep working on their mapping; new opens fail with ENOENT.
 */
export function unlinkSegment(name: string): void {
  checkName(name)
  for (const which of ['consumer', 'producer'] as const) {
    try {
      native.doorbellUnlink(name, which)
    } catch {
      // already gone, or never made: the segment itself decides the result
    }
  }
  try {
    native.segmentUnlink(name)
  } catch (error) {
    throw fromNative(error, name)
  }
}
