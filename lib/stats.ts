/**
 * A channel's counters as a typed object, from a segment header: a mapped
 * segment's (stats() on an endpoint) or a copy read with pread (`shmq stat`,
 * which never attaches). The counters themselves: lib/counters.ts.
 */
import * as C from './counters'
import * as L from './layout'
import { peerReport } from './liveness'
import type { Segment } from './segment'
import { type LatencyStats, readLatency } from './latency'

/** One participant slot that is or was in use. */
export interface SlotStats {
  slot: number
  /** What the slot's holder does. */
  role: 'producer' | 'consumer' | 'publisher' | 'subscriber'
  /** The holder's pid (the last holder's, when none holds it now), or null when it never had one. */
  pid: number | null
  alive: boolean
  messages: number
  bytes: number
  /** Writers: times a write found no room. Readers: messages lost. */
  fullOrLost: number
  parks: number
  wakeups: number
  /** Writers: padding frames. Readers: redelivered messages (work queues). */
  paddingOrRedelivered: number
  /** Readers: corrupt rings refused. */
  corrupt: number
  /** Readers: messages refused by format checks. */
  formatErrors: number
}

export interface ChannelStats {
  kind: L.KindName
  capacity: number
  /** Bytes written and not yet released (broadcast: from the oldest intact message to the tail). */
  fill: number
  /** fill / capacity, 0 to 1. */
  fillRatio: number
  /** Sums over the writing slots. */
  written: { messages: number; bytes: number; full: number; padding: number; parks: number; wakeups: number }
  /** Sums over the reading slots (broadcast: every subscriber's). */
  read: { messages: number; bytes: number; lost: number; redelivered: number; corrupt: number; formatErrors: number; parks: number; wakeups: number }
  /** Every slot in use now or before (an owner word or a counter not zero). */
  slots: SlotStats[]
  /**
   * Commit → read latency of the messages read so far, in ns, from the
   * consumer's histogram in the segment (lib/latency.ts); null unless the
   * segment was created with `timestamps: true`. Percentiles are bucket tops:
   * at most 6.25% above the true value; min and max are exact.
   */
  latency: LatencyStats | null
}

function roleOf(kind: number, slot: number): SlotStats['role'] {
  if (kind === L.KIND_BROADCAST) return slot === L.PUBLISHER_SLOT ? 'publisher' : 'subscriber'
  return slot === L.CONSUMER_SLOT ? 'consumer' : 'producer'
}

/**
 * The counters of every slot of a segment whose header is `header`, with
 * `fill` and liveness: `held(slot)` says whether a live process holds the
 * slot now (its lock), when the caller can tell; else the owner's pid is
 * looked up.
 */
export function channelStats(header: DataView, layout: L.RingLayout, capacity: number, fill: number, held?: (slot: number) => boolean, latency: LatencyStats | null = null): ChannelStats {
  const written = { messages: 0, bytes: 0, full: 0, padding: 0, parks: 0, wakeups: 0 }
  const read = { messages: 0, bytes: 0, lost: 0, redelivered: 0, corrupt: 0, formatErrors: 0, parks: 0, wakeups: 0 }
  const slots: SlotStats[] = []
  for (let slot = 0; slot < layout.slotCount; slot++) {
    const values = C.readCounters(header, layout, slot)
    const owner = header.getBigUint64(layout.slots[slot]!.owner, true)
    if (owner === 0n && values.every((value) => value === 0)) continue
    const report = owner === 0n ? null : peerReport(owner, held === undefined ? true : held(slot))
    const stats: SlotStats = {
      slot,
      role: roleOf(layout.kind, slot),
      pid: report?.pid ?? null,
      alive: report?.alive ?? false,
      messages: values[C.MESSAGES]!,
      bytes: values[C.BYTES]!,
      fullOrLost: values[C.FULL]!,
      parks: values[C.PARKS]!,
      wakeups: values[C.WAKEUPS]!,
      paddingOrRedelivered: values[C.PADDING]!,
      corrupt: values[C.CORRUPT]!,
      formatErrors: values[C.FORMAT_ERRORS]!,
    }
    slots.push(stats)
    if (C.writesSlot(layout.kind, slot)) {
      written.messages += stats.messages
      written.bytes += stats.bytes
      written.full += stats.fullOrLost
      written.padding += stats.paddingOrRedelivered
      written.parks += stats.parks
      written.wakeups += stats.wakeups
    } else {
      read.messages += stats.messages
      read.bytes += stats.bytes
      read.lost += stats.fullOrLost
      read.redelivered += stats.paddingOrRedelivered
      read.corrupt += stats.corrupt
      read.formatErrors += stats.formatErrors
      read.parks += stats.parks
      read.wakeups += stats.wakeups
    }
  }
  return { kind: layout.kindName, capacity, fill, fillRatio: capacity > 0 ? Math.min(1, Math.max(0, fill / capacity)) : 0, written, read, slots, latency }
}

/**
 * stats() of an endpoint attached to `segment` in slot `ownSlot`: its own
 * counts stored first (so they are exact), then every slot's read from the
 * mapping. Its own slot's lock reads as free to itself: that slot is alive.
 * A consumer stores its latency histogram before calling this.
 */
export function endpointStats(segment: Segment, counts: C.SideCounts, fill: number, ownSlot: number): ChannelStats {
  counts.flush()
  const header = new DataView(segment.buffer, 0, segment.layout.headerBytes)
  const latency = segment.timestamps ? readLatency(new DataView(segment.buffer, segment.layout.headerBytes + segment.capacity, L.LATENCY_REGION_BYTES)) : null
  return channelStats(header, segment.layout, segment.capacity, fill, (slot) => slot === ownSlot || segment.slotHeld(slot), latency)
}
