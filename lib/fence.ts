/**
 * How this process publishes positions, decided once.
 *
 * Every publish is followed by a check of the peer's waiting word (a Dekker
 * handshake with the peer's park). That needs a store-load fence between the
 * publish and the check. Put on the publisher, it costs a sequentially
 * consistent store per message (measured: 15 M msgs/s instead of 29 M for 64 B
 * messages). Put on the parker, which is about to sleep anyway, it costs one
 * membarrier(2) per park (about 0.5 us): the publisher uses a plain store (a
 * release store on x64, whose memory model keeps stores in order) and the parker
 * runs a barrier on every CPU that runs a registered process.
 *
 * Plain publishing is used when the kernel offers global expedited membarrier,
 * this is an x64 CPU, and the segment allows it: its creator could fence too,
 * and set L.INCOMPATIBLE_PLAIN_PUBLISH, so every peer's parks fence. Elsewhere,
 * or with SHMQ_FENCED_PUBLISH=1 in the environment, positions are published
 * with Atomics.store.
 */
import { native } from './native'
import { FENCED_PUBLISH, type PublishMode } from './publish-mode'

let plainPublish: boolean | null = null
let canFencePeers = false

function decide(): boolean {
  const { canFence, registered } = native.membarrierRegister()
  canFencePeers = canFence
  const forced = process.env.SHMQ_FENCED_PUBLISH === '1'
  return process.arch === 'x64' && canFence && registered && !forced
}

/** True when positions may be published with plain stores (see above). */
export function usePlainPublish(): boolean {
  plainPublish ??= decide()
  return plainPublish
}

const PLAIN_PUBLISH: PublishMode = Object.freeze({ plain: true, fence: null })

/**
 * The mode this process's ring writers and readers publish in on a segment
 * that allows plain publishing (`allowed`) or not: plain stores whose fence is
 * the parker's membarrier (fencePeers), or Atomics.store.
 */
export function publishMode(allowed: boolean): PublishMode {
  return allowed && usePlainPublish() ? PLAIN_PUBLISH : FENCED_PUBLISH
}

/** Whether this process's parks can fence its peers' plain stores (membarrier works here). */
export function canFence(): boolean {
  if (plainPublish === null) usePlainPublish()
  return canFencePeers
}

/**
 * Called by a parker after announcing itself and before re-checking: makes a
 * peer's plain publish either visible to the re-check, or makes the peer see
 * the announcement.
 */
export function fencePeers(): void {
  if (plainPublish === null) usePlainPublish()
  if (canFencePeers) native.membarrierFence()
}
