/**
 * Client: sends requests to a Server (lib/server.ts) over shared memory and
 * matches its replies by request id. The wire is in lib/rpc.ts.
 *
 *   const client = await Client.connect('auth', { timeout: 5000 })
 *   const reply = await client.request(bytes, { timeout: 1000, signal })
 *
 * Many requests may be outstanding at once; replies may come in any order.
 * When the server dies or closes, every pending request rejects (the server
 * is gone: ERR_SHMQ_PEER_GONE; it closed: ERR_SHMQ_CLOSED) and the client
 * reconnects on its own, with backoff, to whichever server listens on the
 * name next; meanwhile requests reject with ERR_SHMQ_PEER_GONE at once
 * (`await client.ready()` waits for the connection). No request is sent twice.
 */
import { connect, type Endpoint, type WaitOptions } from './endpoint'
import { ShmqError } from './errors'
import { publishMode } from './fence'
import { uint8ArrayLength } from './frames'
import * as L from './layout'
import { Producer } from './producer'
import * as R from './rpc'
import { unlinkSegment } from './segment'
import { SpscReader } from './spsc'

const DEFAULT_CONNECT_TIMEOUT_MS = 5000
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
/** Reconnect backoff: the first wait, doubled after each failure up to the last. */
const RECONNECT_FIRST_MS = 50
const RECONNECT_LAST_MS = 1000

const RESOLVED: Promise<void> = Promise.resolve()

export interface ClientOptions extends WaitOptions {
  /** Milliseconds to wait for a server to listen and answer the connection (each reconnect gets as long). Default 5000. */
  timeout?: number
  /** Default timeout of each request, in ms. Default 30000. */
  requestTimeout?: number
  /** Reconnect on its own after the server died or closed. Default true. */
  reconnect?: boolean
}

export interface RequestOptions {
  /** Milliseconds until the request rejects with ERR_SHMQ_TIMEOUT (its late reply is dropped). Default: the client's requestTimeout. */
  timeout?: number
  /** Aborting it rejects the request with the signal's reason and frees its place. */
  signal?: AbortSignal
  /** The request's message type tag (0 to 65535): the handler's ctx.type. Default 0. */
  type?: number
}

export interface Reply {
  data: Uint8Array
  /** The reply's message type tag. */
  type: number
}

export interface ClientStats {
  /** Requests sent. */
  requests: number
  /** Replies that settled a request (error replies included). */
  replies: number
  /** Requests rejected with ERR_SHMQ_REMOTE (the handler threw). */
  remoteErrors: number
  /** Requests that timed out. */
  timeouts: number
  /** Requests aborted by their signal. */
  aborted: number
  /** Replies that came after their request timed out or was aborted: dropped. */
  lateReplies: number
  /** Requests rejected because the server died or closed before answering. */
  lost: number
  /** Connections made after the first. */
  reconnects: number
  /** Requests waiting for their reply now. */
  pending: number
  connected: boolean
}

interface Pending {
  resolve: (value: Uint8Array | Reply) => void
  reject: (error: unknown) => void
  /** performance.now() time at which it times out. */
  deadline: number
  withType: boolean
  signal: AbortSignal | null
  onAbort: (() => void) | null
}

/** The client's side of the listener: one of its MPSC producers. */
class RequestWriter extends Producer {
  readonly slot: number

  private readonly listenerUid: number

  private constructor(endpoint: Endpoint) {
    super(endpoint)
    this.slot = endpoint.slot
    this.listenerUid = endpoint.segment.ownerUid
  }

  static attach(name: string, spin: number | undefined): RequestWriter {
    try {
      return RequestWriter.take(name, spin)
    } catch (error) {
      if ((error as ShmqError).code !== 'ERR_SHMQ_BUSY') throw error
      throw new ShmqError('ERR_SHMQ_BUSY', `the server of '${name}' has every client slot taken by live clients: close one, or listen with a larger maxClients (up to ${L.MAX_PRODUCERS})`, { segment: name })
    }
  }

