/**
 * The byte layout of a shmq segment, layout version 2: every offset, size and
 * flag, described once. Nothing else in lib/ writes an offset down: it asks a
 * RingLayout (ringLayout()) for it. docs/LAYOUT.md states the same layout for
 * peers written in other languages.
 *
 * A segment is one POSIX shared-memory object, /dev/shm/NAME:
 *
 *   0                 headerBytes                       headerBytes + capacity
 *   +-----------------+---------------------------------+
 *   | segment header  | ring: frames, 8-byte aligned     |
 *   +-----------------+---------------------------------+
 *
 * The header is built cache line by cache line (64 bytes), and its size
 * depends on the ring kind and its number of participant slots:
 *
 *   line 0        segment descriptor (identity; written once by the creator)
 *   line 1        stream words (end of stream, producers waiting)
 *   line 2        write position   (SPSC: producer position; MPSC: tail)
 *   line 4        read position    (consumer position; MPSC: head)
 *   line 6 + 2i   slot i: its owner, waiting and futex words, its claim record
 *   line 7 + 2i   slot i: its counters (lib/counters.ts)
 *   headerBytes = 64 * (6 + 2 * slotCount)
 *
 * The positions sit two lines apart from each other and from the slots (the
 * adjacent-line prefetcher pairs lines), so that writer and reader do not fight
 * over one pair of lines. Every participant's words are its own pair of lines.
 *
 * Segment descriptor (little-endian 32-bit words unless noted):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                   Magic  ("shmq" = 0x716d6873)                |  0
 *  +-------------------------------+-------------------------------+
 *  |        Version major (2)      |        Version minor (0)      |  4
 *  +-------------------------------+-------------------------------+
 *  |            State  (0 initialising, 1 ready: published last)   |  8
 *  |   Kind  (1 SPSC, 2 MPSC, 3 broadcast, 4 work queue, 5 server) | 12
 *  |            Header bytes  (64 * (6 + 2 * slot count))          | 16
 *  |            Capacity  (ring bytes, power of two)               | 20
 *  |            Max message  (largest payload, bytes)              | 24
 *  |            Slot count  (SPSC 2; else 1 + producers/subscribers)| 28
 *  |            Compatible flags  (unknown bits: ignore)           | 32
 *  |            Incompatible flags  (unknown bits: refuse)         | 36
 *  |            Policy  (broadcast: 0 backpressure, 1 lossy)       | 40
 *  |            Reserved to offset 64                           ...| 44
 *  +---------------------------------------------------------------+
 *
 * Stream words (line 1): End of stream (64; 1: no more messages will come,
 * see the kinds) and Producers waiting (68; MPSC: a flag a producer raises
 * right after announcing a park for room; a consumer that releases and finds
 * it raised lowers it, then wakes every producer slot that announced itself).
 *
 * Positions are 64-bit byte counts that only grow: low 32 bits at the offset,
 * high 32 bits at offset + 4. A frame starts at ring index position mod
 * capacity. Each position has one writer, which stores the low word on every
 * publish and, when the low word wraps, the whole 64-bit word in one store, so
 * the full value in memory is always consistent. The hot paths read only the
 * low word of the other side's position: it is never more than capacity
 * (at most 2^30) away from the reader's own, so the reader's own 64-bit value
 * plus the signed 32-bit difference of the low words is the other's full value.
 * The MPSC tail has many writers (compare-exchange on its low word): its high
 * word is not kept, and its full value is always derived from the head's so.
 * Why 64 bits: at the fastest rate measured (52 GB/s) a 32-bit position wraps
 * every 0.08 s; one that counts laps cannot be told apart from one a reader
 * lapped. 64 bits last 11 years at that rate. Why not 64-bit loads and stores
 * on every message: a BigInt64Array Atomics access costs 15-45 ns in V8 against
 * 3 ns for a 32-bit word (measured), more than the whole 64-byte message; the
 * low-word scheme costs one compare per publish. Measured against layout 1
 * (32-bit positions), SPSC rows interleaved (npm run bench:v1, 9 rounds): 64 B
 * v2/v1 1.41x (drain) and 1.06x (drainRaw), 64 KiB 0.93x, all within the noise.
 *
 * Slot i (two lines at 384 + 128 i):
 *
 *   +0   Owner  (64-bit: pid low 32, process start time high 32; 0 = none)
 *   +8   Waiting  (0 no, 1 futex, 2 event loop)
 *   +12  Doorbell  (futex word, +1 per wake-up)
 *   +16  Claim position  (MPSC producers: low 32 bits of the tail it claims at)
 *   +20  Claim bytes  (MPSC producers: bytes claimed there; 0 = no claim open)
 *   +16  Position  (broadcast subscribers, 64-bit: where they read; overlays the claim record)
 *   +24  State  (broadcast subscribers: 0 free, 1 joined, 2 evicted)
 *   +28  Reserved to +64
 *   +64  Counters: eight 64-bit words its holder writes (lib/counters.ts)
 *
 * Broadcast (kind 3) adds JOINS (72) and the oldest line under a sequence
 * lock (256..295, in place of the read position); a work queue's roster
 * (kind 4) and a request/response server's listener (kind 5) are laid out
 * and run as MPSC rings. docs/LAYOUT.md §12, §13, §14.
 *
 * Slot 0 is the consumer; slot 1 the producer (SPSC) or slots 1 ... slotCount-1
 * the producers (MPSC). Slot i's wake-up FIFO is /dev/shm/.shmq-NAME.wake-SUFFIX
 * with the suffix of slotFifoSuffix().
 *
 * Frame (at ring index = position mod capacity, always 8-byte aligned):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |            Length  (payload bytes; padding: bytes it covers)   |  0
 *  +-------------------------------+---------------+---------------+
 *  |   Message type tag (u16)      | Frame type u8 |  Writer slot  |  4
 *  +-------------------------------+---------------+---------------+
 *  |            Payload, then zero to 7 bytes to the next 8-byte   ...  8
 *  +---------------------------------------------------------------+
 *
 * Frame types: 0 none (MPSC: not written yet), 1 message, 2 padding,
 * 3 claimed (MPSC: space taken, not committed), 4 revoked (MPSC: a claim the
 * consumer read past, see lib/mpsc.ts). The type word (bytes 4-7) is the
 * MPSC commit: it is stored last. A frame never wraps: one that would cross
 * the ring's end goes to index 0 behind a padding frame covering the rest.
 */

