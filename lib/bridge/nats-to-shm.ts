/**
 * NATS subject → local channel. Every message is written into the local
 * Producer; `write` waits for room, which is the flow control towards the
 * local consumer.
 *
 * at-most-once (core NATS): a subscription whose callback writes at once when
 * the ring has room, else queues a copy in a pending queue bounded in messages
 * and bytes; a message that does not fit there is dropped and counted (core
 * NATS has no way to make the server wait).
 *
 * at-least-once (JetStream): a durable pull consumer, fetched in batches no
 * larger than the in-flight limits; each message is acknowledged only after
 * the local write returned (it is committed to the ring), and no new batch is
 * fetched while the local consumer is slower.
 *
 * The writer is anything with a Producer's tryWrite/write: a stream's
 * Producer, a broadcast Publisher, or a work queue's WorkQueueProducer. A
 * bridge in a NATS queue group (`queue`) shares the subject's messages with
 * the group's other members; a JetStream durable marked `shared` is pulled by
 * several bridges at once, so none of them owns it (no restart at the ack
 * floor, no skipping by sequence: their messages interleave). A member of a
 * group ignores the end of stream (Shmq-End): it would reach one member only,
 * maybe before messages published ahead of it that JetStream will redeliver
 * to the others; the group's bridges run until closed.
 */
import type { JetStreamClient, JetStreamManager, JsMsg, Msg, MsgHdrs, NatsConnection, PullConsumer, Subscription } from './client'
import { ShmqError } from '../errors'
import { END_HEADER, TYPE_HEADER } from './headers'
import { jetstreamModule } from './nats'
import type { BridgeStats } from './stats'
import { backoff, elapsedMs, sleep } from './timing'

export interface InboundLimits {
  batch: number
  maxInFlightMessages: number
  maxInFlightBytes: number
  /** Milliseconds JetStream waits for an acknowledgement before it redelivers. */
  ackWait: number
  /** Milliseconds of failed fetches in a row before the bridge gives up. */
  deliveryTimeout: number
}

/** The local end NatsToShm writes: a Producer, a Publisher or a WorkQueueProducer. */
export interface LocalWriter {
  readonly name: string
  readonly maxMessage: number
  tryWrite(message: Uint8Array, type?: number): boolean
  write(message: Uint8Array, type?: number): Promise<void>
  /** A work queue's: copies taken back from dead workers, not yet handed on (its close drops them). */
  readonly backlog?: number
}

export interface InboundJetStream {
  js: JetStreamClient
  jsm: JetStreamManager
  stream: string
  durable: string
  /** Pulled by several bridges at once (a work queue's queue group): use it as it is, never reset it. */
  shared?: boolean
}

/** A message waiting for room in the ring: a copy, and its type tag. */
interface Pending {
  data: Uint8Array
  type: number
}

/** Subscription.drain() and the queue option, which the core path uses only for queue groups. */
interface QueueSubscribing {
  subscribe(subject: string, options: { queue?: string; callback: (error: Error | null, msg: Msg) => void }): Subscription & { drain(): Promise<void> }
}

/** How long a leaving queue-group member waits for the server's last messages and for their writes. */
const LEAVE_MS = 2000

/** The type tag a message carries in Shmq-Type; 0 when absent (or not a tag: 0 to 65535). */
export function typeOf(msg: { headers?: MsgHdrs | undefined }): number {
  const text = msg.headers?.get(TYPE_HEADER)
  if (text === undefined || text === '') return 0
  const type = Number(text)
  return Number.isInteger(type) && type >= 0 && type <= 0xffff ? type : 0
}

export class NatsToShm {
  private stopping = false
  private leaving: Promise<void> | null = null
  private readonly pending: Pending[] = []
  private pendingBytes = 0
  private overflowing = false
  private writing: Promise<void> | null = null
  private finish: (() => void) | null = null
  private fail: ((error: unknown) => void) | null = null
  private subscription: (Subscription & { drain?(): Promise<void> }) | null = null
  /** Highest stream sequence written in this run: a redelivered message at or below it is skipped. */
  private lastWritten = 0

  constructor(
    private readonly producer: LocalWriter,
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly limits: InboundLimits,
    private readonly stats: BridgeStats,
    private readonly jetstream: InboundJetStream | null,
    /** Core NATS: subscribe in this queue group (the server hands each message to one member). */
    private readonly queue: string | null = null,
  ) {}

