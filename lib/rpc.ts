/**
 * Request/response over shared memory: what Server (lib/server.ts) and Client
 * (lib/client.ts) both know. docs/LAYOUT.md §14 states the same for peers in
 * other languages.
 *
 *   listener `name` (kind 5, run as an MPSC ring, lib/mpsc.ts): the server is
 *     its consumer; each client is one of its producers (its slot's lock says
 *     it lives) and writes its requests there, one frame each.
 *   reply ring `name.r<slot>-<token>` (an SPSC segment): the server makes it
 *     when it reads the client's HELLO, and is its producer; the client opens
 *     it as its consumer and reads its replies there.
 *
 * Why one shared request ring and a reply ring per client: a server parks on
 * one futex word, however many clients it has (a ring per client would need a
 * wake-up per ring or a scan of them all), and a reply ring of its own lets a
 * client read only its replies, with a single reader and no correlation
 * across clients. The many-producers ring costs a compare-exchange per
 * request, measured against SPSC rows in `npm run bench` (rpc rows).
 *
 * Every frame's payload starts with an 8-byte header, so the body that
 * follows stays 8-byte aligned for the message format's flyweights:
 *
 *   request frame (listener; tag = the request's message type):
 *     0  u32  request id (the client's; echoed in the reply)
 *     4  u8   op: 0 request, 1 HELLO, 2 BYE, 3 CANCEL
 *     5  u8   flags (0)
 *     6  u16  timeout: how long the client waits for the reply, in ms from
 *             when it wrote the request (1..65534; 65535: that long or
 *             longer; 0: no limit given). A hint for the handler and for
 *             bridges that pass the deadline on; the client keeps its own timer.
 *     8       body: the request (HELLO: the client's token, ASCII)
 *
 *   reply frame (reply ring; tag = the reply's message type):
 *     0  u32  request id
 *     4  u8   status: 0 ok, 1 the handler threw (body: JSON { message, code? }),
 *             2 the server closed before handling it
 *     5  u8   flags (0)
 *     6  u16  reserved (0)
 *     8       body: the reply
 *
 * Which client a request came from is the frame's writer-slot byte (the MPSC
 * producer slot it was claimed by): the server keeps one session per slot,
 * begun by the HELLO read from that slot and ended by a BYE, by the slot's
 * owner dying or changing, or by a later HELLO from the same slot.
 */
import { MAX_NAME_BYTES } from './native'

export const HEADER_BYTES = 8

export const OP_REQUEST = 0
export const OP_HELLO = 1
export const OP_BYE = 2
export const OP_CANCEL = 3

export const STATUS_OK = 0
export const STATUS_ERROR = 1
export const STATUS_CLOSED = 2

/** Longest listener name: reply ring names add `.r<slot>-<token>` (at most 14 characters). */
export const MAX_SERVER_NAME = MAX_NAME_BYTES - 14

/** A client's token: up to 8 base-36 digits. */
export const TOKEN_PATTERN = /^[0-9a-z]{1,8}$/

/** The reply ring of the client in listener slot `slot` that said HELLO with `token`. */
export function replyRingName(server: string, slot: number, token: string): string {
  return `${server}.r${slot}-${token}`
}

/** Whether `entry` (a /dev/shm name) is a reply ring of server `server`. */
export function isReplyRingOf(server: string, entry: string): boolean {
  return entry.startsWith(`${server}.r`) && /^\d{1,3}-[0-9a-z]{1,8}$/.test(entry.slice(server.length + 2))
}

/** The largest timeout a request header states: 65535 means that many ms or more. */
export const MAX_STATED_TIMEOUT = 0xffff

/** The timeout field of a request that waits `timeout` ms (Infinity: 0, none stated). */
export function timeoutField(timeout: number): number {
  if (!(timeout < Infinity)) return 0
  return Math.min(MAX_STATED_TIMEOUT, Math.max(1, Math.ceil(timeout)))
}

/** The timeout a request header at `offset` states, in ms, or null when it states none. */
export function readTimeout(bytes: Uint8Array, offset: number): number | null {
  const field = bytes[offset + 6]! | (bytes[offset + 7]! << 8)
  return field === 0 ? null : field
}

/** Writes a frame header at `offset` of `bytes` (`timeout`: a request's timeout field, see timeoutField). */
export function writeHeader(bytes: Uint8Array, offset: number, id: number, opOrStatus: number, timeout = 0): void {
  bytes[offset] = id & 0xff
  bytes[offset + 1] = (id >>> 8) & 0xff
  bytes[offset + 2] = (id >>> 16) & 0xff
  bytes[offset + 3] = id >>> 24
  bytes[offset + 4] = opOrStatus
  bytes[offset + 5] = 0
  bytes[offset + 6] = timeout & 0xff
  bytes[offset + 7] = timeout >>> 8
}

/** The request id of the header at `offset`. */
export function readId(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0
}

/** The body of an error reply: what the handler threw, as JSON. */
export function encodeRemoteError(error: unknown): Uint8Array {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : String(error)
  const code = error !== null && typeof error === 'object' && typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : undefined
  return new TextEncoder().encode(JSON.stringify(code === undefined ? { message } : { message, code }))
}

/** Reads an error reply's body (untrusted: anything unreadable becomes a message saying so). */
export function decodeRemoteError(body: Uint8Array): { message: string; code?: string } {
  try {
    const value = JSON.parse(new TextDecoder().decode(body)) as unknown
    if (value !== null && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') {
      const { message, code } = value as { message: string; code?: unknown }
      return typeof code === 'string' ? { message: message.slice(0, 4096), code: code.slice(0, 256) } : { message: message.slice(0, 4096) }
    }
  } catch {
    // not JSON: said below
  }
  return { message: `(an error reply this client cannot read: ${body.length} bytes)` }
}