  private static take(name: string, spin: number | undefined): RequestWriter {
    return new RequestWriter(
      connect('producer', false, name, { timeout: 0, spin }, (segment) => {
        if (segment.layout.kind !== L.KIND_SERVER) {
          throw new ShmqError('ERR_SHMQ_KIND', `segment '${name}' is no request/response listener (it is ${segment.layout.kindName}): connect to a name a Server listens on`, { segment: name })
        }
        if (!segment.slotHeld(L.CONSUMER_SLOT)) {
          throw new ShmqError('ERR_SHMQ_PEER_GONE', `the server of '${name}' is gone (it died): a new Server.listen('${name}') replaces it`, { segment: name })
        }
      }),
    )
  }

  /** The uid that owns the listener: the server's. */
  get serverUid(): number {
    return this.listenerUid
  }

  /** Whether the server still holds the listener. */
  get serverAlive(): boolean {
    return this.peer?.alive === true
  }
}

/** One connection: our listener slot, and the reply ring the server made for it. */
interface Connection {
  writer: RequestWriter
  replies: Endpoint
  reader: SpscReader
  ringName: string
  /** Set once the connection is given up. */
  lost: boolean
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds))
}

function checkTimeout(name: string, value: unknown, what: string): number {
  if (typeof value !== 'number' || !(value >= 0)) {
    throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `${what} must be a number of milliseconds >= 0 (got ${String(value)})`, { segment: name })
  }
  return value
}

export class Client {
  /** The server's name. */
  readonly name: string
  private readonly connectTimeout: number
  private readonly requestTimeout: number
  private readonly spin: number | undefined
  private readonly spins: boolean
  private readonly autoReconnect: boolean
  private connection: Connection | null = null
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private maxRequestBytes = 0
  private isClosed = false
  private timer: NodeJS.Timeout | null = null
  private timerAt = Infinity
  private reconnecting: Promise<void> | null = null
  private readonly readyWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = []
  private readonly counters = { requests: 0, replies: 0, remoteErrors: 0, timeouts: 0, aborted: 0, lateReplies: 0, lost: 0, reconnects: 0 }

  private constructor(name: string, options: ClientOptions) {
    this.name = name
    this.connectTimeout = checkTimeout(name, options.timeout ?? DEFAULT_CONNECT_TIMEOUT_MS, 'timeout')
    this.requestTimeout = checkTimeout(name, options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT_MS, 'requestTimeout')
    this.spin = options.spin
    this.spins = options.spin === undefined || options.spin > 0
    this.autoReconnect = options.reconnect ?? true
  }

