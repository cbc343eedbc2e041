/**
 * The bridge's end of a local channel: opened when it exists, created when it
 * does not (a producer and a bridge may start in either order).
 */
import { Consumer } from '../consumer'
import { ShmqError } from '../errors'
import { Producer } from '../producer'

export function openChannel(role: 'consumer' | 'producer', name: string, options: { timeout: number; capacity?: number | undefined }): Consumer | Producer {
  const side = role === 'consumer' ? Consumer : Producer
  try {
    return side.open(name)
  } catch (error) {
    if (!(error instanceof ShmqError) || error.code !== 'ENOENT') throw error
  }
  try {
    return side.create(name, options.capacity === undefined ? {} : { capacity: options.capacity })
  } catch (error) {
    // created by the other side meanwhile
    if (!(error instanceof ShmqError) || error.code !== 'EEXIST') throw error
  }
  return side.open(name, { timeout: options.timeout })
}
