/**
 * Work queues: one producer hands each message to exactly one of many worker
 * processes (`Producer.create(name, { consumers: 'many' })`, then
 * `Consumer.open(name)` in each worker).
 *
 * Design: per-worker SPSC rings, a dispatcher inside the producer, and a
 * roster. Measured on the 2-core development host against one shared ring
 * whose workers claim frames one by one (compare-exchange per frame), with 2
 * workers: 7.0-8.2 M msgs/s against 3.3-4.2 M; and a worker's ring of its own
 * lets a slow worker hold back only the messages already queued to it (the
 * dispatcher writes elsewhere while its ring is full), where in a shared ring
 * its unfinished frame holds the release point of everybody's room.
 *
 *   roster `name` (kind 4: run as an MPSC ring, lib/mpsc.ts): each worker is
 *     one of its producers (its slot's lock says it lives) and writes one JOIN
 *     message naming its ring, and a LEAVE message when it closes; the
 *     dispatcher is its consumer.
 *   ring `name.w<slot>-<token>` (an SPSC segment): the worker creates it and
 *     is its consumer; the dispatcher opens it as its producer.
 *
 * Delivery: a message written into a worker's ring is that worker's. A worker
 * that dies (its ring's consumer lock is free) leaves the messages it had not
 * released: the dispatcher takes its ring over as consumer, copies them out,
 * and hands them to the other workers with the frame's writer byte set to
 * L.WRITER_REDELIVERED (`consumer.lastRedelivered`, `consumer.redelivered`),
 * then removes the ring. At-least-once at the release boundary: a message the
 * dead worker was handling but had not released arrives again, marked; one it
 * released never does. A worker that closes leaves only messages it was never
 * handed: they go on unmarked.
 */
import { statSync } from 'node:fs'
import { removeAbandoned, SHM_DIRECTORY } from './admin'
import { Consumer, type ConsumerOpenOptions } from './consumer'
import { connect, type WaitOptions } from './endpoint'
import { ShmqError } from './errors'
import * as L from './layout'
import { MAX_NAME_BYTES } from './native'
import { Producer } from './producer'
import { uint8ArrayLength } from './frames'
import { DEFAULT_CLAIM_TIMEOUT_MS } from './mpsc'
import { type CreateOptions, unlinkSegment } from './segment'
import type { SpscWriter } from './spsc'

/** Roster message tags. */
const JOIN = 1
const LEAVE = 2
/** How often an idle dispatcher looks for workers that died (their messages go to the others), in ms. */
export const WORKER_CHECK_MS = 100
/** Writes between two looks at the roster for new workers (a drainRaw that finds nothing: two loads). */
const ROSTER_EVERY = 4096
/** Writes between two looks at whether each worker lives (a syscall per worker). */
const WORKER_CHECK_WRITES = 1 << 18
/**
 * Messages the dispatcher writes to one worker before it picks again (then the
 * one with the least unreleased). Batches keep each ring's lines on one core
 * for a while: with 2 workers on 2 cores, 1024 measured 11-15 M msgs/s where 64
 * gave 6-8 M (npm run bench, row wq2).
 */
const BATCH = 1024
/** Longest roster name: its workers' ring names add up to 16 characters. */
const MAX_QUEUE_NAME = MAX_NAME_BYTES - 16
const DEFAULT_MAX_CONSUMERS = 16

/** One worker attached to a work queue, as its producer sees it. */
export interface WorkerStats {
  /** The worker's roster slot. */
  slot: number
  /** Its ring's segment name. */
  ring: string
  pid: number | null
  alive: boolean
  /** Messages and payload bytes this producer wrote into its ring. */
  dispatched: number
  bytes: number
  /** Messages the worker read from its ring (its counters, at most 100 ms behind). */
  read: number
  /** Bytes written and not yet released by the worker: how far behind it is. */
  backlogBytes: number
  /** Times a write found its ring full. */
  full: number
}

