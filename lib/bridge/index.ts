/**
 * shmq/bridge: a local channel → a NATS subject, or a NATS subject → a local
 * channel (docs/BRIDGE.md). Loaded only through the `shmq/bridge` subpath, so
 * `require('shmq')` never loads the NATS client.
 *
 *   const b = await bridge({ from: 'shm:jobs', to: 'nats://127.0.0.1:4222/jobs', delivery: 'at-least-once' })
 *   ...; console.log(b.stats()); await b.close()
 *
 * One direction per bridge. The local end's kind picks the pump: streams
 * here, broadcast rings and work queues in ./fanout, request/response in ./rpc.
 */
import { randomBytes } from 'node:crypto'
import type { JetStreamClient, JetStreamManager, NatsConnection } from './client'
import { Consumer } from '../consumer'
import { ShmqError } from '../errors'
import { Producer } from '../producer'
import { type NatsEndpoint, parseEndpoint, type ShmEndpoint } from './endpoint'
import { connectNats, jetstreamModule, type ReconnectOptions } from './nats'
import { isNotFound, NatsToShm } from './nats-to-shm'
import { ShmToNats } from './shm-to-nats'
import { type BridgeStats, type Delivery, newStats } from './stats'
import { openChannel } from './channel'
import { publishBridgeStats } from '../bridge-stats'
import { inspectSegment } from '../admin'
import { rpcBridge } from './rpc'
import { fanoutBridge } from './fanout'

export type { BridgeStats, Delivery, Direction } from './stats'
export { parseEndpoint, type Endpoint, type NatsEndpoint, type ShmEndpoint } from './endpoint'
export { peekFormat, SCHEMA_HEADER, VERSION_HEADER, CRC_HEADER, END_HEADER, TYPE_HEADER, type FormatInfo } from './headers'

export interface BridgeOptions extends ReconnectOptions {
  /** `shm:NAME` or `nats://host:port/SUBJECT`; exactly one side is shm. */
  from: string
  to: string
  /** 'at-most-once' (core NATS, default) or 'at-least-once' (JetStream). */
  delivery?: Delivery
  /** JetStream stream (at-least-once): created over the subject if missing. Default: the subject with non-name characters as '_'. */
  stream?: string
  /** JetStream durable consumer (at-least-once, NATS → shm). Default `shmq-bridge-<channel>`; for a work queue, its `queue` group's name. */
  durable?: string
  /** NATS queue group (NATS → a local work queue or request/response server): the group's bridges share the subject's messages. Default `shmq-bridge-<channel>`. */
  queue?: string
  /** NATS → a local broadcast ring the bridge creates: its Publisher's policy ('backpressure', default, or 'lossy') and subscriber slots (default 16). */
  policy?: 'backpressure' | 'lossy'
  maxSubscribers?: number
  /** Messages per batch (default 256). */
  batch?: number
  /** Bound on messages and payload bytes taken from the source and not yet confirmed by the destination (defaults 4096 and 8 MiB). */
  maxInFlightMessages?: number
  maxInFlightBytes?: number
  /** Milliseconds a JetStream publish or fetch keeps failing before the bridge stops with an error (default 60000). */
  deliveryTimeout?: number
  /** Milliseconds JetStream waits for an ack before redelivering (default 30000). */
  ackWait?: number
  /** Carry format schema id, version and checksum flag as NATS headers (default true). */
  formatHeaders?: boolean
  /** Carry the local end of stream as an empty Shmq-End message, and end the local stream when one arrives (default true). */
  endOfStream?: boolean
  /** Milliseconds to wait for a local channel that does not exist yet (shm → NATS; default 5000). */
  openTimeout?: number
  /** Request/response (kind 'rpc'): milliseconds a request waits for its reply over NATS or from the local server (default 30000); the far side also stops at the requester's Shmq-Timeout. */
  requestTimeout?: number
  /**
   * Request/response, shm → NATS: each local client's reply ring, in bytes (a power of two; default 1 MiB). The
   * bridge's server cuts off a client whose unread replies exceed twice this: size it for a client's outstanding replies.
   */
  replyCapacity?: number
  /** Capacity of a local channel the bridge creates (NATS → shm, when it does not exist; default 1 MiB). */
  capacity?: number
  /**
   * What the local end is: 'stream' (a Producer/Consumer channel, SPSC or
   * MPSC), 'broadcast' (a Publisher and its Subscribers), 'work-queue' (a
   * WorkQueueProducer and its workers) or 'rpc' (a Server and its Clients).
   * Default: the kind of the local segment when it exists, else 'stream'.
   */
  kind?: LocalKind
}

export type LocalKind = 'stream' | 'broadcast' | 'work-queue' | 'rpc'
const LOCAL_KINDS: readonly LocalKind[] = ['stream', 'broadcast', 'work-queue', 'rpc']

