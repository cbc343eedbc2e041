/**
 * The byte layout of a shmq segment: every offset, size and flag, described once.
 * docs/LAYOUT.md states the same layout for readers written in other languages.
 *
 * A segment is one POSIX shared-memory object, /dev/shm/NAME:
 *
 *   0                HEADER_BYTES                      HEADER_BYTES + capacity
 *   +----------------+---------------------------------+
 *   | segment header | ring: frames, 8-byte aligned     |
 *   +----------------+---------------------------------+
 *
 * Segment header (all fields little-endian 32-bit words unless noted):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                   Magic  ("shmq" = 0x716d6873)                |  0  line 0: identity,
 *  +-------------------------------+-------------------------------+      written once by
 *  |        Version major          |        Version minor          |  4     the creator
 *  +-------------------------------+-------------------------------+
 *  |            State  (0 initialising, 1 ready: published last)   |  8
 *  +---------------------------------------------------------------+
 *  |            Kind  (1 = single producer, single consumer)       | 12
 *  +---------------------------------------------------------------+
 *  |            Header bytes  (1024)                               | 16
 *  +---------------------------------------------------------------+
 *  |            Capacity  (ring bytes, power of two)               | 20
 *  +---------------------------------------------------------------+
 *  |            Max message  (largest payload, bytes)              | 24
 *  +---------------------------------------------------------------+
 *  |            Flags  (reserved, 0)                               | 28
 *  +---------------------------------------------------------------+
 *  |            Reserved to offset 64                             ...| 32
 *  +---------------------------------------------------------------+
 *  |            Producer pid            \ producer owner: one 64-bit | 64  line 1: who is
 *  |            Producer start time     / word, 0 = none; claimed | 68     attached
 *  |            Consumer pid            \ consumer owner, the same  | 72
 *  |            Consumer start time     /                          | 76
 *  |            Reserved                                           | 80
 *  |            Reserved                                           | 84
 *  |            End of stream  (1: the producer closed)            | 88
 *  +---------------------------------------------------------------+
 *  |            Producer position  (bytes ever published, mod 2^32) | 128 line 2, alone
 *  +---------------------------------------------------------------+
 *  |            Consumer position  (bytes ever released, mod 2^32)  | 256 line 4, alone
 *  +---------------------------------------------------------------+
 *  |            Consumer waiting  (0 no, 1 futex, 2 event loop)    | 384 line 6
 *  |            Consumer doorbell  (futex word, +1 per wake-up)    | 388
 *  +---------------------------------------------------------------+
 *  |            Producer waiting  (0 no, 1 futex, 2 event loop)    | 512 line 8
 *  |            Producer doorbell  (futex word, +1 per wake-up)    | 516
 *  +---------------------------------------------------------------+
 *  |            Reserved to offset 1024                           ...| 520
 *  +---------------------------------------------------------------+
 *
 * The two positions sit two cache lines apart from each other and from the
 * words around them, so that the adjacent-line prefetcher does not make the
 * producer and consumer fight over one pair of lines.
 *
 * Frame (at ring index = position mod capacity, always 8-byte aligned):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |            Length  (payload bytes; padding: bytes skipped)     |
 *  +---------------------------------------------------------------+
 *  |            Type  (1 message, 2 padding)                        |
 *  +---------------------------------------------------------------+
 *  |            Payload, then zero to 7 bytes to the next 8-byte   ...
 *  +---------------------------------------------------------------+
 *
 * A frame never wraps: when a frame does not fit before the end of the ring,
 * the producer writes a padding frame that covers the rest of the ring and puts
 * the frame at index 0.
 */

/** "shmq" read as a little-endian 32-bit word. */
export const MAGIC = 0x716d6873
export const VERSION_MAJOR = 1
export const VERSION_MINOR = 0

export const STATE_INITIALISING = 0
export const STATE_READY = 1

export const KIND_SPSC = 1

export const HEADER_BYTES = 1024
export const CACHE_LINE_BYTES = 64

// byte offsets into the segment header
export const MAGIC_OFFSET = 0
export const VERSION_OFFSET = 4 // u16 major at 4, u16 minor at 6
export const STATE_OFFSET = 8
export const KIND_OFFSET = 12
export const HEADER_BYTES_OFFSET = 16
export const CAPACITY_OFFSET = 20
export const MAX_MESSAGE_OFFSET = 24
export const FLAGS_OFFSET = 28

// An owner word is 64 bits, 8-byte aligned, changed only by 64-bit compare-exchange:
// low 32 bits the pid, high 32 bits the process start time (field 22 of
// /proc/PID/stat, clock ticks since boot, mod 2^32), so that a recycled pid is
// never taken for the process that attached. 0 = nobody attached.
export const PRODUCER_OWNER_OFFSET = 64
export const CONSUMER_OWNER_OFFSET = 72
export const END_OF_STREAM_OFFSET = 88

export const PRODUCER_POSITION_OFFSET = 128
export const CONSUMER_POSITION_OFFSET = 256
export const CONSUMER_WAITING_OFFSET = 384
export const CONSUMER_DOORBELL_OFFSET = 388
export const PRODUCER_WAITING_OFFSET = 512
export const PRODUCER_DOORBELL_OFFSET = 516

/** Values of a waiting word: how the parked side wants to be woken. */
export const WAITING_NONE = 0
export const WAITING_FUTEX = 1
export const WAITING_EVENT_LOOP = 2

// frames (sizes, headers and their checks: lib/frames.ts)
export const FRAME_ALIGNMENT = 8
export const FRAME_HEADER_BYTES = 8
export const FRAME_LENGTH_OFFSET = 0
export const FRAME_TYPE_OFFSET = 4
export const FRAME_MESSAGE = 1
export const FRAME_PADDING = 2

// capacities
export const MIN_CAPACITY = 1024
export const MAX_CAPACITY = 1 << 30
export const DEFAULT_CAPACITY = 1 << 20

/** Index of a header word in an Int32Array over the segment. */
export function word(byteOffset: number): number {
  return byteOffset >> 2
}

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
