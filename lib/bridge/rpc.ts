/**
 * Request/response over NATS (docs/BRIDGE.md): a local Server's requests → a
 * NATS subject's request/reply, and NATS requests → a local Server.
 */
import { ShmqError } from '../errors'
import type { Endpoint } from './endpoint'
import type { Bridge, BridgeOptions } from './index'

export async function rpcBridge(_options: BridgeOptions, _from: Endpoint, _to: Endpoint): Promise<Bridge> {
  throw new ShmqError('ERR_SHMQ_UNSUPPORTED', 'request/response bridges are not built yet')
}
