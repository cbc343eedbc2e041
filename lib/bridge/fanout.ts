/**
 * Broadcast ↔ NATS subjects and work queues ↔ NATS queue groups (docs/BRIDGE.md).
 *
 * The pumps are the stream bridge's (ShmToNats, NatsToShm); only the local end
 * differs:
 *
 *   shm:broadcast → NATS   the bridge is a Subscriber of the ring; what it
 *                          misses when it falls behind is counted in `dropped`
 *   NATS → shm:broadcast   the bridge is the ring's Publisher
 *   shm:work-queue → NATS  the bridge is one worker (WorkQueueConsumer) of the queue
 *   NATS → shm:work-queue  the bridge is the queue's WorkQueueProducer, and a
 *                          member of a NATS queue group (or, at-least-once,
 *                          one of the pullers of a shared JetStream durable)
 */
import { randomBytes } from 'node:crypto'
import { inspectSegment } from '../admin'
import { Consumer } from '../consumer'
import { ShmqError } from '../errors'
import { Publisher } from '../publisher'
import { unlinkSegment } from '../segment'
import { Subscriber } from '../subscriber'
import { WorkQueueConsumer, WorkQueueProducer } from '../work-queue'
import type { NatsEndpoint, ShmEndpoint, Endpoint } from './endpoint'
import { type Bridge, type BridgeOptions, openJetStream, start, streamName } from './index'
import { connectNats } from './nats'
import { NatsToShm } from './nats-to-shm'
import { ShmToNats, type SourceCounts } from './shm-to-nats'
import { type Delivery, newStats } from './stats'

export type FanoutKind = 'broadcast' | 'work-queue'

/** The options bridge() already checked. */
export interface FanoutSettings {
  delivery: Delivery
  batch: number
  maxInFlightMessages: number
  maxInFlightBytes: number
  deliveryTimeout: number
  ackWait: number
  openTimeout: number
  stream: string
}

// a NATS queue group name, kept to characters that are also safe in a durable's name once '.' becomes '_'
const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,200}$/

function invalid(message: string): ShmqError {
  return new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', message)
}

/** Refuses the combinations that promise nothing, saying why. */
function checkCombination(kind: FanoutKind, options: BridgeOptions, outbound: boolean, delivery: Delivery): void {
  if (kind === 'broadcast' && delivery === 'at-least-once') {
    throw invalid(
      outbound
        ? "a broadcast subscriber's place in the ring dies with it: a bridge that died could not leave unacknowledged messages for the next one, so at-least-once would promise nothing. Bridge a broadcast at-most-once (losses are counted in dropped), or bridge a stream or work queue at-least-once"
        : 'a broadcast ring keeps no acknowledgement per subscriber (one that joins later, is lapped or is evicted never sees what was written), so acknowledging JetStream after the ring write would promise its subscribers nothing. Bridge into a broadcast at-most-once, or into a stream or work queue at-least-once',
    )
  }
  if (options.queue !== undefined) {
    if (kind !== 'work-queue') throw invalid(`queue: a NATS queue group shares a subject's messages among bridges into work queues; a broadcast bridge gets every message (drop queue, or use --kind work-queue)`)
    if (outbound) throw invalid('queue: a queue group shares the messages of a subject subscribed to; a bridge that publishes from a local work queue subscribes to nothing (drop queue)')
    if (typeof options.queue !== 'string' || !QUEUE_NAME.test(options.queue)) {
      throw invalid(`queue must be 1-200 letters, digits, '_', '-' or '.' (got ${String(options.queue)})`)
    }
  }
}

/**
 * Before the bridge creates the ring it writes: one left by a writer that is
 * gone is removed (a broadcast ring and a work queue each have one writer for
 * their life; readers still attached read what it holds and see the writer
 * gone); one with a live writer, or of another kind, is refused.
 */
