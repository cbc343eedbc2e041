/**
 * Publisher: the writing end of a broadcast channel (kind 3, lib/broadcast.ts).
 * Every subscriber reads every message it publishes from the moment it joined.
 * It has the Producer's write API (tryWrite, write, tryClaim, claim, commit,
 * abort, the message type tag); close() ends the stream for every subscriber.
 */
import { DEFAULT_SUBSCRIBER_TIMEOUT_MS } from './broadcast'
import { connect, type WaitOptions } from './endpoint'
import { ShmqError } from './errors'
import * as L from './layout'
import { Producer } from './producer'
import type { BroadcastWriter } from './broadcast'
import type { WorkQueueCreateOptions } from './work-queue'

export interface PublisherCreateOptions extends WaitOptions {
  /** Ring size in bytes: a power of two from 1 KiB to 1 GiB. Default 1 MiB. */
  capacity?: number
  /** Largest message in bytes. Default and upper bound: capacity / 2 - 8. */
  maxMessage?: number
  /** File mode of the segment and its wake-up FIFOs. Default 0o600. */
  mode?: number
  /**
   * 'backpressure' (default): the publisher waits for the slowest live
   * subscriber; subscribers read in place. 'lossy': the publisher never waits;
   * a subscriber a ring behind loses the oldest messages (counted in `lost`),
   * and reads copies.
   */
  policy?: L.PolicyName
  /** Subscribers that may be attached at once: 1 to 255. Default 16. */
  maxSubscribers?: number
  /**
   * Backpressure: ms a live subscriber that does not move (stopped, hung) may
   * hold a full ring before the publisher stops waiting for it (it is evicted:
   * it resumes at the oldest message and counts what it missed). Default 5000.
   */
  subscriberTimeout?: number
}

export class Publisher extends Producer {
  /** Creates broadcast segment `name` (it must not exist) and becomes its publisher. */
  static override create(name: string, options: WorkQueueCreateOptions): never
  static override create(name: string, options?: PublisherCreateOptions): Publisher
  static override create(name: string, given: PublisherCreateOptions | WorkQueueCreateOptions = {}): Publisher {
    if (given === null || typeof given !== 'object') {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'options must be an object, e.g. { capacity: 1 << 20 }', { segment: name })
    }
    if ('consumers' in given && given.consumers !== undefined) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `every subscriber of a broadcast ring reads every message: for a work queue, Producer.create('${name}', { consumers: 'many' })`, { segment: name })
    }
    const options: PublisherCreateOptions = given
    const policy = options.policy ?? 'backpressure'
    if (policy !== 'backpressure' && policy !== 'lossy') {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `policy must be 'backpressure' or 'lossy' (got ${String(policy)})`, { segment: name })
    }
    const timeout = options.subscriberTimeout ?? DEFAULT_SUBSCRIBER_TIMEOUT_MS
    if (typeof timeout !== 'number' || !(timeout >= 0)) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `subscriberTimeout must be a number of milliseconds >= 0 (got ${String(timeout)})`, { segment: name })
    }
    const broadcast = { policy: policy === 'lossy' ? L.POLICY_LOSSY : L.POLICY_BACKPRESSURE, maxSubscribers: options.maxSubscribers ?? L.DEFAULT_MAX_SUBSCRIBERS }
    const { capacity, maxMessage, mode, spin } = options
    // timestamps are refused by Segment.create: subscribers keep no histogram
    const { timestamps } = given as { timestamps?: boolean }
    return new Publisher(connect('producer', true, name, { capacity, maxMessage, mode, spin, broadcast, timestamps }), timeout)
  }

  /** Publishers are created, never opened: a broadcast ring has one publisher for its life. */
  static override open(name: string): never {
    throw new ShmqError('ERR_SHMQ_KIND', `a broadcast ring has one publisher for its life: create a new one with Publisher.create('${name}'), or read '${name}' with Subscriber.open`, { segment: name })
  }

  private get broadcast(): BroadcastWriter {
    return this.ring as BroadcastWriter
  }

  /** 'backpressure' or 'lossy'. */
  get policy(): L.PolicyName {
    return this.broadcast.lossy ? 'lossy' : 'backpressure'
  }

  /** Messages published. */
  get published(): number {
    return this.broadcast.published
  }

  /** Subscribers the publisher stopped waiting for: `dead` (their slot reclaimed) and `evicted` (stalled past subscriberTimeout). */
  get dropped(): { dead: number; evicted: number } {
    return { ...this.broadcast.dropped }
  }
}
