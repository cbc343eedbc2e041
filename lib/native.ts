/**
 * Typed loader of the native addon (native/). Every function the addon exports
 * is declared here; nothing else in lib/ touches the binding untyped.
 */
import * as path from 'node:path'
import { ShmqError } from './errors'
import { MAX_CAPACITY, MAX_HEADER_BYTES } from './layout'

export interface SegmentInfo {
  /** The mapping, or null when the segment is empty (its creator has not sized it yet) or not a mappable file. */
  buffer: ArrayBuffer | null
  size: number
  uid: number
  gid: number
  mode: number
}

/** fstat of a segment file. */
export interface SegmentFileStat {
  size: number
  /** 512-byte blocks allocated: fewer than size / 512 means pages that do not exist yet (a sparse file, a punched hole). */
  blocks: number
  uid: number
  gid: number
  mode: number
  /** A regular file (not a FIFO, socket or device). */
  regular: boolean
}

/** /dev/shm/NAME opened (never following a symlink, never waiting for a file lease: EAGAIN) but not mapped. */
export interface NativeSegmentFile {
  stat(): SegmentFileStat
  /** Up to `length` bytes at `offset`, by pread (fewer at the end of the file); never touches a mapping. */
  read(offset: number, length: number): Uint8Array
  /**
   * Maps the whole file; refuses (ERR_SHMQ_CORRUPT) unless it is a regular file of exactly
   * `size` bytes with every page allocated. Needs a writable file. The fd moves into the mapping.
   */
  map(size: number): ArrayBuffer
  /** Whether a live endpoint holds the role lock on the owner word at `byteOffset` (see segmentRoleLock). */
  roleLocked(byteOffset: number): boolean
  close(): void
}

/** The peer's wake-up FIFO, opened only to ring it (no event-loop handle). */
export interface NativeDoorbellWriter {
  /** Wake whoever waits on this FIFO; never blocks; nothing once closed. */
  ring(): void
  close(): void
}

/** A named FIFO next to the segment that wakes a parked side through the event loop. */
export interface NativeDoorbell {
  /** Wake whoever waits on this FIFO; never blocks. */
  ring(): void
  /** Call onRing once, on the event loop, when rung; keeps the process alive only while armed. */
  arm(): void
  disarm(): void
  close(): void
}

/** A pidfd of a peer process, watched on the event loop. */
export interface NativeProcessWatch {
  /** Call onExit once, on the event loop, when the process has exited; never keeps the loop alive. */
  arm(): void
  disarm(): void
  /** Whether the process has exited (does not wait). */
  exited(): boolean
  close(): void
}

