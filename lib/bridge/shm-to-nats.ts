/**
 * Local channel → NATS subject. Reads the ring in batches and publishes each
 * message; what is in flight is bounded, and when NATS does not keep up the
 * pump stops reading, so the ring fills and its backpressure reaches the
 * local producer instead of the bridge's memory growing.
 *
 * at-most-once (core NATS): a batch is copied out of the ring (the client
 * keeps references to payloads until it writes them to its socket), released,
 * published, and confirmed by one flush (PING/PONG) per batch.
 *
 * at-least-once (JetStream): a batch is taken from the ring with drain
 * { hold: true } and released only after JetStream acknowledged every message
 * of it, so a bridge that dies leaves the batch in the ring for the next bridge.
 *
 * The reader is any Consumer: a stream's, a broadcast Subscriber, or a work
 * queue's worker (WorkQueueConsumer); `sourceCounts` reports what it missed
 * (a subscriber lapped or evicted) and what came redelivered (a worker).
 */
import type { JetStreamClient, MsgHdrs, NatsConnection } from './client'
import type { Consumer } from '../consumer'
import { ShmqError } from '../errors'
import { END_HEADER, messageHeaders } from './headers'
import { transport } from './nats'
import type { BridgeStats } from './stats'
import { backoff, elapsedMs, sleep } from './timing'

export interface OutboundLimits {
  /** Messages per ring read (default 256). */
  batch: number
  /** Messages and payload bytes taken from the ring and not yet confirmed by NATS. */
  maxInFlightMessages: number
  maxInFlightBytes: number
  /** Carry the format's schema id, version and checksum flag as headers. */
  formatHeaders: boolean
  /** Publish an empty Shmq-End message when the local stream ends. */
  endOfStream: boolean
  /** Milliseconds an at-least-once publish is retried before the bridge gives up on it. */
  deliveryTimeout: number
}

/** What the local reader counts on its own: messages it never got (`lost`, in `resumes` runs) and messages handed to it again (`redelivered`). */
export interface SourceCounts {
  lost: number
  resumes: number
  redelivered: number
}

interface Flush {
  messages: number
  bytes: number
  settled: Promise<void>
}

export class ShmToNats {
  private stopping = false
  /** Parked in consumer.read(): stop() closes the consumer to wake it. */
  private parked = false
  /** An at-least-once message taken from the ring and not acknowledged when the pump stopped: the consumer must not be closed (close releases it). */
  holding = false
  private readonly makeHeaders: () => MsgHdrs
  /** sourceCounts() when last looked at. */
  private seen: SourceCounts = { lost: 0, resumes: 0, redelivered: 0 }

  constructor(
    private readonly consumer: Consumer,
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly limits: OutboundLimits,
    private readonly stats: BridgeStats,
    private readonly js: JetStreamClient | null,
    /** Prefix of Nats-Msg-Id: a publish retried in this run is stored once. */
    private readonly runId: string,
    /** The reader's own loss and redelivery counts (a Subscriber's lost/resumes, a worker's redelivered), or null. */
    private readonly sourceCounts: (() => SourceCounts) | null = null,
  ) {
    this.makeHeaders = transport().headers
    if (sourceCounts !== null) this.seen = sourceCounts()
  }

  /**
   * Adds what the reader lost since last looked at to `dropped` (and to
   * `messagesIn`: the source had them for the bridge, so in = out + dropped +
   * unconfirmed + undelivered still holds) and its redeliveries to `redeliveries`.
   */
  private countSource(): void {
    if (this.sourceCounts === null) return
    const now = this.sourceCounts()
    const lost = now.lost - this.seen.lost
    this.stats.dropped += lost
    this.stats.messagesIn += lost
    this.stats.slowConsumerEvents += now.resumes - this.seen.resumes
    this.stats.redeliveries += now.redelivered - this.seen.redelivered
    this.seen = now
  }

  /** Makes run() return after what is in flight settles; a parked read wakes when the consumer closes. */
  stop(): void {
    this.stopping = true
    if (this.parked) this.consumer.close()
  }

  run(): Promise<void> {
    return this.js === null ? this.runCore() : this.runJetStream(this.js)
  }

