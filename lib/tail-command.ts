/**
 * `shmq tail NAME [--format hex|utf8|json] [--schema module.mjs] [-n N]`:
 * prints the messages passing through a channel without consuming them.
 *
 * An observer, not a participant: it reads the segment with pread (never
 * maps it, never attaches, never writes), follows the write position, and
 * reads the frames between the read position (broadcast: the oldest intact
 * message) and the write position. It never moves a position, so it never
 * holds a writer back and never takes a message from a reader. On a busy
 * queue the reader may release (and the writer overwrite) frames before the
 * observer got to them: those are missed, and counted. A frame read while the
 * writer could have been overwriting it (the read side moved past it during
 * the read) is dropped and counted the same way, never printed torn.
 *
 * Exit codes: 0 (interrupted, or the channel ended), 1 failure, 2 usage.
 */
import { pathToFileURL } from 'node:url'
import * as path from 'node:path'
import { openSegmentFile, readValidHeader } from './admin'
import { ShmqError } from './errors'
import * as L from './layout'
import type { NativeSegmentFile } from './native'

export const TAIL_USAGE = 'shmq tail NAME [--format hex|utf8|json] [--schema module.mjs] [-n N]   print messages as they pass, without consuming them'

const HELP = `usage: ${TAIL_USAGE}

Prints each message that passes through channel NAME, one line per message:
its message type tag, its length and its payload. It reads the segment
without attaching: no position moves, no writer is held back, no reader loses
a message. On a busy queue it may miss messages (the reader released them
before it looked): it says how many when it stops.
  --format hex      payload as hex (default; long payloads are cut at 64 bytes)
  --format utf8     payload as text
  --format json     payload parsed as JSON text
  --schema FILE     an ES module whose default export (or export 'schema') is a
                    shmq message schema (defineMessage): payloads are decoded with it
  -n N              first print the last N messages the ring still holds (default 10; 0: none)
  --interval MS     how often to look, in ms (default 10)
Exit codes: 0 interrupted (Ctrl-C), the stream ended or nobody is attached
any more, 1 the channel cannot
be read, 2 bad usage.`

interface TailOptions {
  name: string
  format: 'hex' | 'utf8' | 'json'
  schema: string | null
  last: number
  interval: number
}

function parse(args: string[]): TailOptions | string {
  let name: string | undefined
  let format: TailOptions['format'] = 'hex'
  let schema: string | null = null
  let last = 10
  let interval = 10
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--format') {
      const value = args[++i]
      if (value !== 'hex' && value !== 'utf8' && value !== 'json') return `--format is hex, utf8 or json (got ${String(value)})`
      format = value
    } else if (arg === '--schema') {
      const value = args[++i]
      if (value === undefined) return '--schema needs a module file'
      schema = value
    } else if (arg === '-n') {
      const value = Number(args[++i])
      if (!Number.isInteger(value) || value < 0) return `-n needs a whole number >= 0 (got ${String(args[i])})`
      last = value
    } else if (arg === '--interval') {
      const value = Number(args[++i])
      if (!Number.isFinite(value) || value < 1) return `--interval needs a number of milliseconds >= 1 (got ${String(args[i])})`
      interval = value
    } else if (arg.startsWith('-')) return `unknown option ${arg}`
    else if (name === undefined) name = arg
    else return `one channel name only (got '${name}' and '${arg}')`
  }
  if (name === undefined) return 'which channel? shmq tail NAME'
  return { name, format, schema, last, interval }
}

interface Frame {
  type: number
  payload: Uint8Array
}

/** The observed channel: its file, layout and where the read side and the write side stand. */
class Observer {
  readonly file: NativeSegmentFile
  readonly layout: L.RingLayout
  readonly capacity: number
  readonly maxMessage: number
  readonly headerBytes: number
  private readonly readOffset: number
  /** Bytes of commit stamp before each message (timestamps: true): not printed. */
  private readonly stampBytes: number

