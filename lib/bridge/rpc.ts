/**
 * Request/response over NATS (docs/BRIDGE.md, "Request/response"):
 *
 *   shm:NAME → nats://…/SUBJECT   the bridge is the local Server on NAME; each
 *                                 request is a NATS request to SUBJECT, its
 *                                 NATS reply the local reply.
 *   nats://…/SUBJECT → shm:NAME   the bridge is a local Client of the Server
 *                                 NAME, subscribed to SUBJECT in a queue group;
 *                                 each NATS request is a local request, the
 *                                 local reply its NATS reply.
 *
 * A client on host B calls a server on host A through two bridges:
 *   Client(B) → [bridge shm:B → nats] → nats-server → [bridge nats → shm:A] → Server(A)
 *
 * Headers (lib/bridge/headers.ts): Shmq-Type (message type tag, absent = 0),
 * the format headers, Shmq-Timeout (ms the requester still waits) on
 * requests, Shmq-Error / Shmq-Remote-Code on error replies (body: the message).
 * At most once: no request is sent twice; one that timed out may have run.
 */
import { randomBytes } from 'node:crypto'
import { Client, type Reply } from '../client'
import { ShmqError } from '../errors'
import { type RequestContext, Server } from '../server'
import type { MsgHdrs, NatsConnection } from './client'
import type { Endpoint, NatsEndpoint, ShmEndpoint } from './endpoint'
import { ERROR_HEADER, messageHeaders, REMOTE_CODE_HEADER, TIMEOUT_HEADER, TYPE_HEADER } from './headers'
import { asBridge, type Bridge, type BridgeOptions } from './index'
import { connectNats, transport } from './nats'
import { type BridgeStats, newStats } from './stats'
import { backoff, sleep } from './timing'

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
/**
 * Reply ring per local client (shm → NATS). The Server cuts off a client
 * whose unread replies exceed twice its reply ring; 1 MiB (the Server's
 * default is 256 KiB) lets a client keep 32 replies of 64 KiB outstanding.
 */
const DEFAULT_REPLY_CAPACITY = 1 << 20
/** What close() gives requests in flight before answering the rest ERR_SHMQ_CLOSED. */
const CLOSE_TIMEOUT_MS = 5000
/** Server.listen's concurrency bound. */
const MAX_CONCURRENCY = 65536
/** Longest error message carried in an error reply (the local client keeps 4096 characters). */
const MAX_ERROR_MESSAGE = 4096

/** The parts of the NATS client's API this file uses beyond ./client.ts's (3.x). */
interface RpcHeaders extends MsgHdrs {
  /** The status code of a server-made message: 503 on "no responders". */
  readonly code: number
}
interface RpcMsg {
  subject: string
  reply?: string | undefined
  data: Uint8Array
  headers?: RpcHeaders | undefined
  respond(payload?: Uint8Array, options?: { headers?: MsgHdrs }): boolean
}
interface RpcSubscription {
  unsubscribe(): void
  drain(): Promise<void>
}
interface RpcConnection {
  publish(subject: string, payload: Uint8Array, options: { reply?: string; headers?: MsgHdrs }): void
  subscribe(subject: string, options: { queue?: string; callback: (error: Error | null, msg: RpcMsg) => void }): RpcSubscription
  flush(): Promise<void>
  close(): Promise<void>
  closed(): Promise<void | Error>
  status(): AsyncIterable<{ type: string }>
}

interface Limits {
  requestTimeout: number
  maxInFlightMessages: number
  maxInFlightBytes: number
  formatHeaders: boolean
  openTimeout: number
  capacity: number | undefined
  replyCapacity: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function invalid(message: string): ShmqError {
  return new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', message)
}

/** A decimal header from 0 to `max`, or null when absent or not one. */
function headerInt(headers: MsgHdrs | undefined, key: string, max: number): number | null {
  if (headers === undefined) return null
  const text = headers.get(key)
  if (text === '' || text.length > 10 || !/^\d+$/.test(text)) return null
  const value = Number(text)
  return value <= max ? value : null
}

/** A header value from untrusted text: printable ASCII only (CR/LF would end the header block), bounded. */
function headerValue(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 256)
}