export interface NativeBinding {
  segmentCreate(name: string, size: number, mode: number): ArrayBuffer
  segmentOpen(name: string): SegmentInfo
  segmentUnlink(name: string): void
  /** The current size of the object behind a mapping (another process may have shrunk it). */
  segmentSize(buffer: ArrayBuffer): number
  /** The current size and allocated 512-byte blocks of the object behind a mapping. */
  segmentStat(buffer: ArrayBuffer): { size: number; blocks: number }
  SegmentFile: new (name: string, writable: boolean) => NativeSegmentFile
  /**
   * The role lock on the owner word at `byteOffset`, held by an attached endpoint through its
   * mapping: 'take' (false when another open file holds it), 'release', or 'test' (whether another
   * open file holds it). The kernel drops it when the mapping is closed or its process dies.
   */
  segmentRoleLock(buffer: ArrayBuffer, byteOffset: number, action: 'take' | 'release' | 'test'): boolean
  /** If the buffer is finalized while mapped (never closed), compare-and-clear that 64-bit word. */
  segmentClearOnFinalize(buffer: ArrayBuffer, byteOffset: number, expected: bigint): void
  /** Detaches the buffer (every view becomes empty), then unmaps it. False if it was not mapped. */
  segmentUnmap(buffer: ArrayBuffer): boolean
  /** 0 woken (or spurious), 1 timed out, 2 the word differed from `expected`. Blocks the thread. */
  futexWait(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs?: number): 0 | 1 | 2
  futexWake(buffer: ArrayBuffer, byteOffset: number, count: number): number
  /** Registers for global expedited barriers; reports what this process may do. */
  membarrierRegister(): { canFence: boolean; registered: boolean }
  /** A full memory barrier on every CPU that runs a registered process. */
  membarrierFence(): void
  /** `suffix`: the slot's FIFO suffix (lib/layout.ts slotFifoSuffix), checked again by the addon. */
  doorbellCreate(name: string, suffix: string, mode: number): void
  doorbellUnlink(name: string, suffix: string): void
  Doorbell: new (name: string, suffix: string, ownerUid: number, onRing: () => void) => NativeDoorbell
  DoorbellWriter: new (name: string, suffix: string, ownerUid: number) => NativeDoorbellWriter
  /** Throws ESRCH when there is no such process, ENOSYS without pidfd_open (Linux < 5.3). */
  ProcessWatch: new (pid: number, onExit: () => void) => NativeProcessWatch
  /** CRC32C of buffer[byteOffset, byteOffset + length), continuing from crc (lib/format/crc32c.ts). */
  crc32c(buffer: ArrayBuffer, byteOffset: number, length: number, crc?: number): number
  /** Whether crc32c runs on the SSE4.2 instruction. */
  crc32cHardware: boolean
  constants: {
    futexWordBytes: number
    pidBytes: number
    pageBytes: number
    maxNameBytes: number
    maxMappingBytes: number
  }
}

/** Longest segment name, in bytes; the addon enforces the same bound. */
export const MAX_NAME_BYTES = 200

/** Throws ERR_SHMQ_UNSUPPORTED unless this platform can run shmq. */
export function checkPlatform(platform: string = process.platform, arch: string = process.arch): void {
  if (platform !== 'linux') {
    throw new ShmqError('ERR_SHMQ_UNSUPPORTED', `shmq runs on Linux only (this is ${platform}-${arch}): it needs POSIX shared memory in /dev/shm, futexes and FIFOs`)
  }
}

/** Compares the sizes the addon relies on with lib/layout.ts; throws on any mismatch. */
export function checkConstants(constants: NativeBinding['constants']): void {
  const problems: string[] = []
  if (constants.futexWordBytes !== Int32Array.BYTES_PER_ELEMENT) problems.push(`futex word is ${constants.futexWordBytes} bytes, layout uses 4`)
  if (constants.pidBytes !== 4) problems.push(`pid_t is ${constants.pidBytes} bytes, the pid half of an owner word holds 4`)
  if (constants.maxNameBytes !== MAX_NAME_BYTES) problems.push(`addon names hold ${constants.maxNameBytes} bytes, lib ${MAX_NAME_BYTES}`)
  if (constants.maxMappingBytes < MAX_HEADER_BYTES + MAX_CAPACITY) problems.push(`addon maps at most ${constants.maxMappingBytes} bytes, less than the largest segment`)
  if (problems.length > 0) {
    throw new ShmqError('ERR_SHMQ_UNSUPPORTED', `the shmq addon does not match this version of its JavaScript (${problems.join('; ')}): reinstall shmq`)
  }
}

function load(): NativeBinding {
  checkPlatform()
  let binding: NativeBinding
  try {
    // SHMQ_NATIVE names a specific build (the sanitizer build of npm run test:asan);
    // otherwise node-gyp-build: prebuilds/<platform>-<arch>/ first, then build/Release
    const override = process.env.SHMQ_NATIVE
    binding = (override ? require(path.resolve(override)) : require('node-gyp-build')(path.join(__dirname, '..'))) as NativeBinding
  } catch (error) {
    throw new ShmqError(
      'ERR_SHMQ_UNSUPPORTED',
      `could not load the shmq addon for ${process.platform}-${process.arch} (Node ${process.version}): no prebuilt binary matched and none was built; run "npm rebuild shmq" with a C++ toolchain installed`,
      { cause: error },
    )
  }
  checkConstants(binding.constants)
  return binding
}

export const native: NativeBinding = load()