/** "shmq" read as a little-endian 32-bit word. */
export const MAGIC = 0x716d6873
export const VERSION_MAJOR = 2
export const VERSION_MINOR = 0

export const STATE_INITIALISING = 0
export const STATE_READY = 1

export const KIND_SPSC = 1
export const KIND_MPSC = 2
/** One publisher, many subscribers that each read every message (lib/broadcast.ts). */
export const KIND_BROADCAST = 3
/**
 * One producer handing each message to one of many workers (lib/work-queue.ts):
 * the segment of this kind is the queue's roster, laid out and run as an MPSC
 * ring (the workers are its producers, the dispatching producer its consumer);
 * each worker's messages travel in an SPSC segment of its own.
 */
export const KIND_WORK_QUEUE = 4
/**
 * A request/response server's listener (lib/server.ts): laid out and run as
 * an MPSC ring whose producers are the clients (their requests) and whose
 * consumer is the server; each client's replies travel in an SPSC segment the
 * server makes for it.
 */
export const KIND_SERVER = 5

export type KindName = 'spsc' | 'mpsc' | 'broadcast' | 'work queue' | 'server'

/** Kinds a newer shmq defines, for the message that refuses them. */
export const LATER_KINDS: Readonly<Record<number, string>> = {}

/** Whether a ring of `kind` runs the MPSC protocol (lib/mpsc.ts): MPSC rings, work-queue rosters and server listeners. */
export function runsMpsc(kind: number): boolean {
  return kind === KIND_MPSC || kind === KIND_WORK_QUEUE || kind === KIND_SERVER
}

