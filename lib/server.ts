/**
 * Server: answers requests that Clients (lib/client.ts) send over shared
 * memory. The wire (listener, reply rings, frame headers) is in lib/rpc.ts.
 *
 *   const server = Server.listen('auth', async (request, ctx) => reply, { concurrency: 64 })
 *
 * The handler gets each request as a view into the listener ring, valid until
 * the handler returns or its promise settles: the ring is released in order,
 * up to the oldest request still being handled, so a slow handler holds back
 * the room of the requests after it (at most `concurrency` are handled at
 * once; the rest wait in the ring, and clients wait for room).
 */
import { inspectSegment, removeAbandoned } from './admin'
import { connect, type Endpoint, type WaitOptions } from './endpoint'
import { ShmqError } from './errors'
import { publishMode } from './fence'
import { frameBytes, uint8ArrayLength } from './frames'
import * as L from './layout'
import { ownerPid } from './liveness'
import { MpscReader } from './mpsc'
import { Producer } from './producer'
import * as R from './rpc'
import { unlinkSegment } from './segment'

/** How often the server looks for clients that died (their rings and in-flight work are dropped), in ms. */
export const CLIENT_CHECK_MS = 100
const DEFAULT_CONCURRENCY = 64
const DEFAULT_MAX_CLIENTS = 64
const DEFAULT_REPLY_CAPACITY = 1 << 18
const DEFAULT_CLOSE_TIMEOUT_MS = 5000
/** Requests read per drain before the loop lets replies and timers run. */
const DRAIN_BATCH = 32

const RESOLVED: Promise<void> = Promise.resolve()

export interface ServerOptions extends WaitOptions {
  /** Requests handled at once; more wait in the listener ring. 1 to 65536. Default 64. */
  concurrency?: number
  /** Clients connected at once: 1 to 255. Default 64. */
  maxClients?: number
  /** The listener ring (every client's requests), in bytes: a power of two from 1 KiB to 1 GiB. Default 1 MiB. */
  capacity?: number
  /** Each client's reply ring, in bytes: a power of two from 1 KiB to 1 GiB. Default 256 KiB. */
  replyCapacity?: number
  /** File mode of the listener and the reply rings: who may connect. Default 0o600. */
  mode?: number
}

export interface ServerCloseOptions {
  /** Milliseconds in-flight handlers get to finish before their clients are answered ERR_SHMQ_CLOSED. Default 5000. */
  timeout?: number
}

export interface ServerStats {
  /** Clients connected now. */
  clients: number
  /** Requests handled (a handler was called). */
  requests: number
  /** Replies written (error replies included). */
  replies: number
  /** Handlers that threw or rejected: their clients got ERR_SHMQ_REMOTE. */
  errors: number
  /**
   * Replies dropped because their client was gone (it died or closed), or was
   * cut off for not reading its replies; and requests read after their
   * client's session had ended, which have nobody to answer. (A reply to a request the client
   * already gave up on is written: the client drops it, as a late reply.)
   */
  dropped: number
  /** Requests their clients cancelled (timeout or AbortSignal) while the handler ran. */
  cancelled: number
  /** Requests answered ERR_SHMQ_CLOSED because the server was closing. */
  refused: number
  /** Frames that were no request, cancel or goodbye of a client (too short, an unknown op). */
  malformed: number
  /** Handlers running now. */
  active: number
  /** Most handlers running at once since listen() (never more than concurrency). */
  peakActive: number
}

/** What a handler returns after filling a reply in place: `return ctx.commit()`. */
export interface Committed {
  readonly committed: true
}
const COMMITTED: Committed = Object.freeze({ committed: true })

export type Handler = (request: Uint8Array, context: RequestContext) => Uint8Array | Committed | undefined | void | PromiseLike<Uint8Array | Committed | undefined | void>

/** The server's side of one client: its listener slot and its reply ring. */
class ReplyRing extends Producer {
  static make(name: string, capacity: number, mode: number, spin: number | undefined): ReplyRing {
    return new ReplyRing(connect('producer', true, name, { capacity, mode, spin }))
  }
}