/** WorkQueueProducer.stats(). */
export interface WorkQueueStats {
  kind: 'work queue'
  /** Each worker ring's size in bytes. */
  capacity: number
  /** Messages and bytes written into worker rings, workers gone included (redeliveries count again). */
  dispatched: number
  bytes: number
  full: number
  /** Messages handed to another worker after theirs died, marked redelivered. */
  redelivered: number
  /** Messages taken back from workers that closed, handed on unmarked. */
  handedOn: number
  /** Messages taken back and waiting for a worker with room. */
  backlog: number
  workers: WorkerStats[]
}

export interface WorkQueueCreateOptions extends WaitOptions {
  consumers: 'many'
  /** Each worker's ring, in bytes: a power of two from 1 KiB to 1 GiB. Default 1 MiB. */
  capacity?: number
  /** Largest message in bytes. Default and upper bound: capacity / 2 - 8. */
  maxMessage?: number
  /** Workers attached at once: 1 to 255. Default 16. */
  maxConsumers?: number
  /** File mode of the segments and FIFOs. Default 0o600. */
  mode?: number
}

function encodeText(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

/** The name of the ring of the worker in roster slot `slot` that joined with `token`. */
function ringNameOf(queue: string, slot: number, token: string): string {
  return `${queue}.w${slot}-${token}`
}

/** Longest JOIN or LEAVE message: "<slot> <token>". */
const ROSTER_MESSAGE_BYTES = 12

/** The dispatcher's side of one worker's ring: an SPSC producer that can mark what it writes. */
class WorkerRing extends Producer {
  static openRing(name: string): WorkerRing {
    return new WorkerRing(connect('producer', false, name, { timeout: 0 }))
  }

  /** tryWrite(), the frame marked redelivered when `redelivered`. */
  tryWriteMarked(message: Uint8Array, type: number, redelivered: boolean): boolean {
    if (!redelivered) return this.tryWrite(message, type)
    const writer = this.ring as SpscWriter
    writer.messageWord = L.frameTypeWord(L.FRAME_MESSAGE, 0, L.WRITER_REDELIVERED)
    try {
      return this.tryWrite(message, type)
    } finally {
      writer.messageWord = L.frameTypeWord(L.FRAME_MESSAGE, 0, L.FIRST_PRODUCER_SLOT)
    }
  }

  /** Bytes written and not yet released by the worker: how far behind it is. */
  get backlogBytes(): number {
    return (this.ring as SpscWriter).fill
  }

  /** Resolves once there is room for `length` bytes; rejects if the worker died with the ring full. */
  room(length: number): Promise<boolean> {
    return this.waitForRoom(length)
  }
}

/** The dispatcher's reading side of the roster (an MPSC consumer), and of a dead worker's ring. */
class RingReader extends Consumer {
  static of(endpoint: ReturnType<typeof connect>): RingReader {
    return new RingReader(endpoint, DEFAULT_CLAIM_TIMEOUT_MS)
  }
}

interface Worker {
  slot: number
  ringName: string
  ring: WorkerRing
  /** Left by close(): what is still in its ring was never handed out. */
  leaving: boolean
  /** A wait for room in its ring, while one runs. */
  roomWait: Promise<unknown> | null
}

interface Pending {
  bytes: Uint8Array
  type: number
  redelivered: boolean
}

/**
 * The producer of a work queue: each message it writes goes to one worker.
 * The write API of a Producer: tryWrite, write (in call order), tryClaim,
 * claim, commit, abort, close.
 */
export class WorkQueueProducer {
  readonly name: string
  private readonly roster: RingReader
  private readonly workers: Worker[] = []
  /** Messages taken back from workers that died or left, not yet handed on (copies, in order). */
  private readonly pending: Pending[] = []
  private next = 0
  private inBatch = 0
  /** tryWrite() calls, for lookAround(). */
  private writes = 0
  /** The worker whose ring holds the claimed view, or null. */
  private claimedBy: Worker | null = null
  private isClosed = false
  private checkTimer: NodeJS.Timeout | null = null
  private rosterRead: Promise<unknown> | null = null
  private writeQueue: Promise<unknown> = Promise.resolve()
  private waitingWrites = 0
  private readonly maxMessageBytes: number
  private readonly ringCapacity: number
  /** Messages handed on to another worker after theirs died (marked redelivered). */
  redelivered = 0
  /** Messages taken back from workers that closed, handed on unmarked. */
  handedOn = 0
  /** What the rings of workers gone counted, for stats() totals. */
  private readonly retired = { dispatched: 0, bytes: 0, full: 0 }

  private constructor(roster: RingReader) {
    this.roster = roster
    this.name = roster.name
    this.maxMessageBytes = roster.maxMessage
    this.ringCapacity = roster.capacity
    this.checkTimer = setInterval(() => this.checkWorkers(), WORKER_CHECK_MS)
    this.checkTimer.unref()
  }

  /** Creates work queue `name` (it must not exist): its roster segment; workers join with Consumer.open(name). */
  static create(name: string, options: WorkQueueCreateOptions): WorkQueueProducer {
    if (typeof name === 'string' && name.length > MAX_QUEUE_NAME) {
      throw new ShmqError('ERR_SHMQ_INVALID_NAME', `a work queue's name has at most ${MAX_QUEUE_NAME} characters (its workers' rings add to it)`, { segment: name })
    }
    if (options.maxMessage !== undefined && options.maxMessage < ROSTER_MESSAGE_BYTES) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `a work queue's maxMessage is at least ${ROSTER_MESSAGE_BYTES} bytes (workers announce themselves in messages that size)`, { segment: name })
    }
    const maxConsumers = options.maxConsumers ?? DEFAULT_MAX_CONSUMERS
    const problem = L.checkMaxProducers(maxConsumers)
    if (problem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', problem.replace('maxProducers', 'maxConsumers'), { segment: name })
    // the roster's capacity and maxMessage are each worker ring's: workers read them there
    const rosterOptions: CreateOptions & WaitOptions = {
      capacity: options.capacity,
      maxMessage: options.maxMessage,
      mode: options.mode,
      spin: options.spin,
      producers: 'many',
      maxProducers: maxConsumers,
      workQueue: true,
      // refused by Segment.create: workers keep no histogram
      timestamps: (options as CreateOptions).timestamps,
    }
    return new WorkQueueProducer(RingReader.of(connect('consumer', true, name, rosterOptions)))
  }

  get maxMessage(): number {
    return this.maxMessageBytes
  }

  /** Each worker's ring size in bytes. */
  get capacity(): number {
    return this.ringCapacity
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** Workers attached now (a worker that joined is counted once the producer read its announcement). */
  get consumers(): number {
    return this.workers.length
  }

  /** Messages taken back from workers that died or left and not yet handed on to another (no worker had room). */
  get backlog(): number {
    return this.pending.length
  }

  /**
   * What the queue has dispatched: per worker attached now (from its ring's
   * counters: what this producer wrote into it and what the worker read),
   * totals that include workers gone, redeliveries and the backlog.
   */
  stats(): WorkQueueStats {
    this.checkOpen()
    const workers: WorkerStats[] = this.workers.map((worker) => {
      const ring = worker.ring.stats()
      const reader = ring.slots.find((slot) => slot.role === 'consumer')
      return {
        slot: worker.slot,
        ring: worker.ringName,
        pid: reader?.pid ?? null,
        alive: reader?.alive ?? false,
        dispatched: ring.written.messages,
        bytes: ring.written.bytes,
        read: ring.read.messages,
        backlogBytes: ring.fill,
        full: ring.written.full,
      }
    })
    const sum = (key: 'dispatched' | 'bytes' | 'full'): number => workers.reduce((total, worker) => total + worker[key], this.retired[key])
    return {
      kind: 'work queue',
      capacity: this.ringCapacity,
      dispatched: sum('dispatched'),
      bytes: sum('bytes'),
      full: sum('full'),
      redelivered: this.redelivered,
      handedOn: this.handedOn,
      backlog: this.pending.length,
      workers,
    }
  }

  private checkOpen(): void {
    if (this.isClosed) throw new ShmqError('ERR_SHMQ_CLOSED', `the work queue producer of '${this.name}' is closed`, { segment: this.name })
  }

  /** Refuses what no worker's ring could take, before any worker is asked (there may be none yet). */
  private checkMessage(message: Uint8Array, type: number): void {
    const length = uint8ArrayLength(message)
    if (length < 0) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'message must be a Uint8Array or Buffer (encode strings with Buffer.from or TextEncoder)', { segment: this.name })
    }
    if (length > this.maxMessageBytes) {
      throw new ShmqError('ERR_SHMQ_TOO_LARGE', `message of ${length} bytes exceeds the work queue's maxMessage of ${this.maxMessageBytes}: split it, or create the queue with a larger capacity`, { segment: this.name })
    }
    if ((type & 0xffff) !== type) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `message type must be an integer from 0 to ${L.MAX_MESSAGE_TYPE} (got ${String(type)})`, { segment: this.name })
  }

  /** Reads JOIN and LEAVE messages from the roster. */
  private readRoster(): void {
    if (this.rosterRead !== null || this.roster.closed) return
    this.roster.drainRaw((bytes, offset, length, type) => this.onRoster(bytes.subarray(offset, offset + length), type))
  }

  private onRoster(message: Uint8Array, type: number): void {
    // "<slot> <token>": the ring is `${name}.w<slot>-<token>`
    const match = /^(\d{1,3}) ([0-9a-z]{1,8})$/.exec(new TextDecoder().decode(message))
    if (match === null) return
    const slot = Number(match[1])
    const ringName = ringNameOf(this.name, slot, match[2]!)
    if (type === JOIN) {
      // a ring that cannot be opened: its worker died (or the announcement is forged); nothing of it to take back
      let ring: WorkerRing
      try {
        ring = WorkerRing.openRing(ringName)
      } catch {
        return
      }
      this.workers.push({ slot, ringName, ring, leaving: false, roomWait: null })
    } else if (type === LEAVE) {
      const worker = this.workers.find((w) => w.ringName === ringName)
      if (worker !== undefined) worker.leaving = true
    }
  }

  /** Every ROSTER_EVERY writes: new workers; every WORKER_CHECK_WRITES: dead ones too. */
  private lookAround(): void {
    if ((this.writes & (WORKER_CHECK_WRITES - 1)) === 0) this.checkWorkers()
    else this.readRoster()
  }

  /** Takes back the messages of workers that died or left and hands them on. True if any worker was removed. */
  private checkWorkers(): boolean {
    if (this.isClosed) return false
    this.readRoster()
    let removed = false
    for (let i = this.workers.length - 1; i >= 0; i--) {
      const worker = this.workers[i]!
      // the worker holding our open claim is looked at once it is committed or aborted
      if (worker === this.claimedBy || worker.ring.peer?.alive === true) continue
      this.workers.splice(i, 1)
      this.takeBack(worker)
      removed = true
    }
    // also when nothing changed: copies taken back earlier wait for room, and an idle producer makes no write that would hand them on
    if ((removed || this.pending.length > 0) && this.claimedBy === null) this.flushPending()
    return removed
  }

  /** Copies what is left in a gone worker's ring into `pending`, then removes the ring. */
  private takeBack(worker: Worker): void {
    // a LEAVE written just before it went
    this.readRoster()
    const redelivered = !worker.leaving
    if (!worker.ring.closed) {
      const counted = worker.ring.stats().written
      this.retired.dispatched += counted.messages
      this.retired.bytes += counted.bytes
      this.retired.full += counted.full
    }
    worker.ring.close()
    try {
      const reader = RingReader.of(connect('consumer', false, worker.ringName, { timeout: 0 }))
      try {
        reader.drainRaw((bytes, offset, length, type) => {
          // a copy that came marked stays marked: a worker before this one may have handled it
          this.pending.push({ bytes: bytes.slice(offset, offset + length), type, redelivered: redelivered || reader.lastRedelivered })
        })
      } finally {
        reader.close()
      }
    } catch {
      // taken by another consumer meanwhile, or gone: not ours to hand on
    }
    try {
      unlinkSegment(worker.ringName)
    } catch {
      // already removed
    }
  }

  /** Hands pending messages on while workers have room; true when none is left. */
  private flushPending(): boolean {
    while (this.pending.length > 0) {
      const message = this.pending[0]!
      if (!this.dispatch(message.bytes, message.type, message.redelivered)) return false
      this.pending.shift()
      if (message.redelivered) this.redelivered++
      else this.handedOn++
    }
    return true
  }

  /** Writes to the current worker, or the next with room; false when every ring is full (or there is no worker). */
  private dispatch(message: Uint8Array, type: number, redelivered: boolean): boolean {
    return this.offer((ring) => ring.tryWriteMarked(message, type, redelivered)) !== null
  }

  /**
   * Runs `attempt` (a write or a claim) on the current worker's ring, or the
   * next one's that takes it; the worker that took it, or null when none did.
   */
  private offer(attempt: (ring: WorkerRing) => boolean): Worker | null {
    const workers = this.workers
    const count = workers.length
    if (count === 0) return null
    if (this.inBatch >= BATCH) {
      // a batch done: the next goes to the worker furthest ahead (least unreleased), so a slow one gets less
      this.inBatch = 0
      let best = 0
      for (let i = 1; i < count; i++) if (workers[i]!.ring.backlogBytes < workers[best]!.ring.backlogBytes) best = i
      this.next = best
    }
    for (let tried = 0; tried < count; tried++) {
      const worker = workers[(this.next + tried) % count]!
      if (worker.roomWait !== null) continue
      if (attempt(worker.ring)) {
        if (tried !== 0) {
          this.next += tried
          this.inBatch = 0
        }
        this.inBatch++
        return worker
      }
    }
    return null
  }

  private checkNoClaim(): void {
    if (this.claimedBy !== null) {
      throw new ShmqError('ERR_SHMQ_PENDING', 'a claimed view is waiting for commit() or abort(): finish it before writing again', { segment: this.name })
    }
  }

  /**
   * A view of `length` bytes inside one worker's ring to fill in place, or
   * null when no worker has room; nothing reaches the worker until commit(),
   * abort() drops it. The view must not be used after either.
   */
  tryClaim(length: number): Uint8Array | null {
    this.checkOpen()
    this.checkNoClaim()
    this.checkClaimLength(length)
    if (this.waitingWrites !== 0) return null
    return this.claimNow(length)
  }

  private claimNow(length: number): Uint8Array | null {
    if (this.pending.length > 0 && !this.flushPending()) return null
    let view: Uint8Array | null = null
    this.claimedBy = this.offer((ring) => (view = ring.tryClaim(length)) !== null)
    return view
  }

  /** tryClaim(), waiting on the event loop for room (after the writes queued before it). */
  claim(length: number): Promise<Uint8Array> {
    try {
      const view = this.tryClaim(length)
      if (view !== null) return Promise.resolve(view)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.queue(() => this.claimNow(length), length)
  }

  /** Publishes the claimed view to its worker; with `length`, only its first bytes; with `type`, under that tag. */
  commit(length?: number, type = 0): void {
    this.checkOpen()
    const worker = this.claimedBy
    if (worker === null) throw new ShmqError('ERR_SHMQ_PENDING', 'commit() without a claimed view: call tryClaim() or claim() first', { segment: this.name })
    this.claimedBy = null
    worker.ring.commit(length, type)
  }

  /** Drops the claimed view without sending anything. */
  abort(): void {
    const worker = this.claimedBy
    this.claimedBy = null
    worker?.ring.abort()
  }

  private checkClaimLength(length: number): void {
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `length must be a non-negative integer (got ${String(length)})`, { segment: this.name })
    }
    if (length > this.maxMessageBytes) {
      throw new ShmqError('ERR_SHMQ_TOO_LARGE', `a claim of ${length} bytes exceeds the work queue's maxMessage of ${this.maxMessageBytes}`, { segment: this.name })
    }
  }

  /**
   * Copies `message` to one worker's ring, with message type tag `type`;
   * false, writing nothing, when every worker's ring is full, no worker is
   * attached, or earlier write() calls still wait.
   */
  tryWrite(message: Uint8Array, type = 0): boolean {
    this.checkOpen()
    this.checkMessage(message, type)
    this.checkNoClaim()
    if (this.waitingWrites !== 0) return false
    // a producer writing in a loop that never yields never runs its timer: look here too
    if ((++this.writes & (ROSTER_EVERY - 1)) === 0) this.lookAround()
    if (this.pending.length > 0 && !this.flushPending()) return false
    if (this.dispatch(message, type, false)) return true
    // none with room: look at the roster for new workers
    this.readRoster()
    return this.dispatch(message, type, false)
  }

  /** tryWrite(), waiting on the event loop while no worker has room or none is attached. Writes complete in call order. */
  write(message: Uint8Array, type = 0): Promise<void> {
    try {
      if (this.tryWrite(message, type)) return Promise.resolve()
    } catch (error) {
      return Promise.reject(error)
    }
    return this.queue(
      () => ((this.pending.length === 0 || this.flushPending()) && this.dispatch(message, type, false) ? true : null),
      uint8ArrayLength(message),
    ).then(() => undefined)
  }

  /**
   * Runs `attempt` (a result, or null when no worker has room) once every call
   * queued before it is done, waiting for room between attempts.
   */
  private queue<T>(attempt: () => T | null, length: number): Promise<T> {
    this.waitingWrites++
    const run = async (): Promise<T> => {
      try {
        await this.writeQueue
        for (;;) {
          this.checkOpen()
          this.checkNoClaim()
          const result = attempt()
          if (result !== null) return result
          await this.waitForRoom(length)
          this.checkWorkers()
        }
      } finally {
        this.waitingWrites--
      }
    }
    const result = run()
    this.writeQueue = result.catch(() => undefined)
    return result
  }

  /** Waits until some worker's ring has room, a worker joins, or WORKER_CHECK_MS passes (a death to act on). */
  private waitForRoom(length: number): Promise<unknown> {
    const waits: Array<Promise<unknown>> = []
    for (const worker of this.workers) {
      worker.roomWait ??= worker.ring.room(Math.min(length, this.maxMessageBytes)).then(
        () => {
          worker.roomWait = null
        },
        () => {
          worker.roomWait = null
        },
      )
      waits.push(worker.roomWait)
    }
    if (this.rosterRead === null) {
      this.readRoster()
      this.rosterRead = this.roster.read().then(
        (message) => {
          this.rosterRead = null
          if (message !== null) this.onRoster(message.slice(), this.roster.lastType)
        },
        () => {
          this.rosterRead = null
        },
      )
    }
    waits.push(this.rosterRead)
    let timer: NodeJS.Timeout | undefined
    waits.push(new Promise((resolve) => (timer = setTimeout(resolve, WORKER_CHECK_MS))))
    return Promise.race(waits).finally(() => clearTimeout(timer))
  }

  /**
   * Ends the stream for every worker (each reads what its ring holds, then
   * sees the end) and detaches. Messages taken back from dead workers and not
   * yet handed on are dropped. Idempotent.
   */
  close(): void {
    if (this.isClosed) return
    this.isClosed = true
    if (this.checkTimer !== null) clearInterval(this.checkTimer)
    for (const worker of this.workers.splice(0)) worker.ring.close()
    this.roster.close()
    this.removeOrphanRings()
  }

  /**
   * Removes rings of this queue that no worker reads: made by a worker that
   * died before its announcement was read (or before it wrote it).
   */
  private removeOrphanRings(): void {
    const prefix = `${this.name}.w`
    removeAbandoned(
      (entry) => entry.startsWith(prefix) && /^\d+-[0-9a-z]+$/.test(entry.slice(prefix.length)),
      (report) => report.consumer?.alive !== true,
    )
  }
}

