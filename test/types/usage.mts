// Compiled by test/types.test.mjs with `tsc --noEmit`: the public API, imported as an
// ES module through package.json "exports", is typed as the README documents it.
import shmq, { Consumer, Producer, ShmqError, unlink, type ShmqErrorCode } from 'shmq'

const producer: Producer = Producer.create('types', { capacity: 1 << 20, maxMessage: 4096, mode: 0o600, spin: 20 })
const consumer: Consumer = Consumer.open('types', { timeout: 5000, spin: 0 })

const accepted: boolean = producer.tryWrite(new Uint8Array(8))
const waited: Promise<void> = producer.write(Buffer.from('x'))
const claimed: Uint8Array | null = producer.tryClaim(16)
if (claimed !== null) {
  claimed[0] = 1
  producer.commit(1)
}
const claimLater: Promise<Uint8Array> = producer.claim(16)
producer.abort()

const view: Uint8Array | null = consumer.tryRead()
consumer.release()
const drained: number = consumer.drain((message: Uint8Array) => void message[0], 100)
const drainedRaw: number = consumer.drainRaw((bytes: Uint8Array, offset: number, length: number) => void bytes[offset + length - 1])
const next: Promise<Uint8Array | null> = consumer.read()
const blocking: Uint8Array | null = consumer.readSync(10)
const ended: boolean = consumer.ended
async function iterate(): Promise<void> {
  for await (const message of consumer) {
    const bytes: Uint8Array = message
    void bytes
  }
}

try {
  unlink('types')
} catch (error) {
  if (error instanceof ShmqError) {
    const code: ShmqErrorCode = error.code
    const segment: string | undefined = error.segment
    void code, segment
  }
}

// the default export is the same module
const SameProducer: typeof Producer = shmq.Producer

// @ts-expect-error a payload is bytes, not a string
producer.tryWrite('text')
// @ts-expect-error capacity is a number of bytes
Producer.create('types', { capacity: '1MiB' })
// @ts-expect-error a drain handler gets a view, not a string
consumer.drain((message: string) => message)
// @ts-expect-error read() resolves a view or null, not a Buffer
const wrong: Promise<Buffer> = consumer.read()

void [accepted, waited, claimLater, view, drained, drainedRaw, next, blocking, ended, iterate, SameProducer, wrong]
