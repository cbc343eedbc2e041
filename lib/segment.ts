/**
 * A mapped shmq segment: create, open, validate, attach to a participant
 * slot, close, unlink. Knows the segment header (lib/layout.ts); knows nothing
 * of frames.
 */
import { readdirSync } from 'node:fs'
import { fromNative, ShmqError } from './errors'
import { canFence, usePlainPublish } from './fence'
import * as L from './layout'
import { ownerPid, ownOwner } from './liveness'
import { type RingMemory, writeHeader } from './memory'
import { MAX_NAME_BYTES, native, type NativeDoorbell, type NativeDoorbellWriter, type NativeSegmentFile } from './native'


export interface CreateOptions {
  /** Ring size in bytes: a power of two from 1 KiB to 1 GiB. Default 1 MiB. */
  capacity?: number
  /** Largest message in bytes. Default and upper bound: capacity / 2 - 8. */
  maxMessage?: number
  /** File mode of the segment and its wake-up FIFOs. Default 0o600 (owner only). */
  mode?: number
  /**
   * 'one' (default): a single producer (SPSC). 'many': any number of producer
   * processes and threads at once, up to `maxProducers` (MPSC).
   */
  producers?: 'one' | 'many'
  /** With producers: 'many', how many may be attached at once: 1 to 255. Default 16. */
  maxProducers?: number
  /**
   * Stamp every message with its commit time, so the consumer keeps a latency
   * histogram (commit → read, ns): `stats().latency`, `shmq stat`. Costs 8
   * bytes per message and a clock read on each side (about 50 ns). SPSC and
   * MPSC channels (Producer.create, Consumer.create) only. Default false.
   */
  timestamps?: boolean
  /** @internal A work queue's roster (Producer.create with consumers: 'many'): an MPSC ring of kind 4, the workers its producers. */
  workQueue?: boolean
  /** @internal A request/response server's listener (Server.listen): an MPSC ring of kind 5, the clients its producers. */
  server?: boolean
  /** @internal A broadcast segment (Publisher.create): its policy and subscriber slots. */
  broadcast?: { policy: number; maxSubscribers: number }
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

export class Segment implements RingMemory {
  readonly name: string
  /** The mapping; detached (length 0) once closed. */
  readonly buffer: ArrayBuffer
  /** The whole segment as 32-bit words: header fields and frame headers. */
  readonly words: Int32Array
  /** The whole segment as bytes: payloads. */
  readonly bytes: Uint8Array
  /** The header's 64-bit words: the owner words. */
  private readonly owners: BigInt64Array
  /** The header as 64-bit words (the owner words' view): counters use it too. */
  readonly header64: BigInt64Array
  readonly layout: L.RingLayout
  readonly capacity: number
  readonly maxMessage: number
  /** The header allows plain publishing (L.INCOMPATIBLE_PLAIN_PUBLISH). */
  readonly plainPublishAllowed: boolean
  /** Messages carry commit stamps and the segment ends with a latency histogram (L.INCOMPATIBLE_TIMESTAMPS). */
  readonly timestamps: boolean
  /** Owner of the segment file; the wake-up FIFOs must have the same. */
  readonly ownerUid: number
  private mapped = true
  private isShrunk = false
  /** The owner word this endpoint wrote when it attached; 0n when not attached. */
  private attachedOwner = 0n
  /** The slot this endpoint attached to; -1 when none. */
  private attachedSlot = -1