  /**
   * Connects to the server listening on `name`, waiting up to `timeout` ms for
   * one to listen and answer. Rejects with ENOENT (nothing listens there),
   * ERR_SHMQ_PEER_GONE (its server died and none replaced it), or
   * ERR_SHMQ_TIMEOUT (it did not answer in time).
   */
  static async connect(name: string, options: ClientOptions = {}): Promise<Client> {
    if (options === null || typeof options !== 'object') throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'options must be an object, e.g. { timeout: 5000 }', { segment: String(name) })
    const client = new Client(name, options)
    client.adopt(await client.open())
    return client
  }

  /** The listener slot, the HELLO, the reply ring: one connection, within connectTimeout. */
  private async open(): Promise<Connection> {
    const name = this.name
    const deadline = performance.now() + this.connectTimeout
    let wait = 1
    let writer: RequestWriter
    for (;;) {
      try {
        writer = RequestWriter.attach(name, this.spin)
        break
      } catch (error) {
        const code = (error as ShmqError).code
        // nothing listens yet, or a dead server's listener not yet replaced: wait within the timeout
        if ((code !== 'ENOENT' && code !== 'ERR_SHMQ_PEER_GONE' && code !== 'ERR_SHMQ_NOT_READY') || performance.now() + wait > deadline || this.isClosed) {
          if (code === 'ENOENT') {
            throw new ShmqError('ENOENT', `no server listens on '${name}': start one with Server.listen('${name}', handler), or give connect a longer timeout`, { segment: name })
          }
          throw error
        }
        await sleep(wait)
        wait = Math.min(wait * 2, 50)
      }
    }
    let replies: Endpoint | null = null
    const token = ((Math.random() * 0x1_0000_0000) >>> 0).toString(36)
    const ringName = R.replyRingName(name, writer.slot, token)
    try {
      const hello = new Uint8Array(R.HEADER_BYTES + token.length)
      R.writeHeader(hello, 0, 0, R.OP_HELLO)
      hello.set(new TextEncoder().encode(token), R.HEADER_BYTES)
      // tryWrite, not write(): a server that is stopped with its listener full must not hold us past the deadline
      while (!writer.tryWrite(hello)) {
        if (performance.now() > deadline || this.isClosed) {
          throw new ShmqError('ERR_SHMQ_TIMEOUT', `the listener of '${name}' stayed full for ${this.connectTimeout} ms: its server is not reading (busy or stopped)`, { segment: name })
        }
        await sleep(1)
      }
      // the server makes our reply ring when it reads the HELLO
      wait = 0.1
      for (;;) {
        try {
          replies = connect('consumer', false, ringName, { timeout: 0, spin: this.spin })
          break
        } catch (error) {
          if ((error as ShmqError).code !== 'ENOENT' && (error as ShmqError).code !== 'ERR_SHMQ_NOT_READY') throw error
          if (!writer.serverAlive) throw new ShmqError('ERR_SHMQ_PEER_GONE', `the server of '${name}' died while we connected`, { segment: name })
          if (performance.now() > deadline || this.isClosed) {
            throw new ShmqError('ERR_SHMQ_TIMEOUT', `the server of '${name}' did not answer the connection within ${this.connectTimeout} ms: it is busy (every handler place taken) or stopped; give connect a longer timeout`, { segment: name })
          }
          await sleep(wait)
          wait = Math.min(wait * 2, 20)
        }
      }
      const segment = replies.segment
      // only the server's user can have made our ring (another user who read our token could have made it first)
      if (segment.ownerUid !== writer.serverUid) {
        replies.waiter.close()
        segment.detach()
        segment.close()
        throw new ShmqError('EPERM', `the reply ring '${ringName}' belongs to uid ${segment.ownerUid}, not to the server's uid ${writer.serverUid}: another user made it first; refused`, { segment: name })
      }
      const reader = new SpscReader(segment, replies.waiter.wakePeer, publishMode(segment.plainPublishAllowed))
      return { writer, replies, reader, ringName, lost: false }
    } catch (error) {
      writer.close()
      throw error
    }
  }

  /** Makes `connection` the current one and starts reading its replies. */
  private adopt(connection: Connection): void {
    if (this.isClosed) {
      this.drop(connection, true)
      return
    }
    this.connection = connection
    this.maxRequestBytes = connection.writer.maxMessage - R.HEADER_BYTES
    void this.pump(connection)
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve()
  }

  /** Connected to a live server now. */
  get connected(): boolean {
    return this.connection !== null
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** The largest request body, in bytes (known once connected). */
  get maxRequest(): number {
    return this.maxRequestBytes
  }

  /** Requests waiting for their reply. */
  get pendingRequests(): number {
    return this.pending.size
  }

  stats(): ClientStats {
    return { ...this.counters, pending: this.pending.size, connected: this.connected }
  }

  /**
   * Resolves once connected (at once if connected now), waiting up to
   * `timeout` ms (default: the connect timeout) while the client reconnects.
   */
  ready(timeout: number = this.connectTimeout): Promise<void> {
    if (this.isClosed) return Promise.reject(this.closedError())
    if (this.connection !== null) return RESOLVED
    checkTimeout(this.name, timeout, 'timeout')
    if (this.reconnecting === null) this.scheduleReconnect(0)
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.readyWaiters.indexOf(entry)
        if (index !== -1) this.readyWaiters.splice(index, 1)
        reject(new ShmqError('ERR_SHMQ_TIMEOUT', `no server of '${this.name}' answered within ${timeout} ms`, { segment: this.name }))
      }, timeout)
      const entry = {
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
        reject: (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      }
      this.readyWaiters.push(entry)
    })
  }

  /** Drops the connection now (pending requests reject with ERR_SHMQ_PEER_GONE) and connects again; resolves once connected. */
  reconnect(): Promise<void> {
    if (this.isClosed) return Promise.reject(this.closedError())
    if (this.connection !== null) this.lose(this.connection, 'ERR_SHMQ_PEER_GONE', 'the client reconnects (reconnect() was called)')
    return this.ready()
  }

  /** Sends `message` and resolves with the reply's bytes (a copy the caller owns). */
  request(message: Uint8Array, options?: RequestOptions): Promise<Uint8Array> {
    return this.send(message, options, false) as Promise<Uint8Array>
  }

  /** request(), resolving with the reply's bytes and its message type tag. */
  requestMessage(message: Uint8Array, options?: RequestOptions): Promise<Reply> {
    return this.send(message, options, true) as Promise<Reply>
  }

  private send(message: Uint8Array, options: RequestOptions | undefined, withType: boolean): Promise<Uint8Array | Reply> {
    let timeout = this.requestTimeout
    let signal: AbortSignal | null = null
    let type = 0
    try {
      if (this.isClosed) throw this.closedError()
      const length = uint8ArrayLength(message)
      if (length < 0) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'a request must be a Uint8Array or Buffer (encode strings with Buffer.from or TextEncoder)', { segment: this.name })
      if (options !== undefined) {
        if (options === null || typeof options !== 'object') throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'request options must be an object, e.g. { timeout: 1000 }', { segment: this.name })
        if (options.timeout !== undefined) timeout = checkTimeout(this.name, options.timeout, 'timeout')
        if (options.signal !== undefined) {
          if (options.signal === null || typeof options.signal !== 'object' || typeof options.signal.addEventListener !== 'function') {
            throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', 'signal must be an AbortSignal', { segment: this.name })
          }
          signal = options.signal
        }
        if (options.type !== undefined) {
          type = options.type
          if ((type & 0xffff) !== type) throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `type must be an integer from 0 to ${L.MAX_MESSAGE_TYPE} (got ${String(type)})`, { segment: this.name })
        }
      }
      if (this.maxRequestBytes > 0 && length > this.maxRequestBytes) {
        throw new ShmqError('ERR_SHMQ_TOO_LARGE', `a request of ${length} bytes exceeds the server's ${this.maxRequestBytes}: split it, or listen with a larger capacity`, { segment: this.name })
      }
      if (signal?.aborted === true) return Promise.reject(signal.reason)
      if (this.connection === null) {
        if (!this.autoReconnect) {
          throw new ShmqError('ERR_SHMQ_PEER_GONE', `not connected to a server of '${this.name}' (it died or closed); this client does not reconnect on its own: call client.reconnect()`, { segment: this.name })
        }
        if (this.reconnecting === null && !this.isClosed) this.scheduleReconnect(0)
        throw new ShmqError('ERR_SHMQ_PEER_GONE', `not connected to a server of '${this.name}' (it died or closed): the client reconnects on its own; await client.ready() before asking again`, { segment: this.name })
      }
    } catch (error) {
      return Promise.reject(error)
    }
    const connection = this.connection
    const id = this.takeId()
    const idle = this.pending.size === 0
    const promise = new Promise<Uint8Array | Reply>((resolve, reject) => {
      const deadline = timeout === Infinity ? Infinity : performance.now() + timeout
      const entry: Pending = { resolve, reject, deadline, withType, signal, onAbort: null }
      if (signal !== null) {
        entry.onAbort = () => {
          if (this.pending.get(id) !== entry) return
          this.pending.delete(id)
          this.counters.aborted++
          this.cancel(id)
          reject(signal.reason)
        }
        signal.addEventListener('abort', entry.onAbort, { once: true })
      }
      this.pending.set(id, entry)
      if (deadline < this.timerAt) this.armTimer(deadline)
    })
    this.counters.requests++
    this.write(connection, id, R.OP_REQUEST, message, type, R.timeoutField(timeout))
    // a reader parked while nothing was pending: spin for this answer instead of waiting for a wake-up
    if (idle && this.spins && connection.replies.waiter.parked) connection.replies.waiter.unpark()
    return promise
  }

  private takeId(): number {
    let id = this.nextId
    while (this.pending.has(id)) id = (id + 1) >>> 0
    this.nextId = (id + 1) >>> 0
    return id
  }

  /** Writes one frame to the listener: in place when there is room, else a copy that waits for room in order. */
  private write(connection: Connection, id: number, op: number, body: Uint8Array, type: number, timeoutField = 0): void {
    const writer = connection.writer
    try {
      const view = writer.tryClaim(R.HEADER_BYTES + body.length)
      if (view !== null) {
        R.writeHeader(view, 0, id, op, timeoutField)
        view.set(body, R.HEADER_BYTES)
        writer.commit(R.HEADER_BYTES + body.length, type)
        return
      }
    } catch (error) {
      this.settleError(id, error)
      return
    }
    const frame = new Uint8Array(R.HEADER_BYTES + body.length)
    R.writeHeader(frame, 0, id, op, timeoutField)
    frame.set(body, R.HEADER_BYTES)
    writer.write(frame, type).catch((error: unknown) => {
      // the server died with the listener full, or the connection was dropped: said once, by lose()
      if (connection.lost) return
      if ((error as ShmqError).code === 'ERR_SHMQ_PEER_GONE') this.lose(connection, 'ERR_SHMQ_PEER_GONE', `the server of '${this.name}' died`)
      else this.settleError(id, error)
    })
  }

  /** Tells the server a request is no longer wanted (best effort: skipped when the listener is full). */
  private cancel(id: number): void {
    const connection = this.connection
    if (connection === null) return
    const frame = new Uint8Array(R.HEADER_BYTES)
    R.writeHeader(frame, 0, id, R.OP_CANCEL)
    try {
      connection.writer.tryWrite(frame)
    } catch {
      // closed meanwhile
    }
  }

  private settleError(id: number, error: unknown): void {
    const entry = this.take(id)
    entry?.reject(error)
  }

  /** Removes pending request `id` and its abort listener; undefined when it is not pending. */
  private take(id: number): Pending | undefined {
    const entry = this.pending.get(id)
    if (entry === undefined) return undefined
    this.pending.delete(id)
    if (entry.onAbort !== null) entry.signal!.removeEventListener('abort', entry.onAbort)
    return entry
  }

  /** Reads replies while requests are pending (spinning, then parked); parks while none is. */
  private async pump(connection: Connection): Promise<void> {
    const { reader } = connection
    const waiter = connection.replies.waiter
    const ready = reader.isReady
    try {
      for (;;) {
        if (connection.lost) return
        if (reader.drainRaw(this.onReply, Infinity, false) > 0) {
          // let the callers' continuations run (they may ask again) before looking on
          await RESOLVED
          continue
        }
        if (reader.ended) {
          this.lose(connection, 'ERR_SHMQ_CLOSED', `the server of '${this.name}' closed before answering`)
          return
        }
        if (this.pending.size > 0) {
          if (waiter.spin(ready)) continue
        } else {
          // a caller that asks again right after its answer does so in the next microtasks: look once more before parking
          await RESOLVED
          if (this.pending.size > 0 || ready()) continue
        }
        await waiter.park(ready)
        if (connection.lost) return
        if (!ready() && waiter.peerGone()) {
          this.lose(connection, 'ERR_SHMQ_PEER_GONE', `the server of '${this.name}' died before answering`)
          return
        }
      }
    } catch (error) {
      // a corrupt reply ring, or one that shrank: this connection can carry nothing more
      this.lose(connection, 'ERR_SHMQ_PEER_GONE', `the connection to '${this.name}' broke: ${(error as Error).message}`)
    }
  }

  private readonly onReply = (bytes: Uint8Array, offset: number, length: number, type: number): void => {
    if (length < R.HEADER_BYTES) return
    const entry = this.take(R.readId(bytes, offset))
    if (entry === undefined) {
      this.counters.lateReplies++
      return
    }
    this.counters.replies++
    const status = bytes[offset + 4]
    if (status === R.STATUS_OK) {
      const data = bytes.slice(offset + R.HEADER_BYTES, offset + length)
      entry.resolve(entry.withType ? { data, type } : data)
    } else if (status === R.STATUS_ERROR) {
      this.counters.remoteErrors++
      const remote = R.decodeRemoteError(bytes.subarray(offset + R.HEADER_BYTES, offset + length))
      entry.reject(new ShmqError('ERR_SHMQ_REMOTE', `the server of '${this.name}' failed this request: ${remote.message}`, { segment: this.name, remoteCode: remote.code }))
    } else if (status === R.STATUS_CLOSED) {
      this.counters.lost++
      entry.reject(new ShmqError('ERR_SHMQ_CLOSED', `the server of '${this.name}' closed before handling this request`, { segment: this.name }))
    } else {
      entry.reject(new ShmqError('ERR_SHMQ_CORRUPT', `the server of '${this.name}' answered with unknown status ${status}`, { segment: this.name }))
    }
  }

  /** Arms the one timer for the earliest deadline. */
  private armTimer(deadline: number): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timerAt = deadline
    this.timer = setTimeout(this.onTimer, Math.max(0, Math.ceil(deadline - performance.now())))
    this.timer.unref()
  }

  private readonly onTimer = (): void => {
    this.timer = null
    this.timerAt = Infinity
    const now = performance.now()
    let next = Infinity
    for (const [id, entry] of this.pending) {
      if (entry.deadline <= now) {
        this.take(id)
        this.counters.timeouts++
        this.cancel(id)
        entry.reject(new ShmqError('ERR_SHMQ_TIMEOUT', `no reply from the server of '${this.name}' within the request's timeout`, { segment: this.name }))
      } else if (entry.deadline < next) next = entry.deadline
    }
    if (next !== Infinity) this.armTimer(next)
  }

  /** Gives up `connection`: its pending requests reject with `code`; then reconnects (unless closed or told not to). */
  private lose(connection: Connection, code: 'ERR_SHMQ_PEER_GONE' | 'ERR_SHMQ_CLOSED', message: string): void {
    if (connection.lost) return
    const serverGone = !connection.writer.serverAlive
    this.drop(connection, serverGone)
    if (this.connection === connection) this.connection = null
    this.counters.lost += this.pending.size
    this.rejectAll(() => new ShmqError(code, message, { segment: this.name }))
    if (!this.isClosed && this.autoReconnect) this.scheduleReconnect(RECONNECT_FIRST_MS)
  }

  private rejectAll(error: () => ShmqError): void {
    for (const id of [...this.pending.keys()]) this.take(id)!.reject(error())
  }

  /** Closes a connection's rings; its reply ring is removed too when no server will (it is gone). */
  private drop(connection: Connection, serverGone: boolean): void {
    if (connection.lost) return
    connection.lost = true
    const { writer, replies, reader } = connection
    if (!serverGone && !writer.closed) {
      // the server ends our session and removes our reply ring when it reads this
      const bye = new Uint8Array(R.HEADER_BYTES)
      R.writeHeader(bye, 0, 0, R.OP_BYE)
      try {
        writer.tryWrite(bye)
      } catch {
        // it sees our slot free instead
      }
    }
    writer.close()
    if (!replies.segment.isClosed) {
      reader.stop()
      replies.waiter.close()
      replies.segment.detach()
      replies.segment.close()
    }
    if (serverGone) {
      try {
        unlinkSegment(connection.ringName)
      } catch {
        // the server's file, not ours to remove (another user's), or gone: the next server removes it
      }
    }
  }

  /** Connects again after `delay` ms, backing off while no server answers. */
  private scheduleReconnect(delay: number): void {
    if (this.reconnecting !== null) return
    this.reconnecting = (async () => {
      let wait = delay
      while (!this.isClosed && this.connection === null) {
        if (wait > 0) await sleep(wait)
        if (this.isClosed) break
        try {
          this.adopt(await this.open())
          this.counters.reconnects++
        } catch {
          wait = Math.min(Math.max(wait * 2, RECONNECT_FIRST_MS), RECONNECT_LAST_MS)
        }
      }
      this.reconnecting = null
    })()
  }

  private closedError(): ShmqError {
    return new ShmqError('ERR_SHMQ_CLOSED', `the client of '${this.name}' is closed: connect a new one`, { segment: this.name })
  }

  /** Rejects pending requests with ERR_SHMQ_CLOSED, tells the server, and detaches. Idempotent. */
  close(): void {
    if (this.isClosed) return
    this.isClosed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.rejectAll(() => this.closedError())
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(this.closedError())
    const connection = this.connection
    this.connection = null
    if (connection !== null) this.drop(connection, !connection.writer.serverAlive)
  }
}