function positive(options: BridgeOptions, key: 'requestTimeout' | 'openTimeout', fallback: number): number {
  const value = options[key] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw invalid(`${key} must be a positive integer of milliseconds (got ${String(options[key])})`)
  return value
}

/** Starts a request/response bridge (index.ts checked the endpoints and the common options). */
export async function rpcBridge(options: BridgeOptions, from: Endpoint, to: Endpoint): Promise<Bridge> {
  if ((options.delivery ?? 'at-most-once') !== 'at-most-once') {
    throw invalid(
      `request/response bridges are at-most-once only (a request that timed out may have run; sending it again could run it twice): drop delivery '${String(options.delivery)}', or make the handler idempotent and retry in the client`,
    )
  }
  const shm = (from.kind === 'shm' ? from : to) as ShmEndpoint
  const nats = (from.kind === 'nats' ? from : to) as NatsEndpoint
  if (options.queue !== undefined && from.kind === 'shm') {
    throw invalid(`queue is for a bridge that serves a NATS subject (from nats://…, to shm:NAME); this one sends requests to NATS and subscribes to nothing: drop it`)
  }
  const queue = options.queue ?? `shmq-bridge-${shm.name}`
  // the same rule as the work-queue bridge's groups
  if (typeof queue !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(queue)) {
    throw invalid(`queue must be 1-200 letters, digits, '_', '-', '.' (got ${String(options.queue)})`)
  }
  const limits: Limits = {
    requestTimeout: positive(options, 'requestTimeout', DEFAULT_REQUEST_TIMEOUT_MS),
    maxInFlightMessages: options.maxInFlightMessages ?? 4096,
    maxInFlightBytes: options.maxInFlightBytes ?? 8 << 20,
    formatHeaders: options.formatHeaders ?? true,
    openTimeout: positive(options, 'openTimeout', 5000),
    capacity: options.capacity,
    replyCapacity: options.replyCapacity ?? DEFAULT_REPLY_CAPACITY,
  }
  const stats = newStats(from.kind === 'shm' ? 'shm-to-nats' : 'nats-to-shm', 'at-most-once')
  const nc = (await connectNats(nats.server, `shmq-bridge ${options.from} -> ${options.to}`, options, stats)) as NatsConnection & RpcConnection
  const side = from.kind === 'shm' ? new Outbound(nc, nats, shm.name, limits, stats) : new Inbound(nc, nats, shm.name, queue, limits, stats)
  try {
    await side.start()
  } catch (error) {
    await side.stop().catch(() => undefined)
    await nc.close().catch(() => undefined)
    throw error
  }
  return run(side, nc, nats, stats)
}

interface Side {
  start(): Promise<void>
  /** Stops accepting, lets what is in flight finish (up to CLOSE_TIMEOUT_MS), answers the rest, detaches. */
  stop(): Promise<void>
}

function run(side: Side, nc: RpcConnection, nats: NatsEndpoint, stats: BridgeStats): Bridge {
  let stopping = false
  // the NATS client gave up reconnecting: the bridge cannot carry anything more
  const lost = nc.closed().then((reason) =>
    stopping ? null : new ShmqError('ERR_SHMQ_NATS', `lost the connection to NATS at ${nats.server} and gave up reconnecting${reason instanceof Error ? ` (${reason.message})` : ''}`),
  )
  let requestStop: () => void = () => undefined
  const asked = new Promise<void>((resolve) => (requestStop = resolve))
  const done = (async () => {
    const error = await Promise.race([lost, asked.then(() => null)])
    stopping = true
    if (error !== null) stats.error = error.message
    try {
      await side.stop()
    } finally {
      // replies written during stop() reach the server before the connection goes
      await nc.flush().catch(() => undefined)
      await nc.close().catch(() => undefined)
    }
    if (error !== null) throw error
    return { ...stats }
  })()
  return asBridge(stats, done, requestStop)
}

/** Follows the connection's state: a request is not published while it is down (the client would hold it until a reconnect). */
function watchConnection(nc: RpcConnection, state: { up: boolean }): void {
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') state.up = false
      else if (status.type === 'reconnect') state.up = true
    }
  })().catch(() => undefined)
}

