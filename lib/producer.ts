/**
 * Producer: the writing end of a channel. One per SPSC segment at a time; up to
 * maxProducers at once, from any processes and threads, on an MPSC segment.
 */
import { ShmqError } from './errors'
import { type Endpoint, connect, type WaitOptions } from './endpoint'
import * as L from './layout'
import { publishMode } from './fence'
import { checkMessageType, uint8ArrayLength } from './frames'
import { BroadcastWriter } from './broadcast'
import { MpscWriter } from './mpsc'
import type { RingWriter } from './ring'
import { SpscWriter } from './spsc'
import { StampedWriter } from './timestamps'
import { type EncodeOptions, type Fields, type MessageSchema, tryWriteMessage, type Values, writeMessage } from './format/channel'
import type { CreateOptions, OpenOptions, Segment } from './segment'
import { type ChannelStats, endpointStats } from './stats'
import { followCounts, unfollowCounts } from './counters'
import type { Waiter } from './waiter'
import type { WorkQueueCreateOptions, WorkQueueProducer } from './work-queue'

export type ProducerCreateOptions = CreateOptions & WaitOptions
export type ProducerOpenOptions = OpenOptions & WaitOptions

const RESOLVED: Promise<void> = Promise.resolve()

/** Room a producer that found the ring full waits for, beyond its own message, while it spins (see spinForRoom). */
const REFILL_BATCH_BYTES = 4096

export class Producer {
  /** The segment's name. */
  readonly name: string
  private readonly segment: Segment
  private readonly waiter: Waiter
  /** The slot this endpoint holds (its own lock reads as free to itself). */
  private readonly ownSlot: number
  protected readonly ring: RingWriter
  /** The ring protocol itself, under the timestamps decorator when there is one: end of stream, wake-ups. */
  private readonly protocol: RingWriter
  /** Many producers share the segment (MPSC). */
  private readonly many: boolean
  private isClosed = false
  /** write()/claim() calls waiting for room, in order; tryWrite() yields to them. */
  private waitingWrites = 0
  /** Settles after the last queued write; never rejects. */
  private writeQueue: Promise<unknown> = RESOLVED

  /** @internal `subscriberTimeout`: broadcast (Publisher) only. */
  protected constructor(endpoint: Endpoint, subscriberTimeout?: number) {
    this.segment = endpoint.segment
    this.waiter = endpoint.waiter
    this.ownSlot = endpoint.slot
    this.name = this.segment.name
    const segment = this.segment
    const mode = publishMode(segment.plainPublishAllowed)
    const kind = segment.layout.kind
    this.many = L.runsMpsc(kind)
    let ring: RingWriter
    if (kind === L.KIND_BROADCAST) {
      ring = new BroadcastWriter(segment, this.waiter.wakeProducers, mode, { slotAlive: (slot) => segment.slotHeld(slot), subscriberTimeout })
    } else ring = this.many ? new MpscWriter(segment, endpoint.slot, this.waiter.wakePeer, mode) : new SpscWriter(segment, this.waiter.wakePeer, mode)
    this.protocol = ring
    this.ring = segment.timestamps ? new StampedWriter(ring, segment) : ring
    this.refillBatch = Math.min(REFILL_BATCH_BYTES, this.segment.capacity / 4)
    // an idle producer's counts are exact: stored whenever it parks
    this.waiter.counts = this.ring.counts
    followCounts(this)
  }

