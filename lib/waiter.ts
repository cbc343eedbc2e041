/**
 * Waiting without burning CPU and waking without syscalls on a busy stream.
 *
 * A side that finds nothing to do spins for `spin` microseconds, then parks:
 * it announces itself in its waiting word, re-checks, and only then sleeps, on
 * its futex word (parkSync, for worker threads and sync code) or on its FIFO
 * through the event loop (park). The other side, after each publish, loads that
 * waiting word and calls into native code only when it is set (wakePeer). The
 * announce/re-check here and the publish/check in lib/spsc.ts form a Dekker
 * pair, so no wake-up is lost: the parker stores its announcement, fences
 * (lib/fence.ts), then re-reads the peer's position.
 */
import { CounterLine, PARKS, type SideCounts, WAKEUPS } from './counters'
import { fencePeers } from './fence'
import { LIVENESS_POLL_MS, PeerMonitor } from './liveness'
import * as L from './layout'
import { native, type NativeDoorbell, type NativeDoorbellWriter } from './native'
import type { Segment } from './segment'

/** Default time to spin before parking, in microseconds. */
export const DEFAULT_SPIN_MICROS = 20

const RESOLVED: Promise<void> = Promise.resolve()

export interface WaiterSlots {
  /** The slot this endpoint parks in. */
  own: number
  /** The slot watched for a death and woken by wakePeer() (its FIFO opened now); -1 for none. */
  peer: number
  /** Raise PRODUCERS_WAITING before each announcement (MPSC producers). */
  countsAsWaitingProducer?: boolean
}

export class Waiter {
  private readonly segment: Segment
  private readonly words: Int32Array
  private readonly buffer: ArrayBuffer
  private readonly ownWaiting: number
  private readonly ownDoorbell: number
  private readonly ownDoorbellOffset: number
  private readonly peerSlot: number
  /** Word index of PRODUCERS_WAITING when this endpoint raises it, else -1. */
  private readonly waitingCount: number
  /** The FIFO that wakes us; armed only while parked on the event loop. */
  private readonly ownBell: NativeDoorbell
  /** The FIFOs that wake other slots, opened only to ring them: the peer's at once, others when first rung. */
  private readonly bells = new Map<number, NativeDoorbellWriter | null>()
  /** Follows the peer's process, to stop waiting for a peer that died. */
  private readonly peer: PeerMonitor
  private readonly spinMilliseconds: number
  private wakeParked: (() => void) | null = null
  private closed = false
  /** Our slot's counters line: parks and wake-ups sent are counted there as they happen. */
  private readonly counters: CounterLine
  /** The ring's counts, stored before each park, so that an idle endpoint's are exact (lib/counters.ts). */
  counts: SideCounts | null = null

  constructor(segment: Segment, slots: WaiterSlots, spinMicros: number) {
    this.segment = segment
    this.words = segment.words
    this.buffer = segment.buffer
    const own = segment.layout.slots[slots.own]!
    this.ownWaiting = L.word(own.waiting)
    this.ownDoorbellOffset = own.doorbell
    this.ownDoorbell = L.word(this.ownDoorbellOffset)
    this.peerSlot = slots.peer
    this.waitingCount = slots.countsAsWaitingProducer === true ? L.word(L.PRODUCERS_WAITING_OFFSET) : -1
    this.spinMilliseconds = spinMicros / 1000
    this.counters = new CounterLine(segment, slots.own)
    this.peer = new PeerMonitor(segment, slots.peer, this.onRing)
    this.ownBell = segment.openDoorbell(slots.own, this.onRing)
    if (slots.peer !== -1) {
      try {
        this.bells.set(slots.peer, segment.openDoorbellWriter(slots.peer))
      } catch (error) {
        this.ownBell.close()
        throw error
      }
    }
  }

  private readonly onRing = (): void => {
    const wake = this.wakeParked
    this.wakeParked = null
    wake?.()
  }

  /** Wakes the peer if it announced that it is parked; called after each publish that found the announcement. */
  readonly wakePeer = (): void => {
    this.wake(this.peerSlot)
  }