  constructor(file: NativeSegmentFile, name: string) {
    this.file = file
    const read = readValidHeader(file, name)
    if (read === null) throw new ShmqError('ERR_SHMQ_NOT_SHMQ', `'${name}' is no shmq segment`, { segment: name })
    const { verdict } = read
    this.layout = verdict.layout
    this.capacity = verdict.capacity
    this.maxMessage = verdict.maxMessage
    this.headerBytes = verdict.layout.headerBytes
    this.readOffset = verdict.layout.kind === L.KIND_BROADCAST ? L.OLDEST_POSITION_OFFSET : L.READ_POSITION_OFFSET
    this.stampBytes = (verdict.incompatibleFlags & L.INCOMPATIBLE_TIMESTAMPS) !== 0 ? L.STAMP_BYTES : 0
  }

  private word(offset: number): number {
    const bytes = this.file.read(offset, 4)
    if (bytes.length !== 4) throw new ShmqError('ERR_SHMQ_CORRUPT', 'the segment was cut short while read')
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true)
  }

  /** The read side's position (low 32 bits): nothing before it is intact any more. */
  readPosition(): number {
    return this.word(this.readOffset)
  }

  writePosition(): number {
    return this.word(L.WRITE_POSITION_OFFSET)
  }

  /**
   * SPSC: frames the consumer released stay intact until the producer writes
   * over them, a ring later: a frame at `position` is intact while the write
   * position is less than a ring, minus the largest frame the producer may be
   * writing, past it. MPSC consumers zero what they release; broadcast
   * publishers overwrite from the oldest line on: there only the frames from
   * the read side on are intact.
   */
  intact(position: number, read: number, write: number): boolean {
    if (((position - read) | 0) >= 0) return true
    if (this.layout.kind !== L.KIND_SPSC) return false
    return ((write - position) | 0) <= this.capacity - (this.maxMessage + 2 * L.FRAME_HEADER_BYTES + 8)
  }

  ended(): boolean {
    return this.word(L.END_OF_STREAM_OFFSET) !== 0
  }

  /** Whether any process holds a slot of the channel (its lock): with none, nothing more will pass. */
  attended(): boolean {
    return this.layout.slots.some((slot) => this.file.roleLocked(slot.owner))
  }

  /**
   * The message frames from `from` up to `to` (both low words, `to` - `from`
   * within the ring), stopping at a frame not committed yet (MPSC). Returns
   * the frames and the position after the last one taken. Every length read
   * is checked; a frame that makes no sense ends the batch (it was being
   * rewritten while read: the caller's re-check of the read side drops it).
   */
  frames(from: number, to: number): { frames: Array<Frame & { at: number }>; next: number } {
    const frames: Array<Frame & { at: number }> = []
    const mask = this.capacity - 1
    let position = from
    while (((to - position) | 0) > 0) {
      const index = position & mask
      const header = this.file.read(this.headerBytes + index, L.FRAME_HEADER_BYTES)
      if (header.length !== L.FRAME_HEADER_BYTES) break
      const view = new DataView(header.buffer, header.byteOffset, L.FRAME_HEADER_BYTES)
      const length = view.getInt32(0, true)
      const typeWord = view.getUint32(4, true)
      const frameType = (typeWord >>> 16) & 0xff
      if (frameType === L.FRAME_PADDING) {
        const size = length + L.FRAME_HEADER_BYTES
        if (length < 0 || (size & 7) !== 0 || index + size > this.capacity) break
        position = (position + size) | 0
        continue
      }
      if (frameType !== L.FRAME_MESSAGE) break // not written yet, claimed, revoked: look again later
      if (length < 0 || length > this.maxMessage || index + L.FRAME_HEADER_BYTES + length > this.capacity) break
      const size = (L.FRAME_HEADER_BYTES + length + 7) & ~7
      if (((to - position) | 0) < size) break
      const payload = this.file.read(this.headerBytes + index + L.FRAME_HEADER_BYTES, length)
      if (payload.length !== length) break
      if (payload.length < this.stampBytes) break
      frames.push({ at: position, type: typeWord & 0xffff, payload: payload.subarray(this.stampBytes) })
      position = (position + size) | 0
    }
    return { frames, next: position }
  }
}

function hex(bytes: Uint8Array): string {
  const shown = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 64)).toString('hex')
  return bytes.length > 64 ? `${shown}…` : shown
}

/** Idle polls between two looks at whether anyone is still attached. */
const IDLE_CHECK_POLLS = 50

type Decode = (payload: Uint8Array) => string

