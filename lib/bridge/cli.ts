/**
 * `shmq bridge`: runs one bridge until the stream ends or SIGINT/SIGTERM, then
 * prints its stats (JSON) on stdout. Exit codes: 0 done, 1 the bridge failed,
 * 2 bad arguments.
 */
import { ShmqError } from '../errors'
import { bridge, type BridgeOptions } from './index'

export const BRIDGE_USAGE = `shmq bridge --from shm:NAME --to nats://HOST:PORT/SUBJECT [options]
       shmq bridge --from nats://HOST:PORT/SUBJECT --to shm:NAME [options]
           --delivery at-most-once|at-least-once   core NATS (default) or JetStream
           --kind stream|broadcast|work-queue|rpc   the local end (default: the segment's kind, else stream)
           --stream NAME       JetStream stream (at-least-once; created over the subject if missing)
           --durable NAME      JetStream durable consumer (at-least-once, NATS -> shm)
           --queue NAME        NATS queue group (NATS -> shm work queue or rpc server)
           --request-timeout MS  rpc: how long a request waits for its reply (default 30000)
           --batch N  --max-in-flight N  --max-in-flight-bytes N
           --capacity BYTES    ring size of a channel the bridge creates (rpc, shm -> NATS: its listener)
           --reply-capacity BYTES  rpc, shm -> NATS: each local client's reply ring (default 1 MiB)
           --policy backpressure|lossy  --max-subscribers N   broadcast, NATS -> shm: the ring the bridge creates
           --stats-interval MS print stats as a JSON line every MS ms on stderr`

const NUMBERS: Record<string, keyof BridgeOptions> = {
  '--batch': 'batch',
  '--max-in-flight': 'maxInFlightMessages',
  '--max-in-flight-bytes': 'maxInFlightBytes',
  '--capacity': 'capacity',
  '--max-subscribers': 'maxSubscribers',
  '--ack-wait': 'ackWait',
  '--delivery-timeout': 'deliveryTimeout',
  '--request-timeout': 'requestTimeout',
  '--reply-capacity': 'replyCapacity',
}
const STRINGS: Record<string, keyof BridgeOptions> = { '--from': 'from', '--to': 'to', '--delivery': 'delivery', '--stream': 'stream', '--durable': 'durable', '--kind': 'kind', '--policy': 'policy', '--queue': 'queue' }

function usage(message: string | null): number {
  if (message !== null) process.stderr.write(`shmq bridge: ${message}\n`)
  process.stderr.write(`usage: ${BRIDGE_USAGE}\n`)
  return message === null ? 0 : 2
}

export async function bridgeCommand(argv: string[]): Promise<number> {
  const options: Record<string, unknown> = {}
  let interval = 0
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    if (flag === '--help' || flag === '-h') return usage(null)
    const value = argv[i + 1]
    if (value === undefined || value.startsWith('--')) return usage(flag in NUMBERS || flag in STRINGS || flag === '--stats-interval' ? `${flag} needs a value` : `unknown option ${flag}`)
    i++
    if (flag in STRINGS) options[STRINGS[flag]!] = value
    else if (flag in NUMBERS || flag === '--stats-interval') {
      const number = Number(value)
      if (!Number.isInteger(number) || number < 1) return usage(`${flag} takes a positive integer (got ${value})`)
      if (flag === '--stats-interval') interval = number
      else options[NUMBERS[flag]!] = number
    } else return usage(`unknown option ${flag}`)
  }
  if (options.from === undefined || options.to === undefined) return usage('--from and --to are required')
  // a signal while the bridge starts stops it as soon as it is up
  let running: Awaited<ReturnType<typeof bridge>> | null = null
  let stopped = false
  const stop = (): void => {
    stopped = true
    if (running !== null) void running.close()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  try {
    running = await bridge(options as unknown as BridgeOptions)
  } catch (error) {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    if (error instanceof ShmqError && error.code === 'ERR_SHMQ_INVALID_ARGUMENT') return usage(error.message)
    throw error
  }
  const b = running
  if (stopped) void b.close()
  const timer = interval > 0 ? setInterval(() => process.stderr.write(`${JSON.stringify(b.stats())}\n`), interval) : null
  try {
    const stats = await b.done
    process.stdout.write(`${JSON.stringify(stats)}\n`)
    return 0
  } catch (error) {
    process.stdout.write(`${JSON.stringify(b.stats())}\n`)
    process.stderr.write(`shmq bridge: ${(error as Error).message}\n`)
    return 1
  } finally {
    if (timer !== null) clearInterval(timer)
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}