/** The local kind `options.kind` names, else the kind of the segment `name` when it exists, else 'stream'. */
function localKind(options: BridgeOptions, name: string): LocalKind {
  if (options.kind !== undefined) {
    if (!LOCAL_KINDS.includes(options.kind)) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `kind must be one of ${LOCAL_KINDS.join(', ')} (got ${String(options.kind)})`)
    return options.kind
  }
  const report = inspectSegment(name)
  if (report === null) return 'stream'
  if (report.kind === 'broadcast') return 'broadcast'
  if (report.kind === 'work queue') return 'work-queue'
  if (report.kind === 'server') return 'rpc'
  return 'stream'
}

export interface Bridge {
  /** A copy of the counters. */
  stats(): BridgeStats
  /** Settles when the bridge stops: the end of the stream was carried over, close() was called, or an error stopped it (then rejects). */
  readonly done: Promise<BridgeStats>
  /** Stops reading the source, waits for what is in flight, detaches and disconnects. Idempotent. */
  close(): Promise<BridgeStats>
}

const DELIVERIES: readonly Delivery[] = ['at-most-once', 'at-least-once']

function positiveInteger(options: BridgeOptions, key: keyof BridgeOptions, fallback: number): number {
  const value = options[key] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `${key} must be a positive integer (got ${String(options[key])})`)
  }
  return value
}

/** `subject` (or a channel name) as a JetStream name: characters other than letters, digits, '_' and '-' become '_'. */
export function streamName(subject: string): string {
  return subject.replace(/[^A-Za-z0-9_-]/g, '_')
}

/**
 * Checks `options` and starts a bridge; resolves once it is connected,
 * attached and (NATS → shm) subscribed. While it runs, its stats() are also
 * where `shmq stat <channel>` reads them (lib/bridge-stats.ts).
 */
export async function bridge(options: BridgeOptions): Promise<Bridge> {
  const running = await startBridge(options)
  const local = [options.from, options.to].map((text, i) => parseEndpoint(text, i === 0 ? 'from' : 'to')).find((endpoint) => endpoint.kind === 'shm') as ShmEndpoint
  const unpublish = publishBridgeStats(local.name, { from: options.from, to: options.to }, () => running.stats())
  running.done.then(unpublish, unpublish)
  return running
}

async function startBridge(options: BridgeOptions): Promise<Bridge> {
  if (options === null || typeof options !== 'object') throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'bridge() takes an options object: { from, to, delivery }')
  const from = parseEndpoint(options.from, 'from')
  const to = parseEndpoint(options.to, 'to')
  if (from.kind === to.kind) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `a bridge joins a local channel and a NATS subject: from '${options.from}' and to '${options.to}' are both ${from.kind === 'shm' ? 'local channels' : 'NATS subjects'}`)
  }
  const delivery = options.delivery ?? 'at-most-once'
  if (!DELIVERIES.includes(delivery)) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `delivery must be 'at-most-once' or 'at-least-once' (got ${String(delivery)})`)
  const batch = positiveInteger(options, 'batch', 256)
  const maxInFlightMessages = positiveInteger(options, 'maxInFlightMessages', 4096)
  const maxInFlightBytes = positiveInteger(options, 'maxInFlightBytes', 8 << 20)
  const deliveryTimeout = positiveInteger(options, 'deliveryTimeout', 60_000)
  const ackWait = positiveInteger(options, 'ackWait', 30_000)
  const openTimeout = options.openTimeout ?? 5000
  const shm = (from.kind === 'shm' ? from : to) as ShmEndpoint
  const nats = (from.kind === 'nats' ? from : to) as NatsEndpoint
  const stream = options.stream ?? streamName(nats.subject)
  if (delivery === 'at-least-once' && !/^[A-Za-z0-9_-]{1,255}$/.test(stream)) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `stream '${stream}': a JetStream stream name is letters, digits, '_' and '-'`)
  }
  const durable = options.durable ?? `shmq-bridge-${streamName(shm.name)}`
  const kind = localKind(options, shm.name)
  if ((options.policy !== undefined || options.maxSubscribers !== undefined) && !(kind === 'broadcast' && to.kind === 'shm')) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'policy and maxSubscribers shape the broadcast ring a bridge creates to publish a subject into (--kind broadcast, from NATS to shm:NAME): drop them here')
  }
  if (kind === 'rpc') return rpcBridge(options, from, to)
  if (kind === 'broadcast' || kind === 'work-queue') {
    return fanoutBridge(kind, options, from, to, { delivery, batch, maxInFlightMessages, maxInFlightBytes, deliveryTimeout, ackWait, openTimeout, stream })
  }
  if (options.queue !== undefined) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `queue: a NATS queue group shares a subject among bridges into work queues or request/response servers; '${shm.name}' is bridged as a stream, which takes the whole subject in order (drop queue, or pass kind 'work-queue' or 'rpc')`)
  }
  const stats = newStats(from.kind === 'shm' ? 'shm-to-nats' : 'nats-to-shm', delivery)

  const nc = await connectNats(nats.server, `shmq-bridge ${options.from} -> ${options.to}`, options, stats)
  let channel: Consumer | Producer | null = null
  try {
    const jetstream = delivery === 'at-least-once' ? { ...(await openJetStream(nc, nats, stream)), durable } : null
    if (from.kind === 'shm') {
      const consumer = openChannel('consumer', shm.name, { timeout: openTimeout, capacity: options.capacity }) as Consumer
      channel = consumer
      const limits = { batch, maxInFlightMessages, maxInFlightBytes, deliveryTimeout, formatHeaders: options.formatHeaders ?? true, endOfStream: options.endOfStream ?? true }
      const runId = `${shm.name}.${randomBytes(6).toString('hex')}`
      const pump = new ShmToNats(consumer, nc, nats.subject, limits, stats, jetstream?.js ?? null, runId)
      return start(pump, nc, stats, () => (pump.holding ? undefined : consumer.close()))
    }
    const producer = openChannel('producer', shm.name, { timeout: openTimeout, capacity: options.capacity }) as Producer
    channel = producer
    const pump = new NatsToShm(producer, nc, nats.subject, { batch, maxInFlightMessages, maxInFlightBytes, deliveryTimeout, ackWait }, stats, jetstream)
    const started = start(pump, nc, stats, () => (stats.ended && (options.endOfStream ?? true) ? producer.close() : detachProducer(producer)))
    await pump.ready
    return started
  } catch (error) {
    channel?.close()
    await nc.close().catch(() => undefined)
    throw error
  }
}