/**
 * The writer-slot byte of a frame in a work queue's worker ring (an SPSC ring)
 * that carries a message redelivered after the worker it was first given to
 * died: the producer's slot (1) with bit 7 set. Other frames carry 1.
 */
export const WRITER_REDELIVERED = 0x81

/**
 * Incompatible flag: peers may publish positions and commits with plain stores;
 * every parker runs a global expedited membarrier(2) between announcing itself
 * and re-checking (lib/fence.ts). A peer that cannot must refuse the segment.
 */
export const INCOMPATIBLE_PLAIN_PUBLISH = 1 << 0
/**
 * Incompatible flag: every message's payload starts with an 8-byte commit
 * stamp (u64 CLOCK_MONOTONIC ns, lib/timestamps.ts), and the segment ends,
 * after the ring, with the consumer's latency histogram (LATENCY_REGION_BYTES,
 * lib/latency.ts). SPSC and MPSC channels only. A peer that does not strip
 * stamps would hand them to its users as payload, so it must refuse the segment.
 */
export const INCOMPATIBLE_TIMESTAMPS = 1 << 1
export const KNOWN_INCOMPATIBLE_FLAGS = INCOMPATIBLE_PLAIN_PUBLISH | INCOMPATIBLE_TIMESTAMPS
/** Bytes of a commit stamp at the start of each payload of a segment with INCOMPATIBLE_TIMESTAMPS. */
export const STAMP_BYTES = 8
/**
 * Latency histogram after the ring (INCOMPATIBLE_TIMESTAMPS): one 64-byte line
 * of totals (u64 count, sum ns, min ns, max ns, bucket count), then
 * LATENCY_BUCKETS u64 counts. docs/LAYOUT.md §16.
 */
export const LATENCY_BUCKETS = 720
export const LATENCY_REGION_BYTES = 64 + LATENCY_BUCKETS * 8
/** Bytes of a segment: header, ring, and the latency histogram when its flags say so. */
export function segmentBytesFor(headerBytes: number, capacity: number, incompatibleFlags: number): number {
  return headerBytes + capacity + ((incompatibleFlags & INCOMPATIBLE_TIMESTAMPS) !== 0 ? LATENCY_REGION_BYTES : 0)
}
/** Compatible flags: none defined yet. */
export const KNOWN_COMPATIBLE_FLAGS = 0

export const CACHE_LINE_BYTES = 64

// segment descriptor (line 0)
export const MAGIC_OFFSET = 0
export const VERSION_OFFSET = 4 // u16 major at 4, u16 minor at 6
export const STATE_OFFSET = 8
export const KIND_OFFSET = 12
export const HEADER_BYTES_OFFSET = 16
export const CAPACITY_OFFSET = 20
export const MAX_MESSAGE_OFFSET = 24
export const SLOT_COUNT_OFFSET = 28
export const COMPATIBLE_FLAGS_OFFSET = 32
export const INCOMPATIBLE_FLAGS_OFFSET = 36
/** Bytes of the descriptor an opener reads before it knows the header size. */
export const DESCRIPTOR_BYTES = CACHE_LINE_BYTES