  /**
   * Wakes every producer that announced it is parked (MPSC consumer, after a
   * release found PRODUCERS_WAITING raised). The flag is lowered first, by an
   * exchange (a full barrier), then the slots are read. A producer announces
   * itself, then raises the flag: if this exchange took its flag, the slot
   * read below sees its announcement; if not, its flag stays up for the next
   * release, and its re-check sees this one's head. A producer that died
   * parked leaves only its waiting word, taken here once.
   */
  readonly wakeProducers = (): void => {
    if (this.closed) return
    Atomics.exchange(this.words, L.word(L.PRODUCERS_WAITING_OFFSET), 0)
    const slots = this.segment.layout.slots
    for (let slot = L.FIRST_PRODUCER_SLOT; slot < slots.length; slot++) {
      if (Atomics.load(this.words, L.word(slots[slot]!.waiting)) !== L.WAITING_NONE) this.wake(slot)
    }
  }

  /** Wakes slot `slot` if it announced that it is parked. */
  wake(slot: number): void {
    if (this.closed || slot < 0) return
    const record = this.segment.layout.slots[slot]!
    // SYNC POINT: taking the announcement makes us the one waker of this park
    const how = Atomics.exchange(this.words, L.word(record.waiting), L.WAITING_NONE)
    if (how === L.WAITING_FUTEX) {
      // SYNC POINT: the doorbell change makes a futex wait that has not started yet return at once
      Atomics.add(this.words, L.word(record.doorbell), 1)
      native.futexWake(this.buffer, record.doorbell, 1)
      this.counters.bump(WAKEUPS)
    } else if (how === L.WAITING_EVENT_LOOP) {
      this.bell(slot)?.ring()
      this.counters.bump(WAKEUPS)
    }
  }

  /**
   * The FIFO writer of `slot`, opened on first use. One that cannot be opened
   * (out of file descriptors) is tried again next time: the parked side finds
   * its ring changed at its next LIVENESS_POLL_MS re-check anyway.
   */
  private bell(slot: number): NativeDoorbellWriter | null {
    let bell = this.bells.get(slot) ?? null
    if (bell === null) {
      try {
        bell = this.segment.openDoorbellWriter(slot)
        this.bells.set(slot, bell)
      } catch {
        return null
      }
    }
    return bell
  }

  /** Follows slot `slot` for a death from now on (MPSC consumer: the producer whose claim blocks it; -1 for none). */
  watch(slot: number): void {
    this.peer.retarget(slot)
  }

  /** Spins until `ready()` or the spin time is up; true if ready. */
  spin(ready: () => boolean): boolean {
    if (ready()) return true
    if (this.spinMilliseconds <= 0) return false
    const deadline = performance.now() + this.spinMilliseconds
    for (;;) {
      for (let i = 0; i < 64; i++) if (ready()) return true
      if (performance.now() >= deadline) return false
    }
  }

  /** True when the peer recorded in the segment has died. */
  peerGone(): boolean {
    return this.peer.gone()
  }

  /** Forgets a dead peer (see PeerMonitor.reap); call when reporting its death. */
  reapPeer(): void {
    this.peer.reap()
  }

  /** The peer's pid and whether it lives, or null when none is attached. */
  peerStatus(): { pid: number; alive: boolean } | null {
    return this.peer.status()
  }