/**
 * Slack given to the far side past the local client's own deadline: the
 * client's timer, not a remote timeout racing it, decides what the client
 * sees, and the far side still stops soon after.
 */
export const DEADLINE_SLACK_MS = 100

/** The deadline a request carries over NATS (Shmq-Timeout): the bridge's, or less when its client stated a shorter one. */
function statedTimeout(bridgeTimeout: number, clientTimeout: number | null): number {
  return clientTimeout === null ? bridgeTimeout : Math.min(bridgeTimeout, clientTimeout + DEADLINE_SLACK_MS)
}

interface Call {
  resolve: (reply: Uint8Array) => void
  reject: (error: unknown) => void
  context: RequestContext
  signal: AbortSignal
  onAbort: () => void
  /** performance.now() time it times out at. */
  deadline: number
  bytes: number
}

/**
 * shm → NATS: the bridge is the Server on NAME. Its handler publishes each
 * request with a reply subject of its own inbox (`<prefix><id>`, one wildcard
 * subscription) and matches replies by id. The NATS client's request() does
 * the same through its own inbox, plus a timer promise, a Promise.race and
 * (unless noAsyncTraces) an Error made per request for its stack. Measured
 * (scripts/bench/bridge-rpc.mjs --compare, plain NATS, two runs on a loaded
 * 2-core host): medians of 117-120 µs against nc.request's 129-152 µs at
 * 64 B, 290-371 against 379-422 µs at 64 KiB. And a call given up on
 * (ctx.signal) is dropped at once, not left to its timer.
 */
class Outbound implements Side {
  private server: Server | null = null
  /** Calls waiting for their NATS reply, oldest first. */
  private readonly pending = new Map<number, Call>()
  private timer: NodeJS.Timeout | null = null
  private nextId = 1
  private readonly prefix = `_INBOX.shmq.${randomBytes(8).toString('hex')}.`
  private inbox: RpcSubscription | null = null
  private readonly state = { up: true }
  private readonly makeHeaders = transport().headers

  constructor(
    private readonly nc: RpcConnection,
    private readonly nats: NatsEndpoint,
    private readonly name: string,
    private readonly limits: Limits,
    private readonly stats: BridgeStats,
  ) {}

  async start(): Promise<void> {
    watchConnection(this.nc, this.state)
    this.inbox = this.nc.subscribe(`${this.prefix}*`, { callback: this.onReply })
    // the inbox subscription is known to the server before the first request goes out
    await this.nc.flush()
    const concurrency = Math.min(this.limits.maxInFlightMessages, MAX_CONCURRENCY)
    const { capacity, replyCapacity } = this.limits
    const listenOptions = { concurrency, replyCapacity, ...(capacity === undefined ? {} : { capacity }) }
    // a previous server on NAME (another bridge, closing) may still be alive: wait for it within openTimeout
    const deadline = performance.now() + this.limits.openTimeout
    for (let attempt = 0; ; attempt++) {
      try {
        this.server = Server.listen(this.name, this.handler, listenOptions)
        return
      } catch (error) {
        if ((error as ShmqError).code !== 'EEXIST' || performance.now() + backoff(attempt) > deadline) throw error
        await sleep(backoff(attempt))
      }
    }
  }