// stream words (line 1)
export const END_OF_STREAM_OFFSET = 64
export const PRODUCERS_WAITING_OFFSET = 68
// positions (lines 2 and 4): low word at the offset, high word at offset + 4
export const WRITE_POSITION_OFFSET = 128
export const READ_POSITION_OFFSET = 256
// slots (two lines each, from line 6)
export const SLOTS_OFFSET = 384
export const SLOT_BYTES = 2 * CACHE_LINE_BYTES
export const SLOT_OWNER = 0
export const SLOT_WAITING = 8
export const SLOT_DOORBELL = 12
export const SLOT_CLAIM_POSITION = 16
export const SLOT_CLAIM_BYTES = 20
/** Broadcast subscribers: their 64-bit read position (low word at +16, high at +20, where MPSC keeps its claim record). */
export const SLOT_POSITION = 16
/** Broadcast subscribers: SUBSCRIBER_* state of the slot. */
export const SLOT_STATE = 24
/** The slot's second line: its endpoint's counters (lib/counters.ts), eight 64-bit words. */
export const SLOT_COUNTERS = 64

export const CONSUMER_SLOT = 0
/** The SPSC producer's slot, and the first MPSC producer's. */
export const FIRST_PRODUCER_SLOT = 1

/** Producers an MPSC segment takes unless told otherwise; at most MAX_PRODUCERS. */
export const DEFAULT_MAX_PRODUCERS = 16
/** A frame names its writer's slot in 8 bits: slots 1 to 255. */
export const MAX_PRODUCERS = 255

/** Broadcast: the publisher's slot; subscribers take slots 1 to slotCount - 1. */
export const PUBLISHER_SLOT = 0
/** Subscribers a broadcast segment takes unless told otherwise; at most MAX_SUBSCRIBERS. */
export const DEFAULT_MAX_SUBSCRIBERS = 16
export const MAX_SUBSCRIBERS = 255

/** A subscriber slot's state word (SLOT_STATE). */
export const SUBSCRIBER_FREE = 0
/** Its position is valid: a backpressure publisher waits for it. */
export const SUBSCRIBER_JOINED = 1
/** The publisher stopped waiting for it (stalled past its timeout): it must rejoin. */
export const SUBSCRIBER_EVICTED = 2

/**
 * Broadcast descriptor word at 40: what the publisher does when the slowest
 * subscriber is a ring behind.
 */
export const POLICY_OFFSET = 40
export const POLICY_BACKPRESSURE = 0
export const POLICY_LOSSY = 1
export type PolicyName = 'backpressure' | 'lossy'

/**
 * Broadcast stream words (line 1, beside END_OF_STREAM): SUBSCRIBERS_WAITING is
 * the flag subscribers raise after announcing a park (the MPSC producers'
 * PRODUCERS_WAITING protocol); JOINS counts subscribers joining (see lib/broadcast.ts).
 */
export const SUBSCRIBERS_WAITING_OFFSET = PRODUCERS_WAITING_OFFSET
export const JOINS_OFFSET = 72

/**
 * Broadcast oldest line (line 4, where other kinds keep the read position),
 * written by the publisher only, under a sequence lock: OLDEST_VERSION (64-bit)
 * is odd while the words after it change. OLDEST_POSITION: every frame from it
 * on is intact; before it the publisher may be overwriting. OLDEST_SEQUENCE:
 * messages published before OLDEST_POSITION. CHECKPOINT_*: a recent frame
 * boundary near the tail and the messages before it, where a subscriber
 * joining at the newest message starts counting.
 */
export const OLDEST_VERSION_OFFSET = 256
export const OLDEST_POSITION_OFFSET = 264
export const OLDEST_SEQUENCE_OFFSET = 272
export const CHECKPOINT_POSITION_OFFSET = 280
export const CHECKPOINT_SEQUENCE_OFFSET = 288

/** Values of a waiting word: how the parked side wants to be woken. */
export const WAITING_NONE = 0
export const WAITING_FUTEX = 1
export const WAITING_EVENT_LOOP = 2

// frames (sizes, headers and their checks: lib/frames.ts)
export const FRAME_ALIGNMENT = 8
export const FRAME_HEADER_BYTES = 8
export const FRAME_LENGTH_OFFSET = 0
export const FRAME_TYPE_OFFSET = 4
export const FRAME_NONE = 0
export const FRAME_MESSAGE = 1
export const FRAME_PADDING = 2
export const FRAME_CLAIMED = 3
export const FRAME_REVOKED = 4
/** Largest message type tag (16 bits). */
export const MAX_MESSAGE_TYPE = 0xffff

