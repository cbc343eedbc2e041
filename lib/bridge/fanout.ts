/**
 * Broadcast ↔ NATS subjects and work queues ↔ NATS queue groups (docs/BRIDGE.md).
 */
import { ShmqError } from '../errors'
import type { Endpoint } from './endpoint'
import type { Bridge, BridgeOptions } from './index'

export async function fanoutBridge(kind: 'broadcast' | 'work-queue', _options: BridgeOptions, _from: Endpoint, _to: Endpoint): Promise<Bridge> {
  throw new ShmqError('ERR_SHMQ_UNSUPPORTED', `${kind} bridges are not built yet`)
}
