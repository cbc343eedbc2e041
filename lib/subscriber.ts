/**
 * Subscriber: one of many readers of a broadcast channel (lib/broadcast.ts).
 * It has the Consumer's read API (tryRead, drain, drainRaw, read, for await,
 * readSync, release, close, lastType), plus `lost`.
 *
 * Views: under 'backpressure' they point into the ring (zero copy) and stay
 * valid as in a Consumer, until released. Under 'lossy' they point into the
 * subscriber's own copy of the message, checked intact after copying, and stay
 * valid until the next read: the ring under them may be overwritten at any
 * time, the copy is not.
 */
import type { JoinFrom } from './broadcast'
import { Consumer } from './consumer'
import { connect, type WaitOptions } from './endpoint'
import { ShmqError } from './errors'
import * as L from './layout'
import type { OpenOptions } from './segment'

export interface SubscriberOpenOptions extends OpenOptions, WaitOptions {
  /** 'next' (default): the first message published after joining. 'oldest': the oldest message still intact in the ring. */
  from?: JoinFrom
}

export class Subscriber extends Consumer {
  /** Joins broadcast segment `name` as a subscriber, in a free subscriber slot. */
  static override open(name: string, options: SubscriberOpenOptions = {}): Subscriber {
    const from = (options !== null && typeof options === 'object' ? options.from : undefined) ?? 'next'
    if (from !== 'next' && from !== 'oldest') {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `from must be 'next' or 'oldest' (got ${String(from)})`, { segment: name })
    }
    const endpoint = connect('consumer', false, name, options, (segment) => {
      if (segment.layout.kind !== L.KIND_BROADCAST) {
        throw new ShmqError('ERR_SHMQ_KIND', `segment '${name}' is not a broadcast ring (it is ${segment.layout.kindName}): read it with Consumer.open('${name}')`, { segment: name })
      }
    })
    return new Subscriber(endpoint, 0, from)
  }

  /** Subscribers join broadcast rings that a Publisher created. */
  static override create(name: string): never {
    throw new ShmqError('ERR_SHMQ_KIND', `subscribers join a broadcast ring a Publisher created: Publisher.create('${name}'), then Subscriber.open('${name}')`, { segment: name })
  }

  /** Messages this subscriber missed: overwritten before it read them (lossy), or published while it was evicted (backpressure). */
  get lost(): number {
    return this.subscription!.lost
  }

  /** 'backpressure' or 'lossy'. */
  get policy(): L.PolicyName {
    return this.subscription!.lossy ? 'lossy' : 'backpressure'
  }

  /** Times this subscriber was lapped (lossy) or evicted (backpressure) and resumed at the oldest intact message. */
  get resumes(): number {
    return this.subscription!.resumes
  }
}
