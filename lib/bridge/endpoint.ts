/**
 * Bridge endpoints: `shm:NAME` (a local channel) and `nats://host:port/SUBJECT`
 * (a NATS subject on one server). Parsed and checked once, before anything connects.
 */
import { ShmqError } from '../errors'

export interface ShmEndpoint {
  kind: 'shm'
  /** The channel's segment name. */
  name: string
}

export interface NatsEndpoint {
  kind: 'nats'
  /** `host:port`, as the NATS client takes it. */
  server: string
  subject: string
}

export type Endpoint = ShmEndpoint | NatsEndpoint

// the segment's own rules (lib/segment.ts) check the name again when it is opened
const SHM_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/
// a subject is dot-separated tokens, no whitespace; a publisher's has no wildcards
const SUBJECT_TOKEN = /^[^\s.*>]+$/
const SUBSCRIBE_TOKEN = /^([^\s.*>]+|\*|>)$/

function invalid(message: string): ShmqError {
  return new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', message)
}

/**
 * Parses `text` as an endpoint. `role` says which side it is: a subject the
 * bridge subscribes to (`from`) may hold `*` and a final `>`; one it publishes to may not.
 */
export function parseEndpoint(text: unknown, role: 'from' | 'to'): Endpoint {
  if (typeof text !== 'string' || text.length === 0) {
    throw invalid(`${role} must be 'shm:NAME' or 'nats://host:port/SUBJECT' (got ${String(text)})`)
  }
  if (text.startsWith('shm:')) {
    const name = text.slice(4)
    if (!SHM_NAME.test(name)) {
      throw invalid(`${role} '${text}': a channel name is 1-200 letters, digits, '_', '-', '.', not starting with '.' or '-'`)
    }
    return { kind: 'shm', name }
  }
  if (text.startsWith('nats://')) return parseNats(text, role)
  throw invalid(`${role} '${text}' is neither 'shm:NAME' nor 'nats://host:port/SUBJECT'`)
}

function parseNats(text: string, role: 'from' | 'to'): NatsEndpoint {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw invalid(`${role} '${text}' is not a URL: write nats://host:port/SUBJECT`)
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw invalid(`${role} '${text}': credentials, queries and fragments are not supported in bridge URLs`)
  }
  if (url.hostname === '') throw invalid(`${role} '${text}' names no host: write nats://host:port/SUBJECT`)
  const port = url.port === '' ? 4222 : Number(url.port)
  const subject = decodeURIComponent(url.pathname.slice(1))
  if (subject === '') throw invalid(`${role} '${text}' names no subject: write nats://host:port/SUBJECT`)
  const tokens = subject.split('.')
  const tokenOk = role === 'from' ? SUBSCRIBE_TOKEN : SUBJECT_TOKEN
  const badToken = tokens.findIndex((token, i) => !tokenOk.test(token) || (token === '>' && i !== tokens.length - 1))
  if (badToken >= 0) {
    throw invalid(
      role === 'from'
        ? `subject '${subject}' in '${text}': tokens are separated by single dots, without spaces; '*' and a final '>' are the only wildcards`
        : `subject '${subject}' in '${text}': a subject published to is dot-separated tokens without spaces or wildcards`,
    )
  }
  return { kind: 'nats', server: `${url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname}:${port}`, subject }
}