  stop(): void {
    if (this.stopping || this.leaving !== null) return
    const subscription = this.subscription
    if (this.jetstream === null && this.queue !== null && subscription?.drain !== undefined) {
      // a member leaving its queue group writes what the server already routed to it instead of
      // losing it: the server sends nothing more after the drain, and the group's others get the rest
      this.leaving = within(subscription.drain(), LEAVE_MS)
        .then(() => within(this.writing ?? Promise.resolve(), LEAVE_MS))
        .then(() => within(this.handedOn(), LEAVE_MS))
        .then(() => this.halt())
      return
    }
    this.halt()
  }

  /** Resolves once the local work queue has handed on what it took back from dead workers (polled: it says so in no event). */
  private async handedOn(): Promise<void> {
    while ((this.producer.backlog ?? 0) > 0 && !this.stopping) await sleep(20)
  }

  private halt(): void {
    this.stopping = true
    try {
      this.subscription?.unsubscribe()
    } catch {
      // already drained or closed
    }
    this.finish?.()
  }

  run(): Promise<void> {
    return this.jetstream === null ? this.runCore() : this.runJetStream(this.jetstream)
  }

  /** Subscribed and listening: messages published from now on reach the channel. */
  ready: Promise<void> = Promise.resolve()

  private runCore(): Promise<void> {
    const { stats, limits, producer } = this
    const done = new Promise<void>((resolve, reject) => {
      this.finish = resolve
      this.fail = reject
    })
    const ended = (): void => {
      this.stopping = true
      stats.ended = true
      this.subscription?.unsubscribe()
      void (this.writing ?? Promise.resolve()).then(() => this.finish?.())
    }
    this.subscription = (this.nc as unknown as QueueSubscribing).subscribe(this.subject, {
      ...(this.queue === null ? {} : { queue: this.queue }),
      callback: (error, msg) => {
        if (error !== null || this.stopping) return
        if (msg.headers?.get(END_HEADER) === '1') return this.queue === null ? ended() : undefined
        const data = msg.data
        const type = typeOf(msg)
        stats.messagesIn++
        stats.bytesIn += data.length
        try {
          if (this.pending.length === 0 && producer.tryWrite(data, type)) {
            stats.messagesOut++
            stats.bytesOut += data.length
            this.overflowing = false
            return
          }
        } catch (writeError) {
          this.fail?.(writeError)
          return
        }
        if (this.pending.length >= limits.maxInFlightMessages || this.pendingBytes + data.length > limits.maxInFlightBytes) {
          stats.dropped++
          if (!this.overflowing) stats.slowConsumerEvents++
          this.overflowing = true
          return
        }
        // msg.data is a view into the client's read buffer: keep a copy
        this.pending.push({ data: Uint8Array.prototype.slice.call(data), type })
        this.pendingBytes += data.length
        stats.inFlight = this.pending.length
        stats.inFlightBytes = this.pendingBytes
        this.writing ??= this.writePending().then(
          () => {
            this.writing = null
          },
          (writeError: unknown) => this.fail?.(writeError),
        )
      },
    })
    this.ready = this.nc.flush()
    return done
  }

  /** Writes the pending queue into the ring in order, waiting for room. */
  private async writePending(): Promise<void> {
    const { stats } = this
    while (this.pending.length > 0) {
      const { data, type } = this.pending[0]!
      const started = performance.now()
      await this.producer.write(data, type)
      stats.backpressureMs += elapsedMs(started)
      this.pending.shift()
      this.pendingBytes -= data.length
      stats.inFlight = this.pending.length
      stats.inFlightBytes = this.pendingBytes
      stats.messagesOut++
      stats.bytesOut += data.length
      this.overflowing = false
    }
  }

  private async runJetStream(jetstream: InboundJetStream): Promise<void> {
    const { stats, limits } = this
    let failingSince = 0
    let reconnectsSeen = stats.reconnects
    let consumer: PullConsumer | null = null
    for (let attempt = 0; !this.stopping; ) {
      try {
        if (consumer === null || stats.reconnects !== reconnectsSeen) {
          reconnectsSeen = stats.reconnects
          if (jetstream.shared === true) await this.ensureDurable(jetstream)
          else await this.resetToAckFloor(jetstream)
          consumer = await jetstream.js.consumers.get(jetstream.stream, jetstream.durable)
        }
        // a count bound only (the client's byte bound loses the pull's heartbeats with nats-server 2.9): as many of the largest messages as fit the byte bound
        const largest = Math.min(this.producer.maxMessage, this.nc.info?.max_payload ?? Infinity)
        const count = Math.max(1, Math.min(limits.batch, limits.maxInFlightMessages, Math.floor(limits.maxInFlightBytes / largest)))
        const messages = await consumer.fetch({ max_messages: count, expires: 1000 })
        stats.batches++
        for await (const msg of messages) {
          if (await this.deliver(msg)) return
          if (this.stopping) break
        }
        failingSince = 0
        attempt = 0
      } catch (error) {
        if (this.stopping) break
        if (error instanceof ShmqError) throw error
        if (this.nc.isClosed()) throw new ShmqError('ERR_SHMQ_NATS', `the connection to NATS closed for good: ${(error as Error).message}`, { cause: error })
        failingSince ||= performance.now()
        if (elapsedMs(failingSince) > limits.deliveryTimeout) {
          throw new ShmqError('ERR_SHMQ_NATS', `fetching from JetStream stream '${jetstream.stream}' failed for ${limits.deliveryTimeout} ms: ${(error as Error).message}`, { cause: error })
        }
        stats.retries++
        stats.lastRetryError = (error as Error).message
        consumer = null
        await sleep(backoff(attempt++))
      }
    }
  }

