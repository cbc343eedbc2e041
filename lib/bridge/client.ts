/**
 * The parts of the NATS client (@nats-io/transport-node, @nats-io/jetstream 3.x)
 * the bridge uses, typed here: the packages' own declarations need
 * `moduleResolution: node16`, and shmq's declarations must not depend on
 * packages a user may not have installed.
 */
export interface MsgHdrs {
  get(key: string): string
  set(key: string, value: string): void
}

export interface Msg {
  data: Uint8Array
  headers?: MsgHdrs | undefined
}

export interface Subscription {
  unsubscribe(max?: number): void
}

export type Status = { type: string }

export interface NatsConnection {
  info?: { max_payload: number } | undefined
  publish(subject: string, payload?: Uint8Array, options?: { headers?: MsgHdrs }): void
  subscribe(subject: string, options: { callback: (error: Error | null, msg: Msg) => void }): Subscription
  flush(): Promise<void>
  close(): Promise<void>
  isClosed(): boolean
  status(): AsyncIterable<Status>
}

export interface ConnectionOptions {
  servers: string
  name: string
  timeout: number
  reconnect: boolean
  reconnectTimeWait: number
  reconnectJitter: number
  maxReconnectAttempts: number
}

export interface Transport {
  connect(options: ConnectionOptions): Promise<NatsConnection>
  headers(): MsgHdrs
}

export interface PubAck {
  seq: number
  duplicate: boolean
}

export interface JsMsg {
  data: Uint8Array
  headers: MsgHdrs | undefined
  seq: number
  redelivered: boolean
  ack(): void
  ackAck(): Promise<boolean>
}

export interface PullConsumer {
  fetch(options: { max_messages?: number; max_bytes?: number; expires?: number }): Promise<AsyncIterable<JsMsg>>
}

export interface JetStreamClient {
  publish(subject: string, payload: Uint8Array, options: { msgID?: string; timeout?: number; headers?: MsgHdrs }): Promise<PubAck>
  consumers: { get(stream: string, durable: string): Promise<PullConsumer> }
}

export interface ConsumerInfo {
  num_ack_pending: number
  num_pending: number
  delivered: { stream_seq: number }
  ack_floor: { stream_seq: number }
}

export interface JetStreamManager {
  streams: {
    info(stream: string): Promise<unknown>
    add(config: { name: string; subjects: string[] }): Promise<unknown>
  }
  consumers: {
    info(stream: string, durable: string): Promise<ConsumerInfo>
    delete(stream: string, durable: string): Promise<boolean>
    add(stream: string, config: Record<string, unknown>): Promise<unknown>
  }
}

export interface JetStreamModule {
  jetstream(nc: NatsConnection): JetStreamClient
  jetstreamManager(nc: NatsConnection): Promise<JetStreamManager>
  AckPolicy: { Explicit: string }
  DeliverPolicy: { All: string; StartSequence: string }
}