function clearStale(kind: FanoutKind, name: string): void {
  const report = inspectSegment(name)
  if (report === null) return
  const expected = kind === 'broadcast' ? 'broadcast' : 'work queue'
  const role = kind === 'broadcast' ? 'publisher' : 'producer'
  if (report.kind !== expected) {
    throw new ShmqError('ERR_SHMQ_KIND', `'${name}' is a ${report.kind} segment, not a ${expected}: bridge into another name, or pass --kind ${report.kind === 'spsc' || report.kind === 'mpsc' ? 'stream' : 'matching it'}`, { segment: name })
  }
  // a work queue's producer is its roster's consumer
  const writer = kind === 'broadcast' ? report.producer : report.consumer
  if (writer?.alive === true) {
    throw new ShmqError('ERR_SHMQ_BUSY', `${expected} '${name}' has a live ${role} (pid ${writer.pid}), and a ${expected} has one ${role} for its life: stop it, or bridge into another name`, { segment: name })
  }
  try {
    unlinkSegment(name)
  } catch {
    // removed meanwhile
  }
}

/** The local end a NATS → shm bridge writes, created by the bridge. */
function createWriter(kind: FanoutKind, name: string, options: BridgeOptions): Publisher | WorkQueueProducer {
  clearStale(kind, name)
  const sized = options.capacity === undefined ? {} : { capacity: options.capacity }
  if (kind === 'work-queue') return WorkQueueProducer.create(name, { consumers: 'many', ...sized })
  // Publisher.create checks both
  return Publisher.create(name, { ...sized, policy: options.policy, maxSubscribers: options.maxSubscribers })
}

/** The local end a shm → NATS bridge reads: a subscriber of the ring, or a worker of the queue. */
function openReader(kind: FanoutKind, name: string, timeout: number): Subscriber | WorkQueueConsumer {
  if (kind === 'broadcast') return Subscriber.open(name, { timeout })
  const worker = Consumer.open(name, { timeout })
  if (!(worker instanceof WorkQueueConsumer)) {
    worker.close()
    throw new ShmqError('ERR_SHMQ_KIND', `'${name}' is a stream, not a work queue: bridge it with --kind stream`, { segment: name })
  }
  return worker
}

export async function fanoutBridge(kind: FanoutKind, options: BridgeOptions, from: Endpoint, to: Endpoint, settings: FanoutSettings): Promise<Bridge> {
  const outbound = from.kind === 'shm'
  const shm = (outbound ? from : to) as ShmEndpoint
  const nats = (outbound ? to : from) as NatsEndpoint
  const { delivery } = settings
  checkCombination(kind, options, outbound, delivery)
  const queue = kind === 'work-queue' && !outbound ? (options.queue ?? `shmq-bridge-${shm.name}`) : null
  // the bridges of a queue group share one durable: named after the group, not the local queue
  const durable = options.durable ?? streamName(queue ?? `shmq-bridge-${shm.name}`)
  const stats = newStats(outbound ? 'shm-to-nats' : 'nats-to-shm', delivery)
  const nc = await connectNats(nats.server, `shmq-bridge ${options.from} -> ${options.to}`, options, stats)
  let local: Subscriber | WorkQueueConsumer | Publisher | WorkQueueProducer | null = null
  try {
    const jetstream = delivery === 'at-least-once' ? await openJetStream(nc, nats, settings.stream) : null
    if (outbound) {
      const reader = openReader(kind, shm.name, settings.openTimeout)
      local = reader
      const limits = { ...settings, formatHeaders: options.formatHeaders ?? true, endOfStream: options.endOfStream ?? true }
      const counts = (): SourceCounts =>
        reader instanceof Subscriber ? { lost: reader.lost, resumes: reader.resumes, redelivered: 0 } : { lost: 0, resumes: 0, redelivered: reader.redelivered }
      const pump = new ShmToNats(reader, nc, nats.subject, limits, stats, jetstream?.js ?? null, `${shm.name}.${randomBytes(6).toString('hex')}`, counts)
      // a worker holding an unacknowledged batch must not close: closing hands it on unmarked as if done;
      // left attached, the process's exit makes the dispatcher take it back and redeliver it, marked
      return start(pump, nc, stats, () => (pump.holding ? undefined : reader.close()))
    }
    const writer = createWriter(kind, shm.name, options)
    local = writer
    const pump = new NatsToShm(writer, nc, nats.subject, settings, stats, jetstream === null ? null : { ...jetstream, durable, shared: true }, queue)
    // one writer for the ring's life: when the bridge stops, the local stream ends (stats.ended says whether the remote one did)
    const started = start(pump, nc, stats, () => writer.close())
    await pump.ready
    return started
  } catch (error) {
    local?.close()
    await nc.close().catch(() => undefined)
    throw error
  }
}