async function decoderFor(options: TailOptions): Promise<Decode> {
  if (options.schema !== null) {
    const module = (await import(pathToFileURL(path.resolve(options.schema)).href)) as { default?: unknown; schema?: unknown }
    const schema = (module.schema ?? module.default) as { decode?: (bytes: Uint8Array) => unknown } | undefined
    if (schema === undefined || typeof schema.decode !== 'function') {
      throw new ShmqError('ERR_SHMQ_INVALID_ARGUMENT', `${options.schema} exports no message schema (export default defineMessage(...), or export const schema)`)
    }
    return (payload) => {
      try {
        return JSON.stringify(schema.decode!(payload), (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value instanceof Uint8Array ? hex(value) : value))
      } catch (error) {
        return `(not this schema: ${(error as Error).message}) ${hex(payload)}`
      }
    }
  }
  if (options.format === 'utf8') return (payload) => JSON.stringify(Buffer.from(payload).toString('utf8'))
  if (options.format === 'json') {
    return (payload) => {
      const text = Buffer.from(payload).toString('utf8')
      try {
        return JSON.stringify(JSON.parse(text))
      } catch {
        return `(not JSON) ${JSON.stringify(text)}`
      }
    }
  }
  return hex
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds))
}

export async function tailCommand(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out.write(`${HELP}\n`)
    return 0
  }
  const options = parse(args)
  if (typeof options === 'string') {
    err.write(`shmq tail: ${options}\n${HELP}\n`)
    return 2
  }
  let decode: Decode
  let file: NativeSegmentFile
  let observer: Observer
  try {
    decode = await decoderFor(options)
    const opened = openSegmentFile(options.name)
    if (opened === null) throw new ShmqError('ENOENT', `no shmq segment named '${options.name}' (shmq ls lists them)`, { segment: options.name })
    file = opened
    observer = new Observer(file, options.name)
  } catch (error) {
    err.write(`shmq tail: ${(error as Error).message}\n`)
    return 1
  }
  let printed = 0
  let missedBytes = 0
  let missedSpans = 0
  let dropped = 0
  let idlePolls = 0
  let stopped = false
  const stop = (): void => {
    stopped = true
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const print = (frame: Frame): void => {
    out.write(`type=${frame.type} length=${frame.payload.length} ${decode(frame.payload)}\n`)
    printed++
  }
  try {
    // where to start: the last -n messages the ring holds, or its write position
    let cursor = observer.writePosition()
    if (options.last > 0) {
      const start = observer.readPosition()
      const { frames } = observer.frames(start, cursor)
      const kept = frames.filter((frame) => observer.intact(frame.at, observer.readPosition(), observer.writePosition()))
      for (const frame of kept.slice(-options.last)) print(frame)
    }
    while (!stopped) {
      const write = observer.writePosition()
      if (write !== cursor) {
        const read = observer.readPosition()
        if (!observer.intact(cursor, read, write)) {
          // released and overwritten (or zeroed) before we looked: go on from the read side
          missedSpans++
          missedBytes += (read - cursor) | 0
          cursor = read
        }
        const { frames, next } = observer.frames(cursor, write)
        // a frame the writer may have been overwriting while we read it is dropped, never printed torn
        const readAfter = observer.readPosition()
        const writeAfter = observer.writePosition()
        for (const frame of frames) {
          if (observer.intact(frame.at, readAfter, writeAfter)) print(frame)
          else dropped++
        }
        cursor = next
      } else if (observer.ended() && observer.readPosition() === write) {
        break
      } else if (++idlePolls % IDLE_CHECK_POLLS === 0 && !observer.attended()) {
        // everyone left (or the segment was removed and re-made elsewhere): nothing more will come here
        break
      }
      await sleep(options.interval)
    }
  } catch (error) {
    err.write(`shmq tail: ${(error as Error).message}\n`)
    return 1
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    file.close()
    const missed = missedSpans + dropped
    if (missed > 0) {
      err.write(`shmq tail: ${printed} messages shown; missed at least ${missed} (${dropped} overwritten while read, ${missedSpans} stretches of ${missedBytes} bytes released before they were read)\n`)
    } else err.write(`shmq tail: ${printed} messages shown, none missed\n`)
  }
  return 0
}