  /**
   * Creates segment `name` (it must not exist) and becomes its producer. With
   * `{ consumers: 'many' }`, a work queue: each message goes to one of the
   * workers that join with Consumer.open(name) (lib/work-queue.ts).
   */
  static create(name: string, options: WorkQueueCreateOptions): WorkQueueProducer
  static create(name: string, options?: ProducerCreateOptions): Producer
  static create(name: string, options: ProducerCreateOptions | WorkQueueCreateOptions = {}): Producer | WorkQueueProducer {
    if (options !== null && typeof options === 'object' && 'consumers' in options && options.consumers !== undefined) {
      if (options.consumers !== 'many' && options.consumers !== 'one') {
        throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `consumers must be 'one' or 'many' (got ${String(options.consumers)})`, { segment: name })
      }
      if (options.consumers === 'many') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const workQueue = require('./work-queue') as typeof import('./work-queue')
        return workQueue.WorkQueueProducer.create(name, options as WorkQueueCreateOptions)
      }
    }
    return new Producer(connect('producer', true, name, options as ProducerCreateOptions))
  }

  /** Opens existing segment `name` and becomes its producer. */
  static open(name: string, options: ProducerOpenOptions = {}): Producer {
    return new Producer(
      connect('producer', false, name, options, (segment) => {
        if (segment.layout.kind === L.KIND_BROADCAST) {
          throw new ShmqError('ERR_SHMQ_KIND', `segment '${name}' is a broadcast ring: only its Publisher writes to it (Publisher.create), subscribers read it with Subscriber.open('${name}')`, { segment: name })
        }
        if (segment.layout.kind === L.KIND_WORK_QUEUE) {
          throw new ShmqError('ERR_SHMQ_KIND', `segment '${name}' is a work queue: only the producer that created it writes to it; workers join it with Consumer.open('${name}')`, { segment: name })
        }
        if (segment.layout.kind === L.KIND_SERVER) {
          throw new ShmqError('ERR_SHMQ_KIND', `segment '${name}' is a request/response server's listener: send requests with Client.connect('${name}')`, { segment: name })
        }
        if (Atomics.load(segment.words, L.word(L.END_OF_STREAM_OFFSET)) !== 0) {
          throw new ShmqError('ERR_SHMQ_CLOSED', `the stream of segment '${name}' was ended by a producer: unlink it and create a new one`, { segment: name })
        }
      }),
    )
  }

  /** Largest message this channel accepts, in bytes. */
  get maxMessage(): number {
    return this.ring.maxMessage
  }

  /** Ring size in bytes. */
  get capacity(): number {
    return this.segment.capacity
  }

  get closed(): boolean {
    return this.isClosed
  }

  private checkOpen(): void {
    if (this.isClosed) throw new ShmqError('ERR_SHMQ_CLOSED', `producer of '${this.name}' is closed: open a new one to write`, { segment: this.name })
  }

  /** The intrinsic byte length of `message` (never its `length` property); throws unless it is a Uint8Array. */
  private messageLength(message: Uint8Array): number {
    const length = uint8ArrayLength(message)
    if (length < 0) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'message must be a Uint8Array or Buffer (encode strings with Buffer.from or TextEncoder)', { segment: this.name })
    }
    return length
  }

  private checkNoClaim(): void {
    if (this.ring.hasClaim) {
      throw new ShmqError('ERR_SHMQ_PENDING', 'a claimed view is waiting for commit() or abort(): finish it before writing again', { segment: this.name })
    }
  }

  private checkType(type: unknown): asserts type is number {
    checkMessageType(this.segment, type)
  }

  private checkLength(length: unknown): asserts length is number {
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `length must be a non-negative integer (got ${String(length)})`, { segment: this.name })
    }
    this.ring.checkLength(length)
  }

  /**
   * Copies `message` into the ring as one message, with message type tag
   * `type` (0 to 65535, default 0: the consumer reads it as `lastType` or in a
   * drainRaw handler). Returns false, writing nothing, when the ring is full
   * (or earlier write() calls still wait).
   */
  tryWrite(message: Uint8Array, type = 0): boolean {
    if (this.isClosed) this.checkOpen()
    const length = this.messageLength(message)
    if ((type & 0xffff) !== type) this.checkType(type)
    if (this.ring.hasClaim) this.checkNoClaim()
    if (this.waitingWrites !== 0) return false
    return this.ring.tryWrite(message, length, type)
  }

  /**
   * Copies `message` into the ring, waiting on the event loop while it is full
   * (backpressure). Writes complete in call order. If the promise is pending,
   * do not modify `message` until it settles. Rejects with ERR_SHMQ_PEER_GONE
   * when the consumer died while the ring is full. `type`: as in tryWrite().
   */
  write(message: Uint8Array, type = 0): Promise<void> {
    let length: number
    try {
      this.checkOpen()
      length = this.messageLength(message)
      if ((type & 0xffff) !== type) this.checkType(type)
      this.checkNoClaim()
      if (this.waitingWrites === 0 && (this.ring.tryWrite(message, length, type) || (this.spinForRoom(length) && this.ring.tryWrite(message, length, type)))) {
        return RESOLVED
      }
    } catch (error) {
      return Promise.reject(error)
    }
    return this.enqueue(() => {
      // the room waited for is the room of `length` bytes: a message resized meanwhile is refused
      if (uint8ArrayLength(message) !== length) {
        throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'message was resized while write() waited for room: do not modify it until the promise settles', { segment: this.name })
      }
      return this.ring.tryWrite(message, length, type) ? true : null
    }, length).then(() => undefined)
  }

  /**
   * A view of `length` bytes inside the ring to fill in place, or null when
   * full. Nothing is visible to the consumer until commit(); abort() drops it.
   * The view must not be used after commit() or abort().
   */
  tryClaim(length: number): Uint8Array | null {
    this.checkOpen()
    this.checkLength(length)
    this.checkNoClaim()
    if (this.waitingWrites !== 0) return null
    return this.ring.tryClaim(length)
  }

  /**
   * tryClaim() that allocates nothing: the claimed message is
   * `producer.bytes[offset, offset + length)`; returns that offset, or -1 when
   * full. The same rules as tryClaim(): fill it, then commit() or abort().
   */
  tryClaimRaw(length: number): number {
    this.checkOpen()
    this.checkLength(length)
    this.checkNoClaim()
    if (this.waitingWrites !== 0) return -1
    return this.ring.tryClaimRaw(length)
  }

  /**
   * The segment's bytes, for tryClaimRaw(): write only inside a claimed range.
   * Empty once the producer is closed.
   */
  get bytes(): Uint8Array {
    return this.segment.bytes
  }

  /** Like tryClaim(), waiting on the event loop for room. */
  claim(length: number): Promise<Uint8Array> {
    try {
      this.checkOpen()
      this.checkLength(length)
      this.checkNoClaim()
      if (this.waitingWrites === 0) {
        const view = this.ring.tryClaim(length) ?? (this.spinForRoom(length) ? this.ring.tryClaim(length) : null)
        if (view !== null) return Promise.resolve(view)
      }
    } catch (error) {
      return Promise.reject(error)
    }
    return this.enqueue(() => this.ring.tryClaim(length), length)
  }

  /**
   * Publishes the claimed view; with `length`, only its first `length` bytes;
   * with `type`, under that message type tag (default 0). On an MPSC segment,
   * throws ERR_SHMQ_TIMEOUT if the claim was held past the consumer's
   * claimTimeout (the message is dropped).
   */
  commit(length?: number, type = 0): void {
    this.checkOpen()
    if (!this.ring.hasClaim) {
      throw new ShmqError('ERR_SHMQ_PENDING', 'commit() without a claimed view: call tryClaim() or claim() first', { segment: this.name })
    }
    if (length !== undefined) {
      this.checkLength(length)
      if (length > this.ring.claimLength) {
        throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `cannot commit ${length} bytes of a ${this.ring.claimLength}-byte claim`, { segment: this.name })
      }
    }
    if ((type & 0xffff) !== type) this.checkType(type)
    this.ring.commit(length ?? this.ring.claimLength, type)
  }

  /** @internal Stores this side's counts if they changed (the FLUSH_MS timer of lib/counters.ts). */
  flushIdle(): void {
    if (!this.isClosed && !this.segment.shrunk && this.ring.counts.dirty) this.ring.counts.flush()
  }

  /**
   * The channel's counters (every participant's, read from the segment: see
   * docs/LAYOUT.md §15), its fill level and its participants. This side's own
   * counts are stored first, so they are exact; another process's are at most
   * 1024 messages or 100 ms behind.
   */
  stats(): ChannelStats {
    this.checkOpen()
    return endpointStats(this.segment, this.ring.counts, this.ring.fill, this.ownSlot)
  }

  /** The consumer's pid and whether it is alive, or null when no consumer is attached. */
  get peer(): { pid: number; alive: boolean } | null {
    this.checkOpen()
    return this.waiter.peerStatus()
  }

  /** Drops the claimed view without publishing anything. */
  abort(): void {
    if (!this.isClosed) this.ring.abort()
  }

  /**
   * Spins (without leaving the thread) until a full ring has room for a
   * `length`-byte message and a batch more, or the spin time is up; true if
   * there is room. The batch is the hysteresis that keeps a producer faster than
   * its consumer from writing one frame per frame released, right behind the
   * reader: that moves a cache line across cores per message both ways, and
   * measured 2-3x slower than writing in bursts.
   */
  private spinForRoom(length: number): boolean {
    this.spinLength = length
    return this.waiter.spin(this.hasRoomAndBatch) || this.ring.hasRoomFor(length)
  }

  private spinLength = 0
  private readonly refillBatch: number
  private readonly hasRoomAndBatch = (): boolean => this.ring.hasRoomFor(this.spinLength, this.refillBatch)

  /**
   * Resolves once the ring has room for a `length`-byte message (after the
   * writes queued before it), waiting as write() does; rejects as write() does
   * (ERR_SHMQ_PEER_GONE when the consumer died with the ring full).
   */
  protected waitForRoom(length: number): Promise<boolean> {
    return this.enqueue(() => (this.ring.hasRoomFor(length) ? true : null), length)
  }

  /**
   * Runs `attempt` (which returns a result or null when full) once every write
   * queued before it is done, waiting for room between attempts.
   */
  private enqueue<T>(attempt: () => T | null, length: number): Promise<T> {
    this.waitingWrites++
    const hasRoom = (): boolean => this.isClosed || this.ring.hasRoomFor(length)
    const run = async (): Promise<T> => {
      try {
        await this.writeQueue
        for (;;) {
          this.checkOpen()
          this.checkNoClaim()
          const result = attempt()
          if (result !== null) return result
          if (!this.waiter.spin(hasRoom)) {
            // broadcast: a dead or stalled subscriber stops holding us back; park following the one that does
            if (this.ring.unblock?.() === true) continue
            if (this.ring.blockingSlot !== undefined) this.waiter.watch(this.ring.blockingSlot)
            await this.waiter.park(hasRoom)
            if (!this.isClosed && this.ring.blockingSlot === undefined && !this.ring.hasRoomFor(length) && this.waiter.peerGone()) {
              // reported once: the next write waits for a successor
              this.waiter.reapPeer()
              throw new ShmqError(
                'ERR_SHMQ_PEER_GONE',
                `the consumer of '${this.name}' died with the ring full; unread messages stay for the next consumer (Consumer.open('${this.name}')): write again to wait for it`,
                { segment: this.name },
              )
            }
          }
        }
      } finally {
        this.waitingWrites--
      }
    }
    const result = run()
    this.writeQueue = result.then(
      () => undefined,
      () => undefined,
    )
    return result
  }

  /**
   * Detaches. On an SPSC segment this ends the stream: the consumer reads what
   * was written, then sees the end. On an MPSC segment it ends nothing: the
   * other producers go on (see end()). An uncommitted claim is dropped; write()
   * calls still waiting for room reject with ERR_SHMQ_CLOSED. Idempotent.
   */
  close(): void {
    if (this.isClosed) return
    this.isClosed = true
    unfollowCounts(this)
    if (!this.segment.shrunk) {
      this.ring.counts.flush()
      this.ring.abort()
      if (this.protocol instanceof SpscWriter || this.protocol instanceof BroadcastWriter) this.protocol.end()
    }
    this.segment.detach()
    // a consumer waiting for the last producer of an ended stream to leave learns of it now
    if (this.protocol instanceof MpscWriter && !this.segment.shrunk) this.protocol.wakeIfWaiting()
    this.waiter.close()
    this.segment.close()
  }

  /**
   * Ends the stream and closes this producer. MPSC: no producer may attach
   * any more (Producer.open fails with ERR_SHMQ_CLOSED); those attached now
   * write on, and the consumer sees the end once all of them closed (or died)
   * and it read everything. SPSC: the same as close().
   */
  end(): void {
    if (this.isClosed) return
    if (this.protocol instanceof MpscWriter && !this.segment.shrunk) this.protocol.end()
    this.close()
  }

  /** Many producers share this segment (MPSC). */
  get shared(): boolean {
    return this.many
  }

  /** Sizes, claims, encodes `values` in place and commits one `schema` message; false when the ring is full. */
  tryWriteMessage<F extends Fields>(schema: MessageSchema<F>, values: Values<F>, options?: EncodeOptions): boolean {
    return tryWriteMessage(this, schema, values, options)
  }

  /** tryWriteMessage(), waiting for room; do not change `values` until it settles. */
  writeMessage<F extends Fields>(schema: MessageSchema<F>, values: Values<F>, options?: EncodeOptions): Promise<void> {
    return writeMessage(this, schema, values, options)
  }
}
