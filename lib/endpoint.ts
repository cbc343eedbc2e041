/**
 * What a Producer and a Consumer share: creating or opening the segment,
 * attaching to a slot, and a waiter; undone in reverse on any failure.
 */
import { ShmqError } from './errors'
import * as L from './layout'
import { type CreateOptions, type OpenOptions, Segment, unlinkSegment } from './segment'
import { DEFAULT_SPIN_MICROS, Waiter } from './waiter'

export interface WaitOptions {
  /**
   * Microseconds to spin (re-checking the ring) before parking when a read or
   * write has to wait. Spinning answers a busy peer in well under a microsecond
   * but holds the thread; parking costs a wake-up (tens of microseconds) and
   * no CPU. Default 20. 0 parks at once.
   */
  spin?: number
}

export type Side = 'producer' | 'consumer'

export interface Endpoint {
  segment: Segment
  waiter: Waiter
  /** The slot attached to. */
  slot: number
}

function spinMicros(name: string, options: WaitOptions): number {
  const spin = options.spin ?? DEFAULT_SPIN_MICROS
  if (typeof spin !== 'number' || !(spin >= 0) || spin > 1_000_000) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `spin must be a number of microseconds from 0 to 1000000 (got ${String(spin)})`, { segment: name })
  }
  return spin
}

/**
 * Throws ERR_SHMQ_CORRUPT unless the write position (producer position, or
 * MPSC tail) is 0 to capacity bytes ahead of the read position (mod 2^32).
 * Only once attached does our own position stand still (no other holder of our
 * slot moves it), and the other can move only within that range, so the check
 * cannot misfire on a live ring.
 */
function checkDistance(segment: Segment): void {
  const broadcast = segment.layout.kind === L.KIND_BROADCAST
  let write = 0
  let read = 0
  let fill = 0
  // Broadcast: the oldest intact frame is the read side's bound. With many producers or a
  // broadcast ring both positions move while we look (other producers, other subscribers): the
  // read side first (the write side is never behind it), and a few looks, since a pause between
  // the two loads lets the write side move more than a ring past the read side we saw
  for (let look = 0; look < 3; look++) {
    // SYNC POINT: acquire both positions; each may move, within the range checked
    read = Atomics.load(segment.words, L.word(broadcast ? L.OLDEST_POSITION_OFFSET : L.READ_POSITION_OFFSET))
    write = Atomics.load(segment.words, L.word(L.WRITE_POSITION_OFFSET))
    fill = (write - read) | 0
    if (fill >= 0 && fill <= segment.capacity) return
  }
  throw new ShmqError(
    'ERR_SHMQ_CORRUPT',
    `segment '${segment.name}' is corrupt (write position ${write >>> 0} is not 0 to ${segment.capacity} bytes ahead of read position ${read >>> 0}): unlink it and create it anew`,
    { segment: segment.name },
  )
}

/**
 * Creates (`create`) or opens segment `name` and attaches to it as `side`: the
 * consumer slot, the SPSC producer slot, or a free MPSC producer slot; on a
 * broadcast segment the publisher's slot (producer) or a free subscriber slot
 * (consumer). `check`
 * runs after opening, before attaching, to refuse a segment; the distance
 * between the positions is checked right after attaching.
 */
export function connect(
  side: Side,
  create: boolean,
  name: string,
  options: (CreateOptions | OpenOptions) & WaitOptions,
  check?: (segment: Segment) => void,
): Endpoint {
  if (options === null || typeof options !== 'object') {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'options must be an object, e.g. { capacity: 1 << 20 }')
  }
  const spin = spinMicros(name, options)
  const segment = create ? Segment.create(name, options as CreateOptions) : Segment.open(name, options as OpenOptions)
  let attached = false
  try {
    check?.(segment)
    const many = L.runsMpsc(segment.layout.kind)
    const broadcast = segment.layout.kind === L.KIND_BROADCAST
    let slot: number = L.CONSUMER_SLOT
    if (broadcast) {
      if (side === 'producer') segment.attach((slot = L.PUBLISHER_SLOT))
      else slot = segment.attachProducer()
    } else if (side === 'consumer') segment.attach(slot)
    else if (many) slot = segment.attachProducer()
    else segment.attach((slot = L.FIRST_PRODUCER_SLOT))
    attached = true
    if (!create) checkDistance(segment)
    let waiter: Waiter
    if (broadcast) {
      // subscribers raise SUBSCRIBERS_WAITING as MPSC producers raise PRODUCERS_WAITING; the publisher follows none of them while it writes
      waiter =
        side === 'producer'
          ? new Waiter(segment, { own: slot, peer: -1 }, spin)
          : new Waiter(segment, { own: slot, peer: L.PUBLISHER_SLOT, countsAsWaitingProducer: true }, spin)
    } else {
      waiter =
        side === 'consumer'
          ? new Waiter(segment, { own: slot, peer: many ? -1 : L.FIRST_PRODUCER_SLOT }, spin)
          : new Waiter(segment, { own: slot, peer: L.CONSUMER_SLOT, countsAsWaitingProducer: many }, spin)
    }
    // a peer parked before we came follows no process: wake it so that it
    // re-checks and starts watching us (it must learn if we die)
    if ((side === 'consumer' && many) || (side === 'producer' && broadcast)) waiter.wakeProducers()
    else waiter.wakePeer()
    return { segment, waiter, slot }
  } catch (error) {
    if (attached) segment.detach()
    segment.close()
    if (create) unlinkSegment(name)
    throw error
  }
}
