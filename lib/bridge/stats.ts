/**
 * A bridge's counters. One object per bridge, updated in place by its pump;
 * stats() hands out a copy.
 */
export type Direction = 'shm-to-nats' | 'nats-to-shm'
export type Delivery = 'at-most-once' | 'at-least-once'

export interface BridgeStats {
  direction: Direction
  delivery: Delivery
  /** Messages taken from the source (the local channel, or NATS), and their payload bytes. */
  messagesIn: number
  bytesIn: number
  /** Messages handed to the destination and confirmed as far as the mode confirms (core: flushed to the server; JetStream: acknowledged; local: committed to the ring). */
  messagesOut: number
  bytesOut: number
  /** Batches read from the source (ring reads between two releases, or JetStream fetches). */
  batches: number
  /** Milliseconds spent waiting for the destination to take more (NATS flushes and acks, or room in the local ring). */
  backpressureMs: number
  /** Times the connection to NATS was lost, and re-established. */
  disconnects: number
  reconnects: number
  /** Core NATS → local: messages the bridge dropped because its bounded pending queue was full. */
  dropped: number
  /** Core NATS → local: times the bridge's pending queue overflowed (one per run of drops). */
  slowConsumerEvents: number
  /** JetStream → local: messages NATS delivered again (not acknowledged in time, or after a reconnect). */
  redeliveries: number
  /** Publishes or fetches that failed and were tried again. */
  retries: number
  /** What the last retried publish or fetch failed with. */
  lastRetryError: string | null
  /** Core local → NATS: messages published whose flush failed (the connection dropped): they may or may not have arrived. */
  unconfirmed: number
  /** JetStream: retried publishes JetStream had already stored (Nats-Msg-Id), and fetched messages already written (skipped). */
  duplicatesSuppressed: number
  /** Taken from the source, not yet confirmed by the destination. */
  inFlight: number
  inFlightBytes: number
  /**
   * Set when the bridge stopped: messages taken from the source and never
   * confirmed by the destination. At-most-once they are lost; at-least-once
   * they stay at the source (unreleased in the ring, or unacknowledged in
   * JetStream) and the next bridge delivers them again.
   */
  undelivered: number
  /**
   * Request/response bridges (kind 'rpc'; 0 on the others). There
   * messagesIn/bytesIn count requests taken in (local requests, or NATS
   * requests), messagesOut/bytesOut the replies (not errors) handed back, and
   * inFlight/inFlightBytes the requests waiting for their reply.
   */
  /** Requests passed on to the destination (published to NATS, or sent to the local server). */
  requests: number
  /** Replies (not errors) handed back to the requester. */
  replies: number
  /** Error replies handed back to the requester, whatever the cause (the counts below included). */
  errorReplies: number
  /** shm → NATS: error replies the far bridge sent (Shmq-Error); NATS → shm: the local server's handler threw (ERR_SHMQ_REMOTE). */
  remoteErrors: number
  /** Requests that got no reply within their deadline (the bridge's requestTimeout, or the requester's Shmq-Timeout). */
  timeouts: number
  /** shm → NATS: requests NATS answered "no responders" (nothing subscribes to the subject): ERR_SHMQ_NO_RESPONDERS. */
  noResponders: number
  /** NATS → shm: requests answered ERR_SHMQ_BUSY at once because maxInFlightMessages or maxInFlightBytes were outstanding. */
  busy: number
  /** shm → NATS: requests the local client gave up on (its timeout or signal, it closed or died) before the reply came. */
  cancelled: number
  /** shm → NATS: NATS replies that came after their request timed out or was given up: dropped. */
  lateReplies: number
  /** NATS → shm: messages without a reply subject (not requests): counted and ignored. */
  noReply: number
  /** The source's end of stream reached the destination. */
  ended: boolean
  /** The error that stopped the bridge, if one did. */
  error: string | null
}

export function newStats(direction: Direction, delivery: Delivery): BridgeStats {
  return {
    direction,
    delivery,
    messagesIn: 0,
    bytesIn: 0,
    messagesOut: 0,
    bytesOut: 0,
    batches: 0,
    backpressureMs: 0,
    disconnects: 0,
    reconnects: 0,
    dropped: 0,
    slowConsumerEvents: 0,
    redeliveries: 0,
    retries: 0,
    lastRetryError: null,
    unconfirmed: 0,
    duplicatesSuppressed: 0,
    inFlight: 0,
    inFlightBytes: 0,
    undelivered: 0,
    requests: 0,
    replies: 0,
    errorReplies: 0,
    remoteErrors: 0,
    timeouts: 0,
    noResponders: 0,
    busy: 0,
    cancelled: 0,
    lateReplies: 0,
    noReply: 0,
    ended: false,
    error: null,
  }
}
