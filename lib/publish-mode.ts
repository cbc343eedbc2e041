/**
 * How one side of a ring publishes (a position, or an MPSC commit): chosen by
 * the caller and injected into the ring protocols, never looked up by them
 * (Producer and Consumer pass the process's mode, lib/fence.ts), so that the
 * protocols run without the addon.
 *
 * Every publish is followed by a load of the peer's waiting word: one half of a
 * Dekker pair with the peer's park, which needs a store-load fence between the
 * two. Fenced: the publish is an Atomics.store (sequentially consistent).
 * Plain: the publish is a plain store (x64 keeps stores in program order, and V8
 * emits them so), and the fence is `fence` when set, else the parker's: a
 * membarrier(2) run on every CPU of registered processes (lib/fence.ts). Plain
 * publishing is allowed only on a segment whose incompatible flags say so
 * (L.INCOMPATIBLE_PLAIN_PUBLISH): its parkers know to fence.
 */
export interface PublishMode {
  readonly plain: boolean
  /** Plain mode only: run between the plain store and the waiting-word load; null when the parker fences. */
  readonly fence: (() => void) | null
}

/** Atomics.store publishes; correct everywhere, with any parker. */
export const FENCED_PUBLISH: PublishMode = Object.freeze({ plain: false, fence: null })

/**
 * Stores a 64-bit position whose low word just wrapped (see lib/layout.ts):
 * the whole word at once, so that its two halves in memory always agree.
 * `words64` is a BigInt64Array over the segment, `at` the position's byte offset.
 */
export function storeWrappedPosition(words64: BigInt64Array, at: number, high: number, low: number): void {
  // SYNC POINT: as the publish it replaces (sequentially consistent, once per 4 GiB)
  Atomics.store(words64, at >> 3, (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0))
}

/** The high word of the 64-bit position at byte offset `at`. */
export function loadPositionHigh(words: Int32Array, at: number): number {
  return Atomics.load(words, (at >> 2) + 1) >>> 0
}