  /** Writes one JetStream message, then acknowledges it; true at the end of the stream. */
  private async deliver(msg: JsMsg): Promise<boolean> {
    const shared = this.jetstream?.shared === true
    const { stats } = this
    if (msg.headers?.get(END_HEADER) === '1') {
      await msg.ackAck()
      if (shared) return false
      stats.ended = true
      return true
    }
    if (msg.redelivered) stats.redeliveries++
    // several bridges pulling one durable see interleaved sequences: only a bridge that owns its durable may skip by them
    if (!shared && msg.seq <= this.lastWritten) {
      stats.duplicatesSuppressed++
      msg.ack()
      return false
    }
    const data = msg.data
    stats.messagesIn++
    stats.bytesIn += data.length
    stats.inFlight = 1
    stats.inFlightBytes = data.length
    const started = performance.now()
    await this.producer.write(data, typeOf(msg))
    stats.backpressureMs += elapsedMs(started)
    // SYNC POINT (local commit → ack): the message is in the ring; only now may JetStream forget it
    msg.ack()
    this.lastWritten = msg.seq
    stats.inFlight = 0
    stats.inFlightBytes = 0
    stats.messagesOut++
    stats.bytesOut += data.length
    return false
  }

  /**
   * Makes the durable consumer deliver from the first unacknowledged message
   * on. JetStream redelivers a message delivered to an earlier bridge (or lost
   * in a disconnect) only after ackWait, behind newer ones; restarting at the
   * ack floor keeps the channel in order (and may repeat what was written but
   * not acknowledged). The bridge owns the durable: the channel's producer
   * role lock lets one bridge at a time write the channel.
   */
  private async resetToAckFloor({ jsm, stream, durable }: InboundJetStream): Promise<void> {
    let startSeq = 0
    try {
      const info = await jsm.consumers.info(stream, durable)
      if (info.num_ack_pending === 0 && info.delivered.stream_seq === info.ack_floor.stream_seq) return
      startSeq = info.ack_floor.stream_seq + 1
      this.stats.redeliveries += info.num_ack_pending
      await jsm.consumers.delete(stream, durable)
    } catch (error) {
      if (!isNotFound(error)) throw error
    }
    await jsm.consumers.add(stream, this.durableConfig(durable, startSeq))
  }

  private durableConfig(durable: string, startSeq: number): Record<string, unknown> {
    const { AckPolicy, DeliverPolicy } = jetstreamModule()
    return {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: this.limits.ackWait * 1_000_000,
      max_ack_pending: this.limits.maxInFlightMessages,
      filter_subject: this.subject,
      ...(startSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq } : { deliver_policy: DeliverPolicy.All }),
    }
  }

  /**
   * A durable pulled by a queue group's bridges: created by the first, used
   * as it is by the others (and after reconnects). A bridge that dies leaves
   * its unacknowledged messages to JetStream, which hands them to the others
   * after ackWait.
   */
  private async ensureDurable({ jsm, stream, durable }: InboundJetStream): Promise<void> {
    try {
      await jsm.consumers.info(stream, durable)
      return
    } catch (error) {
      if (!isNotFound(error)) throw error
    }
    try {
      await jsm.consumers.add(stream, this.durableConfig(durable, 0))
    } catch (error) {
      // another bridge of the group created it meanwhile
      await jsm.consumers.info(stream, durable).catch(() => {
        throw error
      })
    }
  }
}

export function isNotFound(error: unknown): boolean {
  const e = error as { code?: unknown; api_error?: { err_code?: number }; message?: string }
  return e?.api_error?.err_code === 10014 || e?.api_error?.err_code === 10059 || /not found/i.test(String(e?.message))
}

/** Settles when `promise` does or after `ms`, whichever is first; never rejects. */
function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  return Promise.race([promise.then(() => undefined, () => undefined), timeout]).finally(() => clearTimeout(timer))
}
