/**
 * The NATS client, loaded only when a bridge starts: `require('shmq')` never
 * loads it, and a program without @nats-io/transport-node gets a clear error
 * here instead of at install time (they are optional peer dependencies).
 */
import { ShmqError } from '../errors'
import type { ConnectionOptions, JetStreamModule, NatsConnection, Transport } from './client'
import type { BridgeStats } from './stats'

function load<T>(name: string): T {
  try {
    // typed by ./client.ts: the subset of the 3.x API the bridge uses
    return require(name) as unknown as T
  } catch (error) {
    if ((error as { code?: unknown }).code === 'MODULE_NOT_FOUND') {
      throw new ShmqError('ERR_SHMQ_UNSUPPORTED', `the bridge needs ${name}: npm install @nats-io/transport-node @nats-io/jetstream`, { cause: error })
    }
    throw error
  }
}

export const transport = (): Transport => load<Transport>('@nats-io/transport-node')
export const jetstreamModule = (): JetStreamModule => load<JetStreamModule>('@nats-io/jetstream')

export interface ReconnectOptions {
  /** Milliseconds to wait for the first connection (default 5000). */
  connectTimeout?: number
  /** Milliseconds between reconnect attempts, plus up to `reconnectJitter` (defaults 250 and 100). */
  reconnectTimeWait?: number
  reconnectJitter?: number
  /** Attempts before the bridge gives up and stops with an error; -1 forever (default 120, about 40 s). */
  maxReconnectAttempts?: number
}

/**
 * Connects to `server` with the client's own reconnect backoff and counts
 * disconnects and reconnects into `stats`. A first connection that fails is
 * an ERR_SHMQ_NATS error naming the server.
 */
export async function connectNats(server: string, name: string, options: ReconnectOptions, stats: BridgeStats): Promise<NatsConnection> {
  const { connect } = transport()
  const config: ConnectionOptions = {
    servers: server,
    name,
    timeout: options.connectTimeout ?? 5000,
    reconnect: true,
    reconnectTimeWait: options.reconnectTimeWait ?? 250,
    reconnectJitter: options.reconnectJitter ?? 100,
    maxReconnectAttempts: options.maxReconnectAttempts ?? 120,
  }
  let nc: NatsConnection
  try {
    nc = await connect(config)
  } catch (error) {
    throw new ShmqError('ERR_SHMQ_NATS', `cannot connect to NATS at ${server}: ${(error as Error).message} (is nats-server running there?)`, { cause: error })
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') stats.disconnects++
      else if (status.type === 'reconnect') stats.reconnects++
    }
  })().catch(() => undefined)
  return nc
}
