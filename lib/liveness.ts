/**
 * Is the peer still there? A PeerMonitor follows the process recorded in the
 * peer's slot of the segment header (pid plus start time, so a recycled pid is
 * not mistaken for the peer) through a pidfd: `gone()` asks without waiting,
 * and an armed monitor calls back on the event loop when the peer exits, so a
 * parked side learns of the death at once instead of polling. Where the kernel
 * has no pidfd_open (Linux < 5.3), a timer checks /proc instead.
 */
import { native, type NativeProcessWatch } from './native'
import { isOwnerAlive, ownerPid, type Role, type Segment } from './segment'

/** How often the fallback (no pidfd) checks a parked side's peer, in ms. */
export const LIVENESS_POLL_MS = 100

let pidfdWorks = true

/** Linux's largest possible pid (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 1 << 22

export class PeerMonitor {
  private readonly segment: Segment
  private readonly peerRole: Role
  private readonly onExit: () => void
  /** The owner word (pid and start time) being followed; 0n before the first look. */
  private owner = 0n
  private pid = 0
  private watch: NativeProcessWatch | null = null
  /** The followed process was already gone (or its pid recycled) when we looked. */
  private knownGone = false
  private timer: NodeJS.Timeout | null = null

  constructor(segment: Segment, peerRole: Role, onExit: () => void) {
    this.segment = segment
    this.peerRole = peerRole
    this.onExit = onExit
  }

  /** The peer's pid and whether it lives, or null when no peer is attached. */
  status(): { pid: number; alive: boolean } | null {
    const owner = this.segment.owner(this.peerRole)
    if (owner === 0n) return null
    return { pid: ownerPid(owner), alive: !this.gone() }
  }

  /** True when a peer is recorded in the segment and its process has died. */
  gone(): boolean {
    const owner = this.segment.owner(this.peerRole)
    if (owner === 0n) {
      // nobody attached (or the dead one was reaped): follow no one, or a dead
      // process's pidfd, readable for ever, would wake every park at once
      if (this.owner !== 0n) this.forget()
      return false
    }
    if (owner !== this.owner) this.follow(owner)
    if (this.knownGone) return true
    if (this.pid === process.pid) return false
    if (this.watch !== null) return this.watch.exited()
    return !isOwnerAlive(owner)
  }

  private follow(owner: bigint): void {
    this.closeWatch()
    this.owner = owner
    this.pid = ownerPid(owner)
    this.knownGone = false
    if (this.pid === process.pid) return
    if (this.pid <= 0 || this.pid > MAX_PID) {
      // no process has this pid: a corrupt or hostile owner word
      this.knownGone = true
      return
    }
    if (pidfdWorks) {
      try {
        this.watch = new native.ProcessWatch(this.pid, this.onExit)
      } catch (error) {
        const code = (error as { code?: string }).code
        if (code === 'ESRCH') {
          this.knownGone = true
          return
        }
        // ENOSYS (old kernel) or EPERM (seccomp): fall back to /proc for good
        if (code === 'ENOSYS' || code === 'EPERM') pidfdWorks = false
      }
    }
    // the pid may have been recycled before we opened it: the start time decides
    if (!isOwnerAlive(owner)) this.knownGone = true
  }

  /**
   * After reporting a death: forget the dead peer in the segment, so that the
   * next wait waits for a successor instead of failing again.
   */
  reap(): void {
    if (this.owner !== 0n && this.gone()) this.segment.reap(this.peerRole, this.owner)
  }

  /** While parked: call onExit when the peer dies. Call gone() first. */
  arm(): void {
    if (this.watch !== null) {
      this.watch.arm()
    } else if (this.pid !== 0 && this.pid !== process.pid && this.timer === null) {
      this.timer = setInterval(() => {
        if (this.gone()) this.onExit()
      }, LIVENESS_POLL_MS)
      this.timer.unref()
    }
  }

  disarm(): void {
    this.watch?.disarm()
    if (this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  private forget(): void {
    this.closeWatch()
    this.owner = 0n
    this.pid = 0
    this.knownGone = false
  }

  private closeWatch(): void {
    this.disarm()
    this.watch?.close()
    this.watch = null
  }

  close(): void {
    this.closeWatch()
  }
}