/**
 * A worker of a work queue: a Consumer of its own ring (every read API, and
 * `redelivered`/`lastRedelivered`). Opened by Consumer.open on a work queue.
 */
export class WorkQueueConsumer extends Consumer {
  private readonly rosterSide: RosterWriter
  private readonly ringName: string

  private readonly token: string

  private constructor(endpoint: ReturnType<typeof connect>, roster: RosterWriter, ringName: string, token: string) {
    super(endpoint, 0)
    this.rosterSide = roster
    this.ringName = ringName
    this.token = token
  }

  /** Joins work queue `name`: takes a roster slot, makes its ring, and announces it. */
  static join(name: string, options: ConsumerOpenOptions): WorkQueueConsumer {
    const roster = RosterWriter.attach(name, options)
    let ring: ReturnType<typeof connect> | null = null
    let ringName = ''
    try {
      if (roster.peer?.alive !== true) {
        throw new ShmqError('ERR_SHMQ_PEER_GONE', `work queue '${name}' has no producer (it closed or died): create it anew with Producer.create('${name}', { consumers: 'many' })`, { segment: name })
      }
      const token = ((Math.random() * 0x1_0000_0000) >>> 0).toString(36)
      ringName = ringNameOf(name, roster.slot, token)
      // the ring gets the roster's file mode: whoever may join the queue may read its rings
      const mode = statSync(`${SHM_DIRECTORY}/${name}`).mode & 0o777
      ring = connect('consumer', true, ringName, { capacity: roster.capacity, maxMessage: roster.maxMessage, mode, spin: options.spin })
      if (!roster.tryWrite(encodeText(`${roster.slot} ${token}`), JOIN)) {
        throw new ShmqError('ERR_SHMQ_BUSY', `the roster of work queue '${name}' is full: its producer is not reading it (is it alive?)`, { segment: name })
      }
      return new WorkQueueConsumer(ring, roster, ringName, token)
    } catch (error) {
      if (ring !== null) {
        ring.waiter.close()
        ring.segment.detach()
        ring.segment.close()
        unlinkSegment(ringName)
      }
      roster.close()
      throw error
    }
  }