  private readonly handler = (request: Uint8Array, context: RequestContext): Promise<Uint8Array> => {
    const stats = this.stats
    stats.messagesIn++
    stats.bytesIn += request.length
    if (!this.state.up) {
      stats.errorReplies++
      throw new ShmqError('ERR_SHMQ_NATS', `the bridge's connection to NATS at ${this.nats.server} is down (it reconnects on its own): ask again later`)
    }
    let id = this.nextId
    while (this.pending.has(id)) id = (id + 1) >>> 0 || 1
    this.nextId = (id + 1) >>> 0 || 1
    const timeout = this.limits.requestTimeout
    const headers = messageHeaders(this.makeHeaders, context.type, request, this.limits.formatHeaders) ?? this.makeHeaders()
    headers.set(TIMEOUT_HEADER, String(statedTimeout(timeout, context.timeout)))
    try {
      // a copy: while the connection is down the NATS client keeps what it is given until a reconnect, and the ring's view is gone once the handler settles
      this.nc.publish(this.nats.subject, request.slice(), { reply: this.prefix + id, headers })
    } catch (error) {
      stats.errorReplies++
      const message = (error as Error).message ?? String(error)
      // the NATS client refuses a payload above the server's max_payload, and publishes on a closed connection
      if (message.includes('max_payload')) throw new ShmqError('ERR_SHMQ_TOO_LARGE', `the request of ${request.length} bytes exceeds the max_payload of the NATS server at ${this.nats.server}: split it`, { cause: error })
      throw new ShmqError('ERR_SHMQ_NATS', `cannot publish to NATS at ${this.nats.server}: ${message}`, { cause: error })
    }
    stats.requests++
    stats.inFlight++
    stats.inFlightBytes += request.length
    return new Promise<Uint8Array>((resolve, reject) => {
      const signal = context.signal
      const call: Call = {
        resolve,
        reject,
        context,
        signal,
        bytes: request.length,
        // the local client gave up (its timeout, its signal, it closed or died): stop waiting
        onAbort: () => {
          if (this.finish(id) === undefined) return
          stats.cancelled++
          reject(signal.reason)
        },
        deadline: performance.now() + timeout,
      }
      signal.addEventListener('abort', call.onAbort, { once: true })
      this.pending.set(id, call)
      if (this.timer === null) this.armTimer(timeout)
    })
  }

  /**
   * One timer for every call: they all wait `requestTimeout` (a shorter
   * client timeout only shortens the deadline sent on, Shmq-Timeout), so the
   * map's insertion order is their deadlines' order and the first call is the
   * next to time out.
   */
  private armTimer(delay: number): void {
    this.timer = setTimeout(this.onTimer, Math.max(1, Math.ceil(delay)))
    this.timer.unref()
  }

  private readonly onTimer = (): void => {
    this.timer = null
    const now = performance.now()
    for (const [id, call] of this.pending) {
      if (call.deadline > now) {
        this.armTimer(call.deadline - now)
        return
      }
      this.finish(id)
      this.stats.timeouts++
      this.stats.errorReplies++
      call.reject(new ShmqError('ERR_SHMQ_TIMEOUT', `no reply over NATS on '${this.nats.subject}' within ${this.limits.requestTimeout} ms (the request may have run on the far side)`))
    }
  }

  /** Removes call `id` (and its abort listener); undefined when it is settled already. */
  private finish(id: number): Call | undefined {
    const call = this.pending.get(id)
    if (call === undefined) return undefined
    this.pending.delete(id)
    call.signal.removeEventListener('abort', call.onAbort)
    this.stats.inFlight--
    this.stats.inFlightBytes -= call.bytes
    return call
  }

  private readonly onReply = (error: Error | null, msg: RpcMsg): void => {
    if (error !== null) return
    const call = this.finish(Number(msg.subject.slice(this.prefix.length)))
    const stats = this.stats
    if (call === undefined) {
      stats.lateReplies++
      return
    }
    const headers = msg.headers
    if (headers !== undefined) {
      if (headers.code === 503 && msg.data.length === 0) {
        stats.noResponders++
        stats.errorReplies++
        call.reject(
          new ShmqError(
            'ERR_SHMQ_NO_RESPONDERS',
            `nothing serves NATS subject '${this.nats.subject}' on ${this.nats.server}: start a bridge to the server there (shmq bridge --from nats://${this.nats.server}/${this.nats.subject} --to shm:NAME --kind rpc)`,
          ),
        )
        return
      }
      const code = headers.get(ERROR_HEADER)
      if (code !== '') {
        stats.remoteErrors++
        stats.errorReplies++
        call.reject(carried(code, headers.get(REMOTE_CODE_HEADER), decoder.decode(msg.data)))
        return
      }
    }
    call.context.replyType = headerInt(headers, TYPE_HEADER, 0xffff) ?? 0
    stats.replies++
    stats.messagesOut++
    stats.bytesOut += msg.data.length
    // the server copies it into the client's reply ring
    call.resolve(msg.data)
  }