// capacities
export const MIN_CAPACITY = 1024
export const MAX_CAPACITY = 1 << 30
export const DEFAULT_CAPACITY = 1 << 20

/** Index of a header word in an Int32Array over the segment. */
export function word(byteOffset: number): number {
  return byteOffset >> 2
}

/** Where slot `index`'s words are: byte offsets into the segment. */
export interface SlotLayout {
  readonly index: number
  readonly owner: number
  readonly waiting: number
  readonly doorbell: number
  readonly claimPosition: number
  readonly claimBytes: number
  /** Broadcast subscribers: 64-bit read position. */
  readonly position: number
  /** Broadcast subscribers: SUBSCRIBER_* state. */
  readonly state: number
  /** The counters line: eight 64-bit counters of whoever holds the slot (lib/counters.ts). */
  readonly counters: number
  /** The FIFO that wakes this slot's endpoint: /dev/shm/.shmq-NAME.wake-<fifo>. */
  readonly fifo: string
}

/** Everything of a segment header that depends on its kind. */
export interface RingLayout {
  readonly kind: number
  readonly kindName: KindName
  readonly slotCount: number
  readonly headerBytes: number
  /** slots[0] is the consumer (broadcast: the publisher), the rest producers (broadcast: subscribers). */
  readonly slots: readonly SlotLayout[]
}

/** The FIFO name suffix of slot `index` of a ring of `kind` (letters, digits and '-' only: native code checks). */
export function slotFifoSuffix(kind: number, index: number): string {
  if (kind === KIND_BROADCAST) return index === PUBLISHER_SLOT ? 'publisher' : `subscriber-${index}`
  if (index === CONSUMER_SLOT) return 'consumer'
  return kind === KIND_SPSC ? 'producer' : `producer-${index}`
}

/** Header bytes of a ring with `slotCount` slots. */
export function headerBytesFor(slotCount: number): number {
  return SLOTS_OFFSET + slotCount * SLOT_BYTES
}

function kindName(kind: number): KindName {
  return kind === KIND_SPSC ? 'spsc' : kind === KIND_MPSC ? 'mpsc' : kind === KIND_BROADCAST ? 'broadcast' : kind === KIND_WORK_QUEUE ? 'work queue' : 'server'
}

const layouts = new Map<number, RingLayout>()

/**
 * The layout of a ring of `kind` with `slotCount` slots, computed once per
 * shape: slot i's words at SLOTS_OFFSET + i * SLOT_BYTES, in order.
 */
export function ringLayout(kind: number, slotCount: number): RingLayout {
  const key = kind * 1024 + slotCount
  let layout = layouts.get(key)
  if (layout === undefined) {
    const slots: SlotLayout[] = []
    for (let index = 0, at = SLOTS_OFFSET; index < slotCount; index++, at += SLOT_BYTES) {
      slots.push(Object.freeze({
        index,
        owner: at + SLOT_OWNER,
        waiting: at + SLOT_WAITING,
        doorbell: at + SLOT_DOORBELL,
        claimPosition: at + SLOT_CLAIM_POSITION,
        claimBytes: at + SLOT_CLAIM_BYTES,
        position: at + SLOT_POSITION,
        state: at + SLOT_STATE,
        counters: at + SLOT_COUNTERS,
        fifo: slotFifoSuffix(kind, index),
      }))
    }
    layout = Object.freeze({ kind, kindName: kindName(kind), slotCount, headerBytes: headerBytesFor(slotCount), slots: Object.freeze(slots) })
    layouts.set(key, layout)
  }
  return layout
}