class Session {
  readonly slot: number
  readonly owner: bigint
  readonly ringName: string
  readonly ring: ReplyRing
  /** Requests of this client being handled, by request id. */
  readonly calls = new Map<number, RequestContext>()
  /** Replies waiting for room in the ring (copies, with their headers), in order. */
  readonly outbox: Array<{ frame: Uint8Array; type: number }> = []
  outboxBytes = 0
  /** A handler holds a claimed view in the ring (ctx.claim): other replies wait behind it. */
  claimHolder: RequestContext | null = null
  flushing = false
  gone = false
  /** Claims waiting for the ring to be theirs. */
  readonly claimWaiters: Array<() => void> = []

  constructor(slot: number, owner: bigint, ringName: string, ring: ReplyRing) {
    this.slot = slot
    this.owner = owner
    this.ringName = ringName
    this.ring = ring
  }

  /** Nobody else is writing to the ring: no claim held, nothing queued. */
  get free(): boolean {
    return this.claimHolder === null && this.outbox.length === 0
  }

  wakeClaimers(): void {
    while (this.free && this.claimWaiters.length > 0) this.claimWaiters.shift()!()
  }
}

/**
 * What a handler knows of its request besides the bytes, and how it answers
 * in place: `const view = await ctx.claim(n)`, fill it, `return ctx.commit()`.
 */
export class RequestContext {
  /** The request's message type tag. */
  readonly type: number
  /** The reply's message type tag: the request's unless set. */
  replyType: number
  /**
   * How long the client said it waits for the reply, in ms from when it wrote
   * the request (65535: that long or longer), or null when it gave no limit.
   * A hint: the client times out on its own clock; `signal` says when it did.
   */
  readonly timeout: number | null
  /** @internal */ readonly session: Session
  /** @internal */ readonly id: number
  /** @internal Ring position of the request's frame (async handlers: released once done). */
  start = 0
  /** @internal The handler settled (or the request was answered otherwise); the reply is written or dropped. */
  done = false
  /** @internal Answered ERR_SHMQ_CLOSED by close() past its deadline: whatever the handler does later is dropped. */
  abandoned = false
  /** @internal A claimed reply view, until commit. */
  claimed: Uint8Array | null = null
  private readonly server: Server
  private controller: AbortController | null = null
  /** Why the answer is no longer wanted, once it is not (the signal is made on first use). */
  private abortReason: string | null = null

  /** @internal */
  constructor(server: Server, session: Session, id: number, type: number, timeout: number | null = null) {
    this.server = server
    this.session = session
    this.id = id
    this.type = type
    this.timeout = timeout
    this.replyType = type
  }

  /** The client: its listener slot and process id. */
  get client(): { slot: number; pid: number } {
    return { slot: this.session.slot, pid: ownerPid(this.session.owner) }
  }