  private headersFor(payload: Uint8Array, type: number): MsgHdrs | undefined {
    return messageHeaders(this.makeHeaders, type, payload, this.limits.formatHeaders)
  }

  /** The next message, waiting for one; null at the end of the local stream or when stopped. */
  private async nextMessage(): Promise<Uint8Array | null> {
    const view = this.consumer.tryRead()
    if (view !== null || this.stopping || this.consumer.ended) return view
    this.parked = true
    try {
      return await this.consumer.read()
    } finally {
      this.parked = false
    }
  }

  private checkSize(length: number): void {
    const max = this.nc.info?.max_payload
    if (max !== undefined && length > max) {
      throw new ShmqError('ERR_SHMQ_NATS', `a ${length}-byte message from '${this.consumer.name}' exceeds the NATS server's max_payload (${max} bytes): raise max_payload in nats-server's configuration or send smaller messages`)
    }
  }

  private async runCore(): Promise<void> {
    const { stats, limits, nc, subject, consumer } = this
    const flushes: Flush[] = []
    const settle = async (flush: Flush): Promise<void> => {
      const started = performance.now()
      await flush.settled
      stats.backpressureMs += elapsedMs(started)
    }
    while (!this.stopping) {
      let view = await this.nextMessage()
      if (view === null) break
      let messages = 0
      let bytes = 0
      for (;;) {
        const length = view.length
        this.checkSize(length)
        // the client holds the payload until it writes its socket: copy it out of the ring before it is released
        const payload = Buffer.allocUnsafe(length)
        payload.set(view)
        const headers = this.headersFor(payload, consumer.lastType)
        nc.publish(subject, payload, headers === undefined ? undefined : { headers })
        messages++
        bytes += length
        if (messages >= limits.batch || stats.inFlight + messages >= limits.maxInFlightMessages || stats.inFlightBytes + bytes >= limits.maxInFlightBytes) break
        view = consumer.tryRead()
        if (view === null) break
      }
      consumer.release()
      this.countSource()
      stats.batches++
      stats.messagesIn += messages
      stats.bytesIn += bytes
      stats.inFlight += messages
      stats.inFlightBytes += bytes
      const flush: Flush = { messages, bytes, settled: Promise.resolve() }
      flush.settled = nc.flush().then(
        () => {
          stats.messagesOut += messages
          stats.bytesOut += bytes
        },
        () => {
          // the connection closed before the server confirmed: they may or may not have arrived
          stats.unconfirmed += messages
        },
      ).finally(() => {
        stats.inFlight -= messages
        stats.inFlightBytes -= bytes
        flushes.splice(flushes.indexOf(flush), 1)
      })
      flushes.push(flush)
      // SYNC POINT (NATS flow control → ring backpressure): no more ring reads until the oldest batch is confirmed
      while (flushes.length > 0 && (stats.inFlight >= limits.maxInFlightMessages || stats.inFlightBytes >= limits.maxInFlightBytes)) {
        await settle(flushes[0]!)
      }
    }
    while (flushes.length > 0) await settle(flushes[0]!)
    this.countSource()
    if (!this.stopping && consumer.ended) {
      if (limits.endOfStream) {
        const headers = this.makeHeaders()
        headers.set(END_HEADER, '1')
        nc.publish(subject, new Uint8Array(0), { headers })
        await nc.flush()
      }
      stats.ended = true
    }
  }