/**
 * A producer that stops without an end of stream must leave the stream open
 * for the next bridge: Producer.close() would end it. Until the Producer has a
 * detach-only close, the bridge keeps it attached, and the role lock goes when
 * the process exits.
 */
function detachProducer(_producer: Producer): void {}

/** JetStream on `nc`, with stream `stream` over the endpoint's subject (created if missing). */
export async function openJetStream(nc: NatsConnection, nats: NatsEndpoint, stream: string): Promise<{ js: JetStreamClient; jsm: JetStreamManager; stream: string }> {
  const { jetstream: js, jetstreamManager } = jetstreamModule()
  const jsm = await jetstreamManager(nc).catch((error: unknown) => {
    throw new ShmqError('ERR_SHMQ_NATS', `at-least-once needs JetStream, and the NATS server at ${nats.server} has none (${(error as Error).message}): start nats-server with -js`, { cause: error })
  })
  await ensureStream(jsm, stream, nats.subject)
  return { js: js(nc), jsm, stream }
}

async function ensureStream(jsm: JetStreamManager, stream: string, subject: string): Promise<void> {
  try {
    await jsm.streams.info(stream)
    return
  } catch (error) {
    if (!isNotFound(error)) throw new ShmqError('ERR_SHMQ_NATS', `cannot look up JetStream stream '${stream}': ${(error as Error).message} (is JetStream enabled? nats-server -js)`, { cause: error })
  }
  try {
    await jsm.streams.add({ name: stream, subjects: [subject] })
  } catch (error) {
    // another bridge may have created it meanwhile
    try {
      await jsm.streams.info(stream)
    } catch {
      throw new ShmqError('ERR_SHMQ_NATS', `cannot create JetStream stream '${stream}' over '${subject}': ${(error as Error).message}`, { cause: error })
    }
  }
}

/** Runs `pump` as a Bridge: done settles when it stops; `detach` lets go of the local end before NATS is closed. */
export function start(pump: { run(): Promise<void>; stop(): void }, nc: NatsConnection, stats: BridgeStats, detach: () => void): Bridge {
  const finish = async (error: unknown): Promise<BridgeStats> => {
    if (error !== undefined && stats.error === null) stats.error = (error as Error).message ?? String(error)
    stats.undelivered = stats.messagesIn - stats.messagesOut - stats.unconfirmed - stats.dropped
    try {
      detach()
    } finally {
      await nc.close().catch(() => undefined)
    }
    return { ...stats }
  }
  const done = pump.run().then(
    () => finish(undefined),
    async (error: unknown) => {
      pump.stop()
      await finish(error)
      throw error
    },
  )
  return asBridge(stats, done, () => pump.stop())
}

/**
 * The Bridge of a running pump whose `done` settles when it stops: close()
 * calls `stop` once and resolves with the last stats, failure or not.
 */
export function asBridge(stats: BridgeStats, done: Promise<BridgeStats>, stop: () => void): Bridge {
  let closing: Promise<BridgeStats> | null = null
  // an unobserved failure is reported through done and stats, not as an unhandled rejection
  done.catch(() => undefined)
  return {
    stats: () => ({ ...stats }),
    done,
    close(): Promise<BridgeStats> {
      if (closing === null) {
        stop()
        closing = done.catch(() => ({ ...stats }))
      }
      return closing
    },
  }
}
