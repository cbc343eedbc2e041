/**
 * Who is attached, and are they alive?
 *
 * Two records say who holds a participant slot (lib/layout.ts) of a segment:
 *
 * - the **slot lock** (role lock): an open-file-description write lock on the 8 bytes of
 *   the slot's owner word, taken through the endpoint's own file descriptor of
 *   the segment (native segmentRoleLock). The kernel holds it for exactly as
 *   long as that endpoint has the segment open, and drops it when the endpoint
 *   closes or its process dies, however it dies. Nothing written into the
 *   mapping can forge it or clear it, and testing it opens no file (so it works
 *   with no file descriptor left) and needs no /proc (so it works across PID
 *   namespaces). **Whether a role is held is what the lock says.**
 * - the **owner word** in the header: pid and start time of the process that
 *   attached, written by it after it took the lock. It is a label: it names the
 *   process to watch through a pidfd so that a parked side learns of a death at
 *   once, and what `peer` and `shmq ls` show. A peer with write access can write
 *   any value there; the worst it does is point the pidfd at the wrong process,
 *   and the lock is tested again on every wake-up and at least every
 *   LIVENESS_POLL_MS while parked (lib/waiter.ts), so a death is reported
 *   within that bound whatever the word says.
 */
import { readFileSync } from 'node:fs'
import { native, type NativeProcessWatch } from './native'
import type { Segment } from './segment'

/** How often a parked side looks at its ring and its peer's role lock without being woken, in ms. */
export const LIVENESS_POLL_MS = 100

/** Linux's largest possible pid (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 1 << 22

/**
 * Start time of process `pid` in clock ticks since boot; null if it is gone
 * (or a zombie); undefined if that cannot be known now (out of file
 * descriptors, /proc not mounted...): never mistake "cannot look" for "dead".
 */
export function processStartTime(pid: number): number | null | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch (error) {
    const code = (error as { code?: string }).code
    return code === 'ENOENT' || code === 'ESRCH' ? null : undefined
  }
  // fields after the command name, which is in parentheses and may hold spaces
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (fields[0] === 'Z' || fields[0] === 'X') return null
  const start = Number(fields[19])
  return Number.isFinite(start) ? start : undefined
}

/**
 * Whether process `pid` is gone (or a zombie), or, given the start time it
 * had, whether that pid now names another process. False when that cannot be
 * known now (see processStartTime).
 */
export function processGone(pid: number, start?: number): boolean {
  const now = processStartTime(pid)
  return now === null || (start !== undefined && typeof now === 'number' && now !== start)
}

/** The owner word for process `pid` started at `start` (see layout.ts). */
export function ownerWord(pid: number, start: number): bigint {
  return (BigInt(start % 0x1_0000_0000) << 32n) | BigInt(pid >>> 0)
}

export function ownerPid(owner: bigint): number {
  return Number(owner & 0xffff_ffffn)
}

let ownOwnerWord: bigint | null = null

/**
 * This process's owner word. The start time is looked up once; while it
 * cannot be (no file descriptor free), the word carries start time 0 and the
 * lookup is tried again next time: the word is a label, the lock decides.
 */
export function ownOwner(): bigint {
  if (ownOwnerWord !== null) return ownOwnerWord
  const start = processStartTime(process.pid)
  const word = ownerWord(process.pid, typeof start === 'number' ? start : 0)
  if (typeof start === 'number') ownOwnerWord = word
  return word
}

/** What `peer` and `shmq ls` report for a role: its owner word's pid, alive when its role lock is held. */
export function peerReport(owner: bigint, held: boolean): { pid: number; alive: boolean } | null {
  if (owner === 0n && !held) return null
  return { pid: ownerPid(owner), alive: held }
}

/** Errors of pidfd_open that may pass (out of file descriptors or memory): try again on the next park. */
const TRANSIENT = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN'])

let pidfdWorks = true

/**
 * Follows the process attached to a peer's slot: `gone()` asks the slot lock
 * without waiting; an armed monitor calls back on the event loop when the
 * process named by the owner word exits (pidfd), so a parked side learns of a
 * death at once instead of at its next poll.
 */
export class PeerMonitor {
  private readonly segment: Segment
  /** The slot followed; -1 follows nobody (gone() is false). */
  private peerSlot: number
  private readonly onExit: () => void
  /** The owner word whose process the watch follows; 0n when none. */
  private owner = 0n
  private watch: NativeProcessWatch | null = null
  /** The watch could not be made for a passing reason: try again when arming. */
  private retryWatch = false

  constructor(segment: Segment, peerSlot: number, onExit: () => void) {
    this.segment = segment
    this.peerSlot = peerSlot
    this.onExit = onExit
  }

  /** Follows slot `slot` from now on (-1: nobody). */
  retarget(slot: number): void {
    if (slot === this.peerSlot) return
    this.peerSlot = slot
    this.follow(0n)
  }

  /** The peer's pid and whether it lives, or null when no peer is attached. */
  status(): { pid: number; alive: boolean } | null {
    if (this.peerSlot === -1) return null
    return peerReport(this.segment.owner(this.peerSlot), this.segment.slotHeld(this.peerSlot))
  }

  /**
   * True when a peer attached and is no longer there without having detached:
   * its owner word is still set and nobody holds its role lock.
   */
  gone(): boolean {
    if (this.peerSlot === -1) return false
    const owner = this.segment.owner(this.peerSlot)
    if (owner === 0n) {
      // nobody attached (or the dead one was reaped): follow no one, or a dead
      // process's pidfd, readable for ever, would wake every park at once
      if (this.owner !== 0n) this.follow(0n)
      return false
    }
    if (owner !== this.owner) this.follow(owner)
    if (this.segment.slotHeld(this.peerSlot)) return false
    // the lock is free. A peer that detached cleanly cleared its owner word before it gave up
    // its lock, so the word we read before the lock test may be stale: only a word still there
    // after it is a death (a close between our two looks is not one)
    return this.segment.owner(this.peerSlot) === owner
  }

  /** Watches the process that `owner` names, for prompt wake-ups only: the lock decides liveness. */
  private follow(owner: bigint): void {
    this.closeWatch()
    this.owner = owner
    this.retryWatch = false
    const pid = ownerPid(owner)
    // our own process, or no process at all (a corrupt or hostile word): nothing to watch
    if (owner === 0n || pid === process.pid || pid <= 0 || pid > MAX_PID || !pidfdWorks) return
    try {
      this.watch = new native.ProcessWatch(pid, this.onExit)
    } catch (error) {
      const code = (error as { code?: string }).code ?? ''
      // ENOSYS (old kernel) or EPERM (seccomp): no pidfds in this process, the poll alone serves
      if (code === 'ENOSYS' || code === 'EPERM') pidfdWorks = false
      this.retryWatch = TRANSIENT.has(code)
    }
  }

  /**
   * After reporting a death: forget the dead peer in the segment, so that the
   * next wait waits for a successor instead of failing again.
   */
  reap(): void {
    if (this.owner !== 0n && this.gone()) this.segment.reap(this.peerSlot, this.owner)
  }

  /** While parked: call onExit when the watched process exits. Call gone() first. */
  arm(): void {
    if (this.watch === null && this.retryWatch) this.follow(this.owner)
    this.watch?.arm()
  }

  disarm(): void {
    this.watch?.disarm()
  }

  private closeWatch(): void {
    this.watch?.close()
    this.watch = null
  }

  close(): void {
    this.closeWatch()
  }
}