  /**
   * Leaves the queue: what this worker was handed and released is done; what
   * its ring still holds goes to the other workers. Idempotent.
   */
  override close(): void {
    if (this.closed) return
    // The producer ends a worker's ring only when it is done with it (it closed, or took the ring
    // back); while it lives and has not, the ring is its to take back (it may not have opened it yet)
    const producerWaits = !this.ended && (this.peer?.alive === true || this.rosterSide.peer?.alive === true)
    if (!this.rosterSide.closed) {
      try {
        this.rosterSide.tryWrite(encodeText(`${this.rosterSide.slot} ${this.token}`), LEAVE)
      } catch {
        // the roster refused it (full, revoked): the producer then takes our ring back as a death's, marked
      }
    }
    super.close()
    this.rosterSide.close()
    // no producer to take back what is left: the ring is ours to remove
    if (!producerWaits) {
      try {
        unlinkSegment(this.ringName)
      } catch {
        // already removed
      }
    }
  }
}

/** A worker's side of the roster: one of its MPSC producers. */
class RosterWriter extends Producer {
  readonly slot: number

  private constructor(endpoint: ReturnType<typeof connect>) {
    super(endpoint)
    this.slot = endpoint.slot
  }

  static attach(name: string, options: ConsumerOpenOptions): RosterWriter {
    return new RosterWriter(connect('producer', false, name, { timeout: options.timeout, spin: options.spin }))
  }
}
