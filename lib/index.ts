/**
 * shmq: framed zero-copy message queues between Node.js processes over POSIX
 * shared memory.
 */
export { Producer, type ProducerCreateOptions, type ProducerOpenOptions } from './producer'
export { Consumer, type ConsumerCreateOptions, type ConsumerOpenOptions, type DrainOptions } from './consumer'
export { Publisher, type PublisherCreateOptions } from './publisher'
export { Subscriber, type SubscriberOpenOptions } from './subscriber'
export { WorkQueueProducer, WorkQueueConsumer, type WorkQueueCreateOptions, type WorkQueueStats, type WorkerStats } from './work-queue'
export { Server, RequestContext, type Committed, type Handler, type ServerCloseOptions, type ServerOptions, type ServerStats } from './server'
export { Client, type ClientOptions, type ClientStats, type Reply, type RequestOptions } from './client'
export { ShmqError, type ShmqErrorCode } from './errors'
export type { ChannelStats, SlotStats } from './stats'
export type { RawHandler } from './spsc'
export type { CreateOptions, OpenOptions } from './segment'
export type { WaitOptions } from './endpoint'
export { DEFAULT_CAPACITY, MIN_CAPACITY, MAX_CAPACITY } from './layout'
export { DEFAULT_SPIN_MICROS } from './waiter'

export { collectGarbage, inspectSegment, listSegments, statSegment, type GcOptions, type GcResult, type PeerReport, type SegmentReport } from './admin'

import { unlinkSegment } from './segment'

/**
 * Removes segment `name` and its wake-up FIFOs from /dev/shm. Processes that
 * have it open keep using it; later opens fail with ENOENT.
 */
export function unlink(name: string): void {
  unlinkSegment(name)
}

// the message format (docs/FORMAT.md)
export * from './format'
