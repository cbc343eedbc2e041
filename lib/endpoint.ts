/**
 * What a Producer and a Consumer share: creating or opening the segment,
 * attaching as one role, and a waiter; undone in reverse on any failure.
 */
import { ShmqError } from './errors'
import * as L from './layout'
import { type CreateOptions, type OpenOptions, type Role, Segment, unlinkSegment } from './segment'
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

export interface Endpoint {
  segment: Segment
  waiter: Waiter
}

function spinMicros(name: string, options: WaitOptions): number {
  const spin = options.spin ?? DEFAULT_SPIN_MICROS
  if (typeof spin !== 'number' || !(spin >= 0) || spin > 1_000_000) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `spin must be a number of microseconds from 0 to 1000000 (got ${String(spin)})`, { segment: name })
  }
  return spin
}

/**
 * Throws ERR_SHMQ_CORRUPT unless the producer position is 0 to capacity bytes
 * ahead of the consumer position (mod 2^32). Only once attached does our own
 * position stand still (no other holder of our role moves it), and the peer's
 * can move only within that range, so the check cannot misfire on a live ring.
 */
function checkDistance(segment: Segment): void {
  // SYNC POINT: acquire both positions; ours is stable, the peer's may move within the range checked
  const producer = Atomics.load(segment.words, L.word(L.PRODUCER_POSITION_OFFSET))
  const consumer = Atomics.load(segment.words, L.word(L.CONSUMER_POSITION_OFFSET))
  const fill = (producer - consumer) | 0
  if (fill < 0 || fill > segment.capacity) {
    throw new ShmqError(
      'ERR_SHMQ_CORRUPT',
      `segment '${segment.name}' is corrupt (producer position ${producer >>> 0} is not 0 to ${segment.capacity} bytes ahead of consumer position ${consumer >>> 0}): unlink it and create it anew`,
      { segment: segment.name },
    )
  }
}

/**
 * Creates (`create`) or opens segment `name` and attaches to it as `role`.
 * `check` runs after opening, before attaching, to refuse a segment; the
 * distance between the positions is checked right after attaching.
 */
export function connect(
  role: Role,
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
    segment.attach(role)
    attached = true
    if (!create) checkDistance(segment)
    const waiter = new Waiter(segment, role, spin)
    // a peer parked before we came follows no process: wake it so that it
    // re-checks and starts watching us (it must learn if we die)
    waiter.wakePeer()
    return { segment, waiter }
  } catch (error) {
    if (attached) segment.detach(role)
    segment.close()
    if (create) unlinkSegment(name)
    throw error
  }
}