  /**
   * Aborted when the answer is no longer wanted: the client cancelled the
   * request (its timeout or AbortSignal), closed or died, or the server's
   * close() deadline passed.
   */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController()
      if (this.abortReason === null && this.session.gone) this.abortReason = 'the client is gone'
      if (this.abortReason !== null) this.controller.abort(this.reason())
    }
    return this.controller.signal
  }

  private reason(): ShmqError {
    return new ShmqError('ERR_SHMQ_CLOSED', this.abortReason!, { segment: this.server.name })
  }

  /** @internal The answer is no longer wanted; the signal says so now, or when first asked for. */
  abort(reason: string): void {
    if (this.abortReason !== null) return
    this.abortReason = reason
    if (this.controller !== null) this.controller.abort(this.reason())
  }

  /**
   * A view of `length` bytes in the client's reply ring to fill with the
   * reply; `return ctx.commit()` sends it. Waits while the ring is full or
   * another handler of the same client holds a claim: fill it and commit
   * without awaiting anything else.
   */
  async claim(length: number): Promise<Uint8Array> {
    const server = this.server
    if (this.claimed !== null || this.done) {
      throw new ShmqError('ERR_SHMQ_PENDING', 'this request already has a claimed reply (commit it) or was answered', { segment: server.name })
    }
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `length must be a non-negative integer (got ${String(length)})`, { segment: server.name })
    }
    const session = this.session
    if (length > session.ring.maxMessage - R.HEADER_BYTES) {
      throw new ShmqError('ERR_SHMQ_TOO_LARGE', `a reply of ${length} bytes exceeds the reply ring's ${session.ring.maxMessage - R.HEADER_BYTES}: listen with a larger replyCapacity`, { segment: server.name })
    }
    while (!session.free && !session.gone) await new Promise<void>((resolve) => session.claimWaiters.push(resolve))
    if (session.gone) throw server.goneError(session)
    session.claimHolder = this
    let view: Uint8Array
    try {
      view = session.ring.tryClaim(R.HEADER_BYTES + length) ?? (await session.ring.claim(R.HEADER_BYTES + length))
    } catch (error) {
      session.claimHolder = null
      session.wakeClaimers()
      throw session.gone ? server.goneError(session) : error
    }
    R.writeHeader(view, 0, this.id, R.STATUS_OK)
    this.claimed = view
    return view.subarray(R.HEADER_BYTES)
  }

  /** Sends the claimed view as the reply (only its first `length` bytes, when given); return what it returns. */
  commit(length?: number): Committed {
    const view = this.claimed
    if (view === null) throw new ShmqError('ERR_SHMQ_PENDING', 'commit() without a claimed reply: call ctx.claim(length) first', { segment: this.server.name })
    const body = view.length - R.HEADER_BYTES
    if (length !== undefined && (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > body)) {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `length must be an integer from 0 to the claimed ${body} bytes (got ${String(length)})`, { segment: this.server.name })
    }
    this.claimed = null
    this.server.commitClaim(this, R.HEADER_BYTES + (length ?? body))
    return COMMITTED
  }

  /** @internal Drops a claimed view that was not committed. */
  dropClaim(): void {
    if (this.claimed === null) return
    this.claimed = null
    const session = this.session
    if (session.claimHolder === this) {
      session.claimHolder = null
      if (!session.gone) session.ring.abort()
      this.server.flush(session)
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}

function checkInteger(name: string, value: unknown, low: number, high: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < low || value > high) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `${what} must be an integer from ${low} to ${high} (got ${String(value)})`, { segment: name })
  }
  return value
}

export class Server {
  /** The listener's name: what clients connect to. */
  readonly name: string
  private readonly endpoint: Endpoint
  private readonly reader: MpscReader
  private readonly handler: Handler
  private readonly concurrency: number
  private readonly replyCapacity: number
  private readonly mode: number
  private readonly spin: number | undefined
  /** Sessions by listener slot. */
  private readonly sessions: Array<Session | undefined> = []
  /** Async handlers running, oldest request first: the ring is released up to the first one not done. */
  private readonly inFlight: RequestContext[] = []
  private active = 0
  /** Resolves the run loop's wait for a free handler place. */
  private wakeRun: (() => void) | null = null
  private readonly checkTimer: NodeJS.Timeout
  /** close() was called: requests read from now on are refused. */
  private closing = false
  /** The loop is to stop reading (close() is done waiting for handlers). */
  private stopping = false
  private closed: Promise<void> | null = null
  private running: Promise<void>
  private readonly counters = { requests: 0, replies: 0, errors: 0, dropped: 0, cancelled: 0, refused: 0, malformed: 0, peakActive: 0 }

  private constructor(endpoint: Endpoint, handler: Handler, concurrency: number, replyCapacity: number, mode: number, spin: number | undefined) {
    this.endpoint = endpoint
    const segment = endpoint.segment
    this.name = segment.name
    this.reader = new MpscReader(segment, endpoint.waiter.wakeProducers, publishMode(segment.plainPublishAllowed), { slotAlive: (slot) => segment.slotHeld(slot) })
    this.handler = handler
    this.concurrency = concurrency
    this.replyCapacity = replyCapacity
    this.mode = mode
    this.spin = spin
    this.checkTimer = setInterval(() => this.checkClients(), CLIENT_CHECK_MS)
    this.checkTimer.unref()
    this.running = this.run()
  }