  /**
   * Parks on the event loop until the peer rings, the peer dies, or close().
   * Resolves when woken; the caller re-checks its condition and peerGone().
   * One park at a time.
   */
  park(ready: () => boolean): Promise<void> {
    if (this.closed) return RESOLVED
    if (this.counts !== null) this.flushCounts()
    // SYNC POINT: announce, then re-check: a publish after our re-check sees the announcement
    Atomics.store(this.words, this.ownWaiting, L.WAITING_EVENT_LOOP)
    this.raiseWaitingFlag()
    fencePeers()
    if (ready() || this.peer.gone()) {
      Atomics.store(this.words, this.ownWaiting, L.WAITING_NONE)
      return RESOLVED
    }
    this.counters.bump(PARKS)
    return new Promise<void>((resolve, reject) => {
      // A bounded re-check while parked: a wake-up a hostile peer swallowed (it zeroed our waiting
      // word, or read our FIFO) or a death the pidfd cannot report (the owner word names another
      // process) costs at most one interval, never a wait for ever. No CPU while idle beyond it.
      const recheck = setInterval(() => {
        try {
          this.segment.checkSize() // before touching the header: it may have lost its pages
        } catch {
          this.onRing() // the wake-up below reports it
          return
        }
        if (ready() || this.peer.gone()) this.onRing()
      }, LIVENESS_POLL_MS)
      recheck.unref() // the armed FIFO keeps the process alive while parked
      this.wakeParked = () => {
        clearInterval(recheck)
        this.peer.disarm()
        if (!this.closed) {
          this.ownBell.disarm()
          // the size first: a shrunk segment may have lost even the header's page
          try {
            this.segment.checkSize()
          } catch (error) {
            reject(error)
            return
          }
          Atomics.store(this.words, this.ownWaiting, L.WAITING_NONE)
        }
        resolve()
      }
      this.ownBell.arm()
      this.peer.arm()
    })
  }

  private flushCounts(): void {
    if (!this.segment.shrunk) this.counts!.flush()
  }

  /**
   * Ends a pending park() at once, as if woken: for a side that has new reason
   * to look (a request just sent) and would rather spin for the answer than
   * wait for a wake-up. A waker that took the announcement meanwhile still
   * rings the FIFO: the next park() then returns at once, and its caller
   * re-checks, as after any wake-up.
   */
  unpark(): void {
    this.onRing()
  }

  /** Whether a park() is pending. */
  get parked(): boolean {
    return this.wakeParked !== null
  }

  /**
   * Parks the thread in futex wait until `ready()`, `deadline` (a
   * performance.now() time) or the peer's death; true if ready. The wait is cut
   * in slices to look at the peer, since no event loop runs meanwhile.
   */
  parkSync(ready: () => boolean, deadline: number): boolean {
    if (this.counts !== null) this.flushCounts()
    for (;;) {
      // each slice starts by checking the file still spans the mapping (see checkSize)
      this.segment.checkSize()
      const doorbell = Atomics.load(this.words, this.ownDoorbell)
      // SYNC POINT: announce, then re-check (see park)
      Atomics.store(this.words, this.ownWaiting, L.WAITING_FUTEX)
      this.raiseWaitingFlag()
      fencePeers()
      if (ready()) {
        Atomics.store(this.words, this.ownWaiting, L.WAITING_NONE)
        return true
      }
      const remaining = deadline - performance.now()
      if (remaining <= 0 || this.peer.gone()) {
        Atomics.store(this.words, this.ownWaiting, L.WAITING_NONE)
        return false
      }
      this.counters.bump(PARKS)
      try {
        native.futexWait(this.buffer, this.ownDoorbellOffset, doorbell, Math.min(remaining, LIVENESS_POLL_MS))
      } catch (error) {
        this.segment.checkSize() // a page gone under the futex word (EFAULT) is a shrunk file
        throw error
      }
      this.segment.checkSize()
      Atomics.store(this.words, this.ownWaiting, L.WAITING_NONE)
      if (ready()) return true
    }
  }

  /**
   * MPSC producers: raise PRODUCERS_WAITING after announcing, so that the
   * consumer's next release looks at the slots. After, not before: a consumer
   * whose exchange lowers our flag then reads our slot, and finds the announcement.
   */
  private raiseWaitingFlag(): void {
    // SYNC POINT: after our announcement, before the fence and our re-check
    if (this.waitingCount !== -1) Atomics.store(this.words, this.waitingCount, 1)
  }

  /** Wakes a pending park() and releases the FIFOs. Call before the segment is unmapped. */
  close(): void {
    if (this.closed) return
    if (!this.segment.shrunk) Atomics.store(this.words, this.ownWaiting, L.WAITING_NONE)
    this.closed = true
    this.counts = null
    this.ownBell.disarm()
    this.onRing()
    this.peer.close()
    this.ownBell.close()
    for (const bell of this.bells.values()) bell?.close()
    this.bells.clear()
  }
}