  /** The verdict's fields are the values the opener validated: the header is read once. */
  private constructor(name: string, buffer: ArrayBuffer, ownerUid: number, header: ValidHeader) {
    this.name = name
    this.buffer = buffer
    this.words = new Int32Array(buffer)
    this.bytes = new Uint8Array(buffer)
    this.owners = new BigInt64Array(buffer, 0, header.layout.headerBytes / 8)
    this.header64 = this.owners
    this.layout = header.layout
    this.capacity = header.capacity
    this.maxMessage = header.maxMessage
    this.plainPublishAllowed = (header.incompatibleFlags & L.INCOMPATIBLE_PLAIN_PUBLISH) !== 0
    this.timestamps = (header.incompatibleFlags & L.INCOMPATIBLE_TIMESTAMPS) !== 0
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

    const producers = options.producers ?? 'one'
    const broadcast = options.broadcast
    if (producers !== 'one' && producers !== 'many') {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `producers must be 'one' or 'many' (got ${String(producers)})`, { segment: name })
    }
    if (producers === 'one' && options.maxProducers !== undefined) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', "maxProducers needs producers: 'many'", { segment: name })
    }
    const kind = broadcast !== undefined ? L.KIND_BROADCAST : options.workQueue ? L.KIND_WORK_QUEUE : options.server ? L.KIND_SERVER : producers === 'many' ? L.KIND_MPSC : L.KIND_SPSC
    const others = broadcast !== undefined ? broadcast.maxSubscribers : kind === L.KIND_SPSC ? 1 : options.maxProducers ?? L.DEFAULT_MAX_PRODUCERS
    const othersProblem = broadcast !== undefined ? L.checkMaxSubscribers(others) : L.checkMaxProducers(others)
    if (othersProblem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', othersProblem, { segment: name })
    const timestamps = options.timestamps ?? false
    if (typeof timestamps !== 'boolean') throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `timestamps must be true or false (got ${String(timestamps)})`, { segment: name })
    if (timestamps && kind !== L.KIND_SPSC && kind !== L.KIND_MPSC) {
      throw new ShmqError(
        'ERR_SHMQ_UNSUPPORTED',
        `timestamps are kept by SPSC and MPSC channels (Producer.create, Consumer.create), not by a ${L.ringLayout(kind, 2).kindName} segment: leave the option out`,
        { segment: name },
      )
    }
    if (timestamps && maxMessage < L.STAMP_BYTES) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `with timestamps, maxMessage must be at least ${L.STAMP_BYTES} (each message carries an 8-byte stamp)`, { segment: name })
    }
    const layout = L.ringLayout(kind, 1 + others)
    // plain publishing only where this process's parks can fence; a peer that cannot refuses to open
    const header: ValidHeader = {
      layout,
      capacity,
      maxMessage,
      incompatibleFlags: (usePlainPublish() ? L.INCOMPATIBLE_PLAIN_PUBLISH : 0) | (timestamps ? L.INCOMPATIBLE_TIMESTAMPS : 0),
      policy: broadcast?.policy ?? 0,
    }

    let buffer: ArrayBuffer
    try {
      buffer = native.segmentCreate(name, L.segmentBytesFor(layout.headerBytes, capacity, header.incompatibleFlags), mode)
    } catch (error) {
      throw fromNative(error, name)
    }
    const made: string[] = []
    try {
      for (const slot of layout.slots) {
        native.doorbellCreate(name, slot.fifo, mode)
        made.push(slot.fifo)
      }
    } catch (error) {
      for (const fifo of made) native.doorbellUnlink(name, fifo)
      native.segmentUnmap(buffer)
      native.segmentUnlink(name)
      throw fromNative(error, name)
    }

    // READY last: an opener that sees it sees every header field
    writeHeader(buffer, header)
    // files are owned by the effective uid
    return new Segment(name, buffer, process.geteuid?.() ?? 0, header)
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
          if ((problem.incompatibleFlags & L.INCOMPATIBLE_PLAIN_PUBLISH) !== 0 && !canFence()) {
            throw new ShmqError(
              'ERR_SHMQ_UNSUPPORTED',
              `segment '${name}' lets its peers publish with plain stores, which needs every parker to run membarrier(2), and this process cannot (seccomp, or an old kernel): create the segment with SHMQ_FENCED_PUBLISH=1 in its creator's environment`,
              { segment: name },
            )
          }
          let buffer: ArrayBuffer
          try {
            buffer = file.map(probe.size)
          } catch (error) {
            throw fromNative(error, name)
          }
          return new Segment(name, buffer, probe.uid, problem)
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
   * What is wrong with a segment of `size` bytes whose descriptor (the first
   * DESCRIPTOR_BYTES) is `descriptor`, read after `state`, the state word, was
   * read on its own; or its checked shape if it is a valid, ready one. Reads
   * each field once; trusts none of them. docs/LAYOUT.md lists these checks in
   * this order.
   */
  static validate(descriptor: DataView, state: number, size: number): Verdict {
    if (size < L.DESCRIPTOR_BYTES || descriptor.byteLength < L.DESCRIPTOR_BYTES) return 'not-shmq'
    const magic = descriptor.getInt32(L.MAGIC_OFFSET, true)
    if (state !== L.STATE_READY) return magic === 0 || magic === L.MAGIC ? 'initialising' : 'not-shmq'
    if (magic !== L.MAGIC) return 'not-shmq'
    const major = descriptor.getUint16(L.VERSION_OFFSET, true)
    const minor = descriptor.getUint16(L.VERSION_OFFSET + 2, true)
    if (major === 1) return `v1:${major}.${minor}`
    if (major !== L.VERSION_MAJOR) return `version:${major}.${minor}`
    const kind = descriptor.getInt32(L.KIND_OFFSET, true)
    if (kind !== L.KIND_SPSC && kind !== L.KIND_MPSC && kind !== L.KIND_BROADCAST && kind !== L.KIND_WORK_QUEUE && kind !== L.KIND_SERVER) return `kind:${kind >>> 0}`
    const unknownFlags = descriptor.getInt32(L.INCOMPATIBLE_FLAGS_OFFSET, true) & ~L.KNOWN_INCOMPATIBLE_FLAGS
    if (unknownFlags !== 0) return `flags:${unknownFlags >>> 0}`
    const slotCount = descriptor.getInt32(L.SLOT_COUNT_OFFSET, true)
    const slotProblem = L.checkSlotCount(kind, slotCount)
    if (slotProblem !== null) return `corrupt:${slotProblem}`
    const layout = L.ringLayout(kind, slotCount)
    const headerBytes = descriptor.getInt32(L.HEADER_BYTES_OFFSET, true)
    if (headerBytes !== layout.headerBytes) return `corrupt:header size ${headerBytes}, expected ${layout.headerBytes} for ${slotCount} slots`
    const capacity = descriptor.getInt32(L.CAPACITY_OFFSET, true)
    if (L.checkCapacity(capacity) !== null) return `corrupt:capacity ${capacity} is not a valid ring size`
    const incompatibleFlags = descriptor.getInt32(L.INCOMPATIBLE_FLAGS_OFFSET, true)
    const expectedSize = L.segmentBytesFor(headerBytes, capacity, incompatibleFlags)
    if (expectedSize !== size) return `corrupt:header says ${expectedSize} bytes, the segment has ${size}`
    if ((incompatibleFlags & L.INCOMPATIBLE_TIMESTAMPS) !== 0 && kind !== L.KIND_SPSC && kind !== L.KIND_MPSC) return `corrupt:timestamps on a ${layout.kindName} segment`
    const maxMessage = descriptor.getInt32(L.MAX_MESSAGE_OFFSET, true)
    if (L.checkMaxMessage(maxMessage, capacity) !== null) return `corrupt:max message ${maxMessage} does not fit a ${capacity}-byte ring`
    const policy = kind === L.KIND_BROADCAST ? descriptor.getInt32(L.POLICY_OFFSET, true) : 0
    if (policy !== L.POLICY_BACKPRESSURE && policy !== L.POLICY_LOSSY) return `policy:${policy >>> 0}`
    if ((incompatibleFlags & L.INCOMPATIBLE_TIMESTAMPS) !== 0 && maxMessage < L.STAMP_BYTES) return `corrupt:max message ${maxMessage} cannot hold a timestamp`
    return { layout, capacity, maxMessage, incompatibleFlags, policy }
  }

  /**
   * What is wrong with the positions in a valid segment's `header` (all its
   * header bytes), or null. Both may move while we look, so only their alignment
   * is checked here; their distance once attached (lib/endpoint.ts), when ours stands still.
   */
  static checkPositions(header: DataView, layout: L.RingLayout): string | null {
    const writePosition = header.getInt32(L.WRITE_POSITION_OFFSET, true)
    const readPosition = header.getInt32(layout.kind === L.KIND_BROADCAST ? L.OLDEST_POSITION_OFFSET : L.READ_POSITION_OFFSET, true)
    if ((writePosition & 7) !== 0 || (readPosition & 7) !== 0) {
      return `corrupt:positions ${writePosition >>> 0}/${readPosition >>> 0} are not 8-byte aligned`
    }
    return null
  }

  static problemError(problem: string, name: string): ShmqError {
    if (problem === 'not-shmq') {
      return new ShmqError('ERR_SHMQ_NOT_SHMQ', `'/dev/shm/${name}' is not a shmq segment: pick another name, or remove that file if it is yours`, { segment: name })
    }
    const detail = problem.slice(problem.indexOf(':') + 1)
    if (problem.startsWith('v1:')) {
      return new ShmqError(
        'ERR_SHMQ_VERSION',
        `segment '${name}' was made by shmq 0.1 (layout version ${detail}); this shmq reads layout version ${L.VERSION_MAJOR}: recreate it with this version once its 0.1 processes are gone, or use shmq 0.1 on every side`,
        { segment: name },
      )
    }
    if (problem.startsWith('version:')) {
      return new ShmqError(
        'ERR_SHMQ_VERSION',
        `segment '${name}' has layout version ${detail}; this shmq reads major version ${L.VERSION_MAJOR}: use the same shmq version on every side`,
        { segment: name },
      )
    }
    if (problem.startsWith('kind:')) {
      const later = L.LATER_KINDS[Number(detail)]
      return new ShmqError(
        'ERR_SHMQ_KIND',
        `segment '${name}' holds a ring of kind ${detail}${later === undefined ? '' : ` (${later})`}, which this shmq (layout ${L.VERSION_MAJOR}.${L.VERSION_MINOR}: SPSC, MPSC, broadcast, work queue and server) does not know: it was made by a newer shmq; use that version in this process too`,
        { segment: name },
      )
    }
    if (problem.startsWith('policy:')) {
      return new ShmqError(
        'ERR_SHMQ_VERSION',
        `segment '${name}' is a broadcast ring with policy ${detail}, which this shmq does not know: it was made by a newer shmq; use the same shmq version on every side`,
        { segment: name },
      )
    }
    if (problem.startsWith('flags:')) {
      const bits = []
      for (let bit = 0; bit < 32; bit++) if ((Number(detail) & 2 ** bit) !== 0) bits.push(bit)
      return new ShmqError(
        'ERR_SHMQ_VERSION',
        `segment '${name}' sets incompatible flag bit${bits.length > 1 ? 's' : ''} ${bits.join(', ')}, which this shmq does not know: it was made by a newer shmq; use the same shmq version on every side`,
        { segment: name },
      )
    }
    return new ShmqError('ERR_SHMQ_CORRUPT', `segment '${name}' is corrupt (${detail}): unlink it and create it anew`, { segment: name })
  }

  /** checkSize() found the file shrunk: nothing may touch the mapping any more. */
  get shrunk(): boolean {
    return this.isShrunk
  }

  get isClosed(): boolean {
    return !this.mapped
  }

  /**
   * Attaches this endpoint to slot `slot`: takes the slot's lock (see
   * lib/liveness.ts), then writes its owner word. Throws ERR_SHMQ_BUSY while
   * another endpoint, of this process or another, holds it; the slot of one that
   * died is free, whatever its owner word still says.
   */
  attach(slot: number): void {
    if (!this.tryAttach(slot)) {
      const what = slot === L.CONSUMER_SLOT ? 'consumer' : 'producer'
      const holder = this.owner(slot)
      const why = this.slotLock(slot, 'test')
        ? `pid ${ownerPid(holder)}${holder === ownOwner() ? ', this process' : ''}`
        : 'a process that can read the segment holds a read lock on its slot'
      throw new ShmqError('ERR_SHMQ_BUSY', `segment '${this.name}' already has a ${what} (${why}): a channel has one ${what}; close the other one first`, { segment: this.name })
    }
  }

  /**
   * Attaches this endpoint to the first free producer slot of an MPSC segment
   * (or subscriber slot of a broadcast one) and returns it. A slot whose dead
   * producer left a claim the consumer has not skipped yet (its claim record is
   * open) is not free. ERR_SHMQ_BUSY when none is.
   */
  attachProducer(): number {
    const broadcast = this.layout.kind === L.KIND_BROADCAST
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < this.layout.slotCount; slot++) {
      if (this.tryAttach(slot, !broadcast)) return slot
    }
    const others = this.layout.slotCount - 1
    throw new ShmqError(
      'ERR_SHMQ_BUSY',
      broadcast
        ? `segment '${this.name}' has all its ${others} subscriber slots taken by live subscribers: close one, or create the publisher with a larger maxSubscribers`
        : `segment '${this.name}' has all its ${others} producer slots taken (by live producers, or by dead ones whose last claim its consumer has not skipped yet): close a producer, or create the segment with a larger maxProducers`,
      { segment: this.name },
    )
  }

  private tryAttach(slot: number, needsClosedClaim = false): boolean {
    const record = this.layout.slots[slot]!
    if (!this.slotLock(slot, 'take')) return false
    if (needsClosedClaim && Atomics.load(this.words, L.word(record.claimBytes)) !== 0) {
      this.slotLock(slot, 'release')
      return false
    }
    const owner = ownOwner()
    this.attachedOwner = owner
    this.attachedSlot = slot
    // SYNC POINT: the owner word is written once the lock is ours; readers take it as a label only
    Atomics.store(this.owners, record.owner / 8, owner)
    // an endpoint never closed (its worker thread ended, it was collected) gives the word back; its lock goes with its fd
    native.segmentClearOnFinalize(this.buffer, record.owner, owner)
    return true
  }

  /** Gives up the slot this endpoint attached to, if any: the owner word first, then the lock. */
  detach(): void {
    if (!this.mapped || this.isShrunk || this.attachedOwner === 0n) return
    const slot = this.attachedSlot
    Atomics.compareExchange(this.owners, this.layout.slots[slot]!.owner / 8, this.attachedOwner, 0n)
    this.attachedOwner = 0n
    this.attachedSlot = -1
    this.slotLock(slot, 'release')
  }

  /** Clears slot `slot`'s owner word if it still names the dead `owner`, so waiting resumes for a successor. */
  reap(slot: number, owner: bigint): void {
    // SYNC POINT: a successor's attach store wins over this compare-exchange, or runs after it
    Atomics.compareExchange(this.owners, this.layout.slots[slot]!.owner / 8, owner, 0n)
  }

  /** Whether another endpoint, alive, holds slot `slot` (its lock; see lib/liveness.ts). */
  slotHeld(slot: number): boolean {
    return this.slotLock(slot, 'test')
  }

  private slotLock(slot: number, action: 'take' | 'release' | 'test'): boolean {
    try {
      return native.segmentRoleLock(this.buffer, this.layout.slots[slot]!.owner, action)
    } catch (error) {
      throw fromNative(error, this.name)
    }
  }

  /** The owner word of slot `slot` (see layout.ts), 0n when none. */
  owner(slot: number): bigint {
    return Atomics.load(this.owners, this.layout.slots[slot]!.owner / 8)
  }

  /** Opens the wake-up FIFO of slot `slot`, to wait on it. */
  openDoorbell(slot: number, onRing: () => void): NativeDoorbell {
    try {
      return new native.Doorbell(this.name, this.layout.slots[slot]!.fifo, this.ownerUid, onRing)
    } catch (error) {
      throw this.doorbellError(error, slot)
    }
  }

  /** Opens the wake-up FIFO of slot `slot` only to ring it: no event-loop handle. */
  openDoorbellWriter(slot: number): NativeDoorbellWriter {
    try {
      return new native.DoorbellWriter(this.name, this.layout.slots[slot]!.fifo, this.ownerUid)
    } catch (error) {
      throw this.doorbellError(error, slot)
    }
  }

  /** A missing FIFO says which one: the segment is there, one of its files is not. */
  private doorbellError(error: unknown, slot: number): ShmqError {
    const shmqError = fromNative(error, this.name)
    if (shmqError.code !== 'ENOENT') return shmqError
    const path = `/dev/shm/.shmq-${this.name}.wake-${this.layout.slots[slot]!.fifo}`
    return new ShmqError(
      'ENOENT',
      `segment '${this.name}' has lost its wake-up FIFO ${path} (removed by hand, or the segment's header was rewritten): unlink('${this.name}') and create it anew`,
      { segment: this.name, syscall: shmqError.syscall, errno: shmqError.errno, cause: shmqError },
    )
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

/** A segment header that passed validate(). */
export interface ValidHeader {
  layout: L.RingLayout
  capacity: number
  maxMessage: number
  incompatibleFlags: number
  /** Broadcast: L.POLICY_*; 0 for other kinds. */
  policy: number
}

/** validate()'s verdict: 'initialising', 'not-shmq', 'v1:…', 'version:…', 'kind:…', 'policy:…', 'flags:…', 'corrupt:…', or the checked header. */
export type Verdict = string | ValidHeader

/** What a segment file says about itself, read with pread: nothing is mapped. */
export interface SegmentProbe {
  size: number
  /** Allocated 512-byte blocks. */
  blocks: number
  uid: number
  /** The header bytes: all of them when the verdict is a valid header, else the descriptor or none. */
  header: DataView
  verdict: Verdict
}

function readView(file: NativeSegmentFile, offset: number, length: number): DataView {
  const bytes = file.read(offset, length)
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Reads and validates the header of an opened segment file without mapping it. */
export function probeFile(file: NativeSegmentFile): SegmentProbe {
  const { size, blocks, uid, regular } = file.stat()
  const empty = new DataView(new ArrayBuffer(0))
  // not a regular file (a FIFO, a socket): never a segment; size 0: created, not sized yet
  if (!regular) return { size, blocks, uid, header: empty, verdict: 'not-shmq' }
  if (size === 0) return { size, blocks, uid, header: empty, verdict: 'initialising' }
  if (size < L.DESCRIPTOR_BYTES) return { size, blocks, uid, header: empty, verdict: 'not-shmq' }
  // SYNC POINT: the state word is read on its own, first: when it says READY, every
  // header field the creator stored before it is in the reads that follow
  const stateView = readView(file, L.STATE_OFFSET, 4)
  const state = stateView.byteLength === 4 ? stateView.getInt32(0, true) : 0
  const descriptor = readView(file, 0, L.DESCRIPTOR_BYTES)
  const verdict = Segment.validate(descriptor, state, size)
  if (typeof verdict === 'string') return { size, blocks, uid, header: descriptor, verdict }
  const header = readView(file, 0, verdict.layout.headerBytes)
  if (header.byteLength !== verdict.layout.headerBytes) return { size, blocks, uid, header: descriptor, verdict: 'corrupt:the header was cut short while read' }
  return { size, blocks, uid, header, verdict: Segment.checkPositions(header, verdict.layout) ?? verdict }
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

/** The wake-up FIFO suffixes of `name` present in /dev/shm (any kind, any number of slots). */
export function fifoSuffixes(name: string, entries: readonly string[] = readdirSync('/dev/shm')): string[] {
  const prefix = `.shmq-${name}.wake-`
  return entries.filter((entry) => entry.startsWith(prefix) && /^[a-z][a-z0-9-]*$/.test(entry.slice(prefix.length))).map((entry) => entry.slice(prefix.length))
}

/**
 * Removes segment `name` and its wake-up FIFOs. Processes that have it open
 * keep working on their mapping; new opens fail with ENOENT.
 */
export function unlinkSegment(name: string): void {
  checkName(name)
  let suffixes: string[]
  try {
    suffixes = fifoSuffixes(name)
  } catch {
    suffixes = ['consumer', 'producer', 'publisher']
  }
  for (const suffix of suffixes) {
    try {
      native.doorbellUnlink(name, suffix)
    } catch {
      // already gone: the segment itself decides the result
    }
  }
  try {
    native.segmentUnlink(name)
  } catch (error) {
    throw fromNative(error, name)
  }
}