  /**
   * Listens on `name`: creates its listener segment (one a dead server left
   * is removed first, with its reply rings) and calls `handler` for each
   * request. A handler's return value (or its promise's) is the reply: a
   * Uint8Array (copied), nothing (an empty reply), or ctx.commit(). A handler
   * that throws or rejects answers the client with ERR_SHMQ_REMOTE.
   */
  static listen(name: string, handler: Handler, options: ServerOptions = {}): Server {
    if (typeof handler !== 'function') throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'handler must be a function (request, ctx) => reply', { segment: String(name) })
    if (options === null || typeof options !== 'object') throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'options must be an object, e.g. { concurrency: 64 }', { segment: String(name) })
    if (typeof name === 'string' && name.length > R.MAX_SERVER_NAME) {
      throw new ShmqError('ERR_SHMQ_INVALID_NAME', `a server's name has at most ${R.MAX_SERVER_NAME} characters (its clients' reply rings add to it)`, { segment: name })
    }
    const concurrency = checkInteger(name, options.concurrency ?? DEFAULT_CONCURRENCY, 1, 65536, 'concurrency')
    const maxClients = checkInteger(name, options.maxClients ?? DEFAULT_MAX_CLIENTS, 1, L.MAX_PRODUCERS, 'maxClients')
    const replyCapacity = options.replyCapacity ?? DEFAULT_REPLY_CAPACITY
    const capacityProblem = L.checkCapacity(replyCapacity)
    if (capacityProblem !== null) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `replyCapacity: ${capacityProblem}`, { segment: name })
    const mode = options.mode ?? 0o600
    const listenerOptions = { capacity: options.capacity, mode, spin: options.spin, producers: 'many' as const, maxProducers: maxClients, server: true }
    let endpoint: Endpoint
    try {
      endpoint = connect('consumer', true, name, listenerOptions)
    } catch (error) {
      if ((error as ShmqError).code !== 'EEXIST' || !Server.removeDead(name)) throw error
      endpoint = connect('consumer', true, name, listenerOptions)
    }
    const server = new Server(endpoint, handler, concurrency, replyCapacity, mode, options.spin)
    server.removeOrphanRings()
    return server
  }

  /**
   * Removes listener `name` if a dead server left it; true if it did. Throws
   * EEXIST when a live server listens there, ERR_SHMQ_KIND when it is no listener.
   */
  private static removeDead(name: string): boolean {
    const report = inspectSegment(name)
    if (report === null) return true // gone meanwhile
    if (report.kind === 'server' && report.consumer?.alive !== true) {
      try {
        unlinkSegment(name)
      } catch {
        // removed by another new server meanwhile: our create then races with it fairly
      }
      return true
    }
    if (report.kind === 'server' || report.kind === 'initialising') {
      throw new ShmqError('EEXIST', `a server is listening on '${name}'${report.consumer === null ? '' : ` (pid ${report.consumer.pid})`}: close it first, or listen on another name`, { segment: name })
    }
    throw new ShmqError('ERR_SHMQ_KIND', `segment '${name}' exists and is no request/response listener (it is ${report.kind}): pick another name, or unlink it`, { segment: name })
  }

  /** Removes reply rings of this name whose server is gone (a server that died left them). */
  private removeOrphanRings(): void {
    removeAbandoned(
      (entry) => R.isReplyRingOf(this.name, entry),
      (report) => report.producer?.alive !== true,
    )
  }

  /** Counters since listen(), and what is connected and running now. */
  stats(): ServerStats {
    return { ...this.counters, clients: this.sessions.filter((session) => session !== undefined).length, active: this.active }
  }

  /** The reading loop: requests while there is room to handle them, else park. */
  private async run(): Promise<void> {
    const reader = this.reader
    const waiter = this.endpoint.waiter
    const ready = reader.isReady
    try {
      for (;;) {
        if (this.active >= this.concurrency && !this.stopping) {
          await new Promise<void>((resolve) => (this.wakeRun = resolve))
          continue
        }
        // closing, every request is refused at once: no handler place is taken
        const room = this.closing ? DRAIN_BATCH : Math.min(DRAIN_BATCH, this.concurrency - this.active)
        const count = reader.drainRaw(this.onFrame, room, true)
        this.releaseDone()
        if (count > 0) {
          // let the handlers' replies (their promise reactions) and timers run before reading on
          await RESOLVED
          continue
        }
        if (!this.closing && waiter.spin(ready)) continue
        if (reader.unblock()) continue
        if (this.stopping) return
        waiter.watch(reader.blockingSlot)
        await waiter.park(ready)
      }
    } catch (error) {
      // a corrupt listener (a hostile or broken client wrote it): nothing more can be read from it
      if (this.closed === null) {
        process.emitWarning(`shmq server '${this.name}' stopped reading: ${(error as Error).message}`)
        void this.close({ timeout: 0 })
      }
    }
  }

  /** Releases the listener up to the oldest request still being handled. */
  private releaseDone(): void {
    const inFlight = this.inFlight
    while (inFlight.length > 0 && inFlight[0]!.done) inFlight.shift()
    if (inFlight.length === 0) this.reader.release()
    else this.reader.releaseTo(inFlight[0]!.start)
  }

  private readonly onFrame = (bytes: Uint8Array, offset: number, length: number, type: number): void => {
    if (length < R.HEADER_BYTES) {
      this.counters.malformed++
      return
    }
    // the frame header's writer-slot byte: the listener slot of the client that wrote it
    const slot = bytes[offset - 1]!
    const op = bytes[offset + 4]!
    const id = R.readId(bytes, offset)
    if (op === R.OP_HELLO) {
      this.hello(slot, bytes.subarray(offset + R.HEADER_BYTES, offset + length))
      return
    }
    const session = this.sessions[slot]
    if (session === undefined || session.gone) {
      // a client that closed or died may have its session ended (its slot's lock
      // found free) before its last frames are read: its BYE or CANCEL needs
      // nothing more, its request has nobody to answer
      if (op === R.OP_REQUEST) this.counters.dropped++
      else if (op !== R.OP_BYE && op !== R.OP_CANCEL) this.counters.malformed++
      return
    }
    if (op === R.OP_REQUEST) this.handle(session, id, type, R.readTimeout(bytes, offset), bytes.subarray(offset + R.HEADER_BYTES, offset + length), frameBytes(length))
    else if (op === R.OP_CANCEL) {
      const call = session.calls.get(id)
      if (call !== undefined) {
        session.calls.delete(id)
        this.counters.cancelled++
        call.abort('the client cancelled this request')
      }
    } else if (op === R.OP_BYE) this.endSession(session, 'the client closed')
    else this.counters.malformed++
  }

  private handle(session: Session, id: number, type: number, timeout: number | null, request: Uint8Array, frameSize: number): void {
    const context = new RequestContext(this, session, id, type, timeout)
    if (this.closing) {
      this.counters.refused++
      context.done = true
      this.send(session, id, R.STATUS_CLOSED, EMPTY, type)
      return
    }
    this.counters.requests++
    let result: ReturnType<Handler>
    try {
      result = this.handler(request, context)
    } catch (error) {
      this.fail(context, error)
      return
    }
    if (!isThenable(result)) {
      this.respond(context, result)
      return
    }
    // the view stays valid until the promise settles: the ring is released up to here only then
    context.start = (this.reader.readPosition - frameSize) | 0
    session.calls.set(id, context)
    this.inFlight.push(context)
    if (++this.active > this.counters.peakActive) this.counters.peakActive = this.active
    result.then(
      (value) => this.settle(context, value, false),
      (error: unknown) => this.settle(context, error, true),
    )
  }

  private settle(context: RequestContext, value: unknown, failed: boolean): void {
    if (context.abandoned) return // answered by close() past its deadline, and counted out there
    if (failed) {
      if (context.done) context.dropClaim() // threw after committing: the client has its reply
      else this.fail(context, value)
    } else this.respond(context, value)
    this.finish(context)
  }

  /** An async handler is done: its request's room may go back, and another may start. */
  private finish(context: RequestContext): void {
    context.session.calls.delete(context.id)
    this.active--
    if (this.inFlight[0] === context) this.releaseDone()
    const wake = this.wakeRun
    this.wakeRun = null
    wake?.()
  }

  private respond(context: RequestContext, value: unknown): void {
    // answered already by ctx.commit(): whatever the handler returned after it is not a second reply
    if (context.done) return
    context.done = true
    context.dropClaim()
    if (value === undefined) value = EMPTY
    const length = uint8ArrayLength(value as Uint8Array)
    if (length < 0) {
      this.fail(context, new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `the handler returned ${typeof value === 'object' ? 'an object' : typeof value}, not a Uint8Array (nor ctx.commit())`))
      return
    }
    const session = context.session
    if (length > session.ring.maxMessage - R.HEADER_BYTES) {
      this.fail(context, new ShmqError('ERR_SHMQ_TOO_LARGE', `the reply of ${length} bytes exceeds the reply ring's ${session.ring.maxMessage - R.HEADER_BYTES}: listen with a larger replyCapacity`))
      return
    }
    this.send(session, context.id, R.STATUS_OK, value as Uint8Array, context.replyType)
  }

  private fail(context: RequestContext, error: unknown): void {
    context.done = true
    context.dropClaim()
    this.counters.errors++
    this.send(context.session, context.id, R.STATUS_ERROR, R.encodeRemoteError(error), context.replyType)
  }

  /** Writes a reply frame: straight into the ring when it is free and has room, else queued behind the others. */
  private send(session: Session, id: number, status: number, body: Uint8Array, type: number): void {
    if (session.gone) {
      this.counters.dropped++
      return
    }
    this.counters.replies++
    if (session.free) {
      const view = session.ring.tryClaim(R.HEADER_BYTES + body.length)
      if (view !== null) {
        R.writeHeader(view, 0, id, status)
        view.set(body, R.HEADER_BYTES)
        session.ring.commit(R.HEADER_BYTES + body.length, type)
        return
      }
    }
    // a client that does not read its replies while it asks on would have them pile up here: a ring's worth more, then it is cut off
    if (session.outboxBytes + body.length > session.ring.capacity) {
      this.counters.dropped++
      this.endSession(session, 'the client does not read its replies')
      return
    }
    const frame = new Uint8Array(R.HEADER_BYTES + body.length)
    R.writeHeader(frame, 0, id, status)
    frame.set(body, R.HEADER_BYTES)
    session.outbox.push({ frame, type })
    session.outboxBytes += frame.length
    this.flush(session)
  }

  /** @internal Writes the queued replies of `session` in order, waiting for room. */
  flush(session: Session): void {
    if (session.flushing) return
    session.flushing = true
    void (async () => {
      try {
        while (session.outbox.length > 0 && session.claimHolder === null && !session.gone) {
          const { frame, type } = session.outbox[0]!
          await session.ring.write(frame, type)
          session.outbox.shift()
          session.outboxBytes -= frame.length
        }
      } catch {
        // the client died with its ring full, or the session ended: its replies are dropped
        this.endSession(session, 'the client is gone')
      } finally {
        session.flushing = false
        session.wakeClaimers()
      }
    })()
  }

  /** @internal */
  commitClaim(context: RequestContext, bytes: number): void {
    const session = context.session
    context.done = true
    if (session.claimHolder === context) session.claimHolder = null
    if (session.gone) {
      this.counters.dropped++
      return
    }
    this.counters.replies++
    session.ring.commit(bytes, context.replyType)
    this.flush(session)
    session.wakeClaimers()
  }

  /** @internal */
  goneError(session: Session): ShmqError {
    return new ShmqError('ERR_SHMQ_PEER_GONE', `the client in slot ${session.slot} of '${this.name}' is gone: its reply is dropped`, { segment: this.name })
  }

  /** A client said HELLO from listener slot `slot`: make its reply ring. */
  private hello(slot: number, tokenBytes: Uint8Array): void {
    const token = new TextDecoder().decode(tokenBytes)
    const segment = this.endpoint.segment
    if (!R.TOKEN_PATTERN.test(token) || slot < L.FIRST_PRODUCER_SLOT || slot >= segment.layout.slotCount) {
      this.counters.malformed++
      return
    }
    // a later HELLO from the same slot: the client before it there is gone
    const before = this.sessions[slot]
    if (before !== undefined) this.endSession(before, 'the client is gone')
    if (this.closing || !segment.slotHeld(slot)) return // it left before we read its HELLO
    const ringName = R.replyRingName(this.name, slot, token)
    let ring: ReplyRing
    try {
      ring = ReplyRing.make(ringName, this.replyCapacity, this.mode, this.spin)
    } catch {
      // out of room or descriptors, or a forged HELLO naming a ring that exists: the client's connect times out
      this.counters.malformed++
      return
    }
    this.sessions[slot] = new Session(slot, segment.owner(slot), ringName, ring)
  }

  /** Ends a session: its in-flight work is dropped, its ring ended and removed. */
  private endSession(session: Session, reason: string): void {
    if (session.gone) return
    session.gone = true
    if (this.sessions[session.slot] === session) this.sessions[session.slot] = undefined
    for (const call of session.calls.values()) call.abort(reason)
    session.calls.clear()
    this.counters.dropped += session.outbox.length
    session.outbox.length = 0
    session.outboxBytes = 0
    session.claimHolder = null
    session.wakeClaimers()
    session.ring.close()
    try {
      unlinkSegment(session.ringName)
    } catch {
      // already removed
    }
  }

  /**
   * Ends the sessions of clients that died: their listener slot's lock is
   * free. The lock, not the owner word: the word is anybody's to write, the
   * lock only its holder's. A slot taken again by a new client before this
   * look keeps its session until the new client's HELLO, which ends it.
   */
  private checkClients(): void {
    const segment = this.endpoint.segment
    for (const session of this.sessions) {
      if (session === undefined) continue
      if (!segment.slotHeld(session.slot)) this.endSession(session, 'the client is gone')
    }
  }

  /**
   * Stops accepting (requests read from now on are answered ERR_SHMQ_CLOSED),
   * lets running handlers finish for up to `timeout` ms, answers those still
   * running ERR_SHMQ_CLOSED, then ends every client's reply ring and removes
   * the listener. Idempotent: later calls return the same promise.
   */
  close(options: ServerCloseOptions = {}): Promise<void> {
    if (this.closed !== null) return this.closed
    const timeout = options?.timeout ?? DEFAULT_CLOSE_TIMEOUT_MS
    if (typeof timeout !== 'number' || !(timeout >= 0)) {
      return Promise.reject(new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `timeout must be a number of milliseconds >= 0 (got ${String(timeout)})`, { segment: this.name }))
    }
    this.closing = true
    this.closed = this.shutDown(timeout)
    return this.closed
  }

  private async shutDown(timeout: number): Promise<void> {
    const deadline = performance.now() + timeout
    while (this.active > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, Math.min(10, Math.max(1, deadline - performance.now()))))
    for (const context of this.inFlight) {
      if (context.done) continue
      this.counters.refused++
      context.done = true
      context.abandoned = true
      context.dropClaim()
      context.abort('the server closed')
      this.send(context.session, context.id, R.STATUS_CLOSED, EMPTY, context.type)
      context.session.calls.delete(context.id)
      this.active--
    }
    this.inFlight.length = 0
    // what came in meanwhile was answered ERR_SHMQ_CLOSED by the loop; one last pass, then it stops
    this.stopping = true
    this.endpoint.waiter.unpark()
    const wake = this.wakeRun
    this.wakeRun = null
    wake?.()
    await this.running
    clearInterval(this.checkTimer)
    // queued replies get a moment to reach live clients
    const flushDeadline = performance.now() + Math.min(timeout, 1000)
    while (this.sessions.some((session) => session !== undefined && session.outbox.length > 0) && performance.now() < flushDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    for (const session of this.sessions) if (session !== undefined) this.endSession(session, 'the server closed')
    const { segment, waiter } = this.endpoint
    this.reader.stop()
    waiter.close()
    segment.detach()
    segment.close()
    try {
      unlinkSegment(this.name)
    } catch {
      // removed by someone else
    }
  }
}

const EMPTY = new Uint8Array(0)