  private async runJetStream(js: JetStreamClient): Promise<void> {
    const { stats, consumer, limits } = this
    let sequence = 0
    while (!this.stopping) {
      const first = await this.nextMessage()
      if (first === null) break
      // a batch: the message waited for and those behind it, all held in the ring (drain
      // { hold: true } releases nothing) until JetStream acknowledged every one of them
      this.holding = true
      const batch: Buffer[] = [Buffer.from(first)]
      const types: number[] = [consumer.lastType]
      // bounded by the batch size and, in bytes, by the ring: a held batch cannot outgrow it
      const most = Math.min(limits.batch, limits.maxInFlightMessages)
      if (most > 1) {
        consumer.drainRaw(
          (bytes, offset, length, type) => {
            batch.push(Buffer.from(bytes.subarray(offset, offset + length)))
            types.push(type)
          },
          most - 1,
          { hold: true },
        )
      }
      this.countSource()
      let bytes = 0
      for (const payload of batch) {
        this.checkSize(payload.length)
        bytes += payload.length
      }
      stats.batches++
      stats.messagesIn += batch.length
      stats.bytesIn += bytes
      stats.inFlight = batch.length
      stats.inFlightBytes = bytes
      const ids = batch.map(() => `${this.runId}.${++sequence}`)
      await this.publishBatchAcked(js, batch, types, ids)
      // SYNC POINT (ack → release): JetStream stored the whole batch; only now may the ring reuse its room
      consumer.release()
      this.holding = false
      stats.inFlight = 0
      stats.inFlightBytes = 0
      stats.messagesOut += batch.length
      stats.bytesOut += bytes
    }
    if (!this.stopping && consumer.ended) {
      if (this.limits.endOfStream) {
        const headers = this.makeHeaders()
        headers.set(END_HEADER, '1')
        await this.publishAcked(js, new Uint8Array(0), headers, `${this.runId}.end`)
      }
      stats.ended = true
    }
  }

  /**
   * Publishes a batch at once (the connection keeps their order) and waits for
   * every ack. If any publish failed, the batch is published again one by one,
   * in order, from the first failure: the server stored a prefix of what it
   * received, and a message it already has is dropped by its Nats-Msg-Id, so
   * the stream keeps the ring's order.
   */
  private async publishBatchAcked(js: JetStreamClient, batch: Buffer[], types: number[], ids: string[]): Promise<void> {
    const outcomes = await Promise.allSettled(
      batch.map((payload, i) => js.publish(this.subject, payload, { msgID: ids[i]!, timeout: 2000, ...this.headerOption(payload, types[i]!) })),
    )
    let firstFailure = -1
    for (let i = 0; i < outcomes.length; i++) {
      const outcome = outcomes[i]!
      if (outcome.status === 'fulfilled') {
        if (outcome.value.duplicate) this.stats.duplicatesSuppressed++
      } else if (firstFailure === -1) {
        firstFailure = i
      }
    }
    if (firstFailure === -1) return
    for (let i = firstFailure; i < batch.length; i++) await this.publishAcked(js, batch[i]!, this.headersFor(batch[i]!, types[i]!), ids[i]!)
  }

  private headerOption(payload: Uint8Array, type: number): { headers?: MsgHdrs } {
    const headers = this.headersFor(payload, type)
    return headers === undefined ? {} : { headers }
  }

  /** Publishes until JetStream acknowledges, retrying with backoff for up to deliveryTimeout ms. */
  private async publishAcked(js: JetStreamClient, payload: Uint8Array, headers: MsgHdrs | undefined, msgID: string): Promise<void> {
    const started = performance.now()
    for (let attempt = 0; ; attempt++) {
      try {
        const ack = await js.publish(this.subject, payload, { msgID, timeout: 2000, ...(headers === undefined ? {} : { headers }) })
        if (ack.duplicate) this.stats.duplicatesSuppressed++
        if (attempt > 0) this.stats.backpressureMs += elapsedMs(started)
        return
      } catch (error) {
        if (this.stopping) throw new ShmqError('ERR_SHMQ_CLOSED', 'the bridge was closed before JetStream acknowledged a message; it stays in the ring for the next bridge', { cause: error })
        if (this.nc.isClosed()) throw new ShmqError('ERR_SHMQ_NATS', `the connection to NATS closed for good: ${(error as Error).message}`, { cause: error })
        if (elapsedMs(started) > this.limits.deliveryTimeout) {
          throw new ShmqError('ERR_SHMQ_NATS', `JetStream did not acknowledge a message on '${this.subject}' for ${this.limits.deliveryTimeout} ms (${(error as Error).message}); it stays in '${this.consumer.name}' for the next bridge`, { cause: error })
        }
        this.stats.retries++
        this.stats.lastRetryError = (error as Error).message
        await sleep(backoff(attempt))
      }
    }
  }
}