  async stop(): Promise<void> {
    // the server refuses new requests, gives those in flight their time, then answers them ERR_SHMQ_CLOSED
    await this.server?.close({ timeout: CLOSE_TIMEOUT_MS })
    if (this.timer !== null) clearTimeout(this.timer)
    for (const id of [...this.pending.keys()]) this.finish(id)!.reject(new ShmqError('ERR_SHMQ_CLOSED', 'the bridge closed'))
    this.inbox?.unsubscribe()
  }
}

/**
 * The error the local server's handler throws for an error reply, so that its
 * client sees ERR_SHMQ_REMOTE with the far side's code: the far handler's own
 * code (Shmq-Remote-Code, maybe none) when the far handler threw, else the
 * far bridge's (ERR_SHMQ_TIMEOUT, ERR_SHMQ_PEER_GONE, ERR_SHMQ_BUSY, ...).
 */
function carried(code: string, remoteCode: string, message: string): Error {
  const what = code === 'ERR_SHMQ_REMOTE' ? remoteCode : code
  return what === '' ? new Error(message) : new ShmqError(what, message)
}

/**
 * NATS → shm: the bridge is a Client of the Server NAME, subscribed to the
 * subject in a queue group. Requests in flight are bounded
 * (maxInFlightMessages and maxInFlightBytes); beyond that a request is
 * answered ERR_SHMQ_BUSY at once, never queued.
 */
class Inbound implements Side {
  private client: Client | null = null
  private subscription: RpcSubscription | null = null
  private closing = false
  private readonly makeHeaders = transport().headers
  /** Prefix of the local client's ERR_SHMQ_REMOTE messages, taken off so the far requester sees the handler's own. */
  private readonly remotePrefix: string

  constructor(
    private readonly nc: RpcConnection,
    private readonly nats: NatsEndpoint,
    private readonly name: string,
    private readonly queue: string,
    private readonly limits: Limits,
    private readonly stats: BridgeStats,
  ) {
    this.remotePrefix = `the server of '${name}' failed this request: `
  }

  async start(): Promise<void> {
    // waits up to openTimeout for the server; without one, the bridge starts anyway and answers ERR_SHMQ_PEER_GONE until one listens
    try {
      this.client = await Client.connect(this.name, { timeout: this.limits.openTimeout })
    } catch (error) {
      if (!retryable(error)) throw error
      this.stats.lastRetryError = (error as Error).message
      void this.connectLater()
    }
    this.subscription = this.nc.subscribe(this.nats.subject, { queue: this.queue, callback: this.onRequest })
    await this.nc.flush()
  }

  /** Connects in the background until a server listens (the Client reconnects on its own after that). */
  private async connectLater(): Promise<void> {
    for (let attempt = 0; !this.closing && this.client === null; attempt++) {
      await sleep(backoff(attempt))
      if (this.closing) return
      try {
        const client = await Client.connect(this.name, { timeout: 1000 })
        if (this.closing) client.close()
        else this.client = client
      } catch (error) {
        this.stats.retries++
        this.stats.lastRetryError = (error as Error).message
      }
    }
  }

