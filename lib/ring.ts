/**
 * What Producer and Consumer need of a ring protocol, whatever its kind
 * (lib/spsc.ts, lib/mpsc.ts): the writing and the reading half.
 */

import type { SideCounts } from './counters'

/** A message handler that gets the segment's bytes, the message's offset, length and type tag: no allocation. */
export type RawHandler = (bytes: Uint8Array, offset: number, length: number, type: number) => void

export interface RingWriter {
  /** What this side counts, for its slot's counters line (lib/counters.ts). */
  readonly counts: SideCounts
  readonly maxMessage: number
  readonly hasClaim: boolean
  readonly claimLength: number
  /** Bytes published (or claimed) and not yet released by the consumer. */
  readonly fill: number
  checkLength(length: number): void
  tryWrite(message: Uint8Array, length: number, type?: number): boolean
  hasRoomFor(length: number, slack?: number): boolean
  tryClaim(length: number): Uint8Array | null
  tryClaimRaw(length: number): number
  commit(length?: number, type?: number): void
  abort(): void
  /** Broadcast: while full, drops a dead or stalled subscriber that holds the writer back; true if one was. */
  unblock?(): boolean
  /** Broadcast: the subscriber slot holding the writer back, to follow for its death; -1 when none. */
  readonly blockingSlot?: number
}

export interface RingReader {
  /** What this side counts, for its slot's counters line (lib/counters.ts). */
  readonly counts: SideCounts
  /** Message type tag of the last message tryRead() returned. */
  readonly lastType: number
  readonly isReady: () => boolean
  readonly ended: boolean
  readonly fill: number
  tryRead(): Uint8Array | null
  release(): void
  drain(handler: (message: Uint8Array) => void, limit: number, hold?: boolean): number
  drainRaw(handler: RawHandler, limit: number, hold?: boolean): number
  stop(): void
}