/** Why `slotCount` is not valid for `kind`, or null. Null also for kinds this version does not know (checked apart). */
export function checkSlotCount(kind: number, slotCount: number): string | null {
  if (kind === KIND_SPSC && slotCount !== 2) return `an SPSC segment has 2 slots, this one says ${slotCount}`
  if (runsMpsc(kind) && !(Number.isInteger(slotCount) && slotCount >= 2 && slotCount <= MAX_PRODUCERS + 1)) {
    return `${kind === KIND_MPSC ? 'an MPSC' : kind === KIND_WORK_QUEUE ? 'a work-queue' : 'a server'} segment has 2 to ${MAX_PRODUCERS + 1} slots, this one says ${slotCount}`
  }
  if (kind === KIND_BROADCAST && !(Number.isInteger(slotCount) && slotCount >= 2 && slotCount <= MAX_SUBSCRIBERS + 1)) {
    return `a broadcast segment has 2 to ${MAX_SUBSCRIBERS + 1} slots, this one says ${slotCount}`
  }
  return null
}

export const SPSC_LAYOUT = ringLayout(KIND_SPSC, 2)

/** Largest header: an MPSC ring with MAX_PRODUCERS producers. */
export const MAX_HEADER_BYTES = headerBytesFor(MAX_PRODUCERS + 1)

/**
 * The largest payload a ring of `capacity` bytes can always accept: a frame of
 * up to half the ring fits after any padding frame once the consumer caught up.
 */
export function maxMessageFor(capacity: number): number {
  return capacity / 2 - FRAME_HEADER_BYTES
}

export function isPowerOfTwo(value: number): boolean {
  return Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0
}

/** Why `capacity` is not a valid ring size, or null when it is. */
export function checkCapacity(capacity: unknown): string | null {
  if (typeof capacity !== 'number' || !Number.isInteger(capacity)) return 'capacity must be an integer number of bytes'
  if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY) {
    return `capacity must be between ${MIN_CAPACITY} and ${MAX_CAPACITY} bytes (got ${capacity})`
  }
  if (!isPowerOfTwo(capacity)) return `capacity must be a power of two (got ${capacity}; try ${2 ** Math.ceil(Math.log2(capacity))})`
  return null
}

/** Why `maxMessage` does not suit a ring of `capacity` bytes, or null. */
export function checkMaxMessage(maxMessage: unknown, capacity: number): string | null {
  if (typeof maxMessage !== 'number' || !Number.isInteger(maxMessage) || maxMessage < 0) {
    return 'maxMessage must be a non-negative integer number of bytes'
  }
  if (maxMessage > maxMessageFor(capacity)) {
    return `maxMessage must be at most capacity / 2 - ${FRAME_HEADER_BYTES} = ${maxMessageFor(capacity)} bytes for a ${capacity}-byte ring`
  }
  return null
}

/** Why `maxProducers` is not a valid MPSC producer count, or null. */
export function checkMaxProducers(maxProducers: unknown): string | null {
  if (typeof maxProducers !== 'number' || !Number.isInteger(maxProducers) || maxProducers < 1 || maxProducers > MAX_PRODUCERS) {
    return `maxProducers must be an integer from 1 to ${MAX_PRODUCERS} (got ${String(maxProducers)})`
  }
  return null
}

/** Why `maxSubscribers` is not a valid broadcast subscriber count, or null. */
export function checkMaxSubscribers(maxSubscribers: unknown): string | null {
  if (typeof maxSubscribers !== 'number' || !Number.isInteger(maxSubscribers) || maxSubscribers < 1 || maxSubscribers > MAX_SUBSCRIBERS) {
    return `maxSubscribers must be an integer from 1 to ${MAX_SUBSCRIBERS} (got ${String(maxSubscribers)})`
  }
  return null
}

/** The type word of a frame: message type tag, frame type, writer slot. */
export function frameTypeWord(frameType: number, tag: number, slot: number): number {
  return tag | (frameType << 16) | (slot << 24)
}