  private readonly onRequest = (error: Error | null, msg: RpcMsg): void => {
    if (error !== null) return
    const stats = this.stats
    const bytes = msg.data.length
    stats.messagesIn++
    stats.bytesIn += bytes
    if (msg.reply === undefined || msg.reply === '') {
      stats.noReply++
      return
    }
    if (this.closing) {
      this.fail(msg, 'ERR_SHMQ_CLOSED', `the bridge to '${this.name}' is closing`)
      return
    }
    const { maxInFlightMessages, maxInFlightBytes } = this.limits
    if (stats.inFlight >= maxInFlightMessages || (stats.inFlight > 0 && stats.inFlightBytes + bytes > maxInFlightBytes)) {
      stats.busy++
      this.fail(msg, 'ERR_SHMQ_BUSY', `the bridge to '${this.name}' has ${stats.inFlight} requests (${stats.inFlightBytes} bytes) outstanding, its maxInFlightMessages ${maxInFlightMessages} / maxInFlightBytes ${maxInFlightBytes}: ask again later, or run it with a larger --max-in-flight`)
      return
    }
    const client = this.client
    if (client === null) {
      this.fail(msg, 'ERR_SHMQ_PEER_GONE', `no server listens on '${this.name}' behind this bridge (it keeps trying to connect): start Server.listen('${this.name}', handler)`)
      return
    }
    const headers = msg.headers
    const type = headerInt(headers, TYPE_HEADER, 0xffff) ?? 0
    const asked = headerInt(headers, TIMEOUT_HEADER, 0x7fffffff)
    const timeout = asked === null ? this.limits.requestTimeout : Math.min(asked, this.limits.requestTimeout)
    stats.requests++
    stats.inFlight++
    stats.inFlightBytes += bytes
    // the client copies the request into the listener ring (or into a frame waiting for room) before this returns
    client.requestMessage(msg.data, { timeout, type }).then(
      (reply: Reply) => {
        stats.inFlight--
        stats.inFlightBytes -= bytes
        this.respond(msg, reply.data, messageHeaders(this.makeHeaders, reply.type, reply.data, this.limits.formatHeaders))
      },
      (failure: unknown) => {
        stats.inFlight--
        stats.inFlightBytes -= bytes
        const shmqError = failure as ShmqError
        const code = typeof shmqError?.code === 'string' ? shmqError.code : 'ERR_SHMQ_REMOTE'
        let message = (failure as Error)?.message ?? String(failure)
        if (code === 'ERR_SHMQ_REMOTE') {
          stats.remoteErrors++
          if (message.startsWith(this.remotePrefix)) message = message.slice(this.remotePrefix.length)
        } else if (code === 'ERR_SHMQ_TIMEOUT') stats.timeouts++
        this.fail(msg, code, message, code === 'ERR_SHMQ_REMOTE' ? shmqError.remoteCode : undefined)
      },
    )
  }

  private respond(msg: RpcMsg, data: Uint8Array, headers: MsgHdrs | undefined): void {
    try {
      msg.respond(data, headers === undefined ? undefined : { headers })
    } catch (error) {
      // larger than the NATS server's max_payload: said to the requester instead
      const message = (error as Error).message ?? String(error)
      this.fail(msg, message.includes('max_payload') ? 'ERR_SHMQ_TOO_LARGE' : 'ERR_SHMQ_NATS', `the reply of ${data.length} bytes cannot be published to NATS: ${message}`)
      return
    }
    this.stats.replies++
    this.stats.messagesOut++
    this.stats.bytesOut += data.length
  }

  private fail(msg: RpcMsg, code: string, message: string, remoteCode?: string): void {
    this.stats.errorReplies++
    const headers = this.makeHeaders()
    headers.set(ERROR_HEADER, headerValue(code))
    if (remoteCode !== undefined) headers.set(REMOTE_CODE_HEADER, headerValue(remoteCode))
    try {
      msg.respond(encoder.encode(message.slice(0, MAX_ERROR_MESSAGE)), { headers })
    } catch {
      // the connection closed: the requester times out
    }
  }

  async stop(): Promise<void> {
    this.closing = true
    // requests NATS delivered already are answered (ERR_SHMQ_CLOSED); no more come
    await this.subscription?.drain().catch(() => undefined)
    const deadline = performance.now() + CLOSE_TIMEOUT_MS
    while (this.stats.inFlight > 0 && performance.now() < deadline) await sleep(5)
    // what is left is answered ERR_SHMQ_CLOSED by the client's close (its requests reject)
    this.client?.close()
    await sleep(0)
  }
}

/** A first connection that may work later: nothing listens yet, a dead server's listener not yet replaced, or a server too busy to answer. */
function retryable(error: unknown): boolean {
  const code = (error as ShmqError)?.code
  return code === 'ENOENT' || code === 'ERR_SHMQ_PEER_GONE' || code === 'ERR_SHMQ_TIMEOUT' || code === 'ERR_SHMQ_NOT_READY'
}
