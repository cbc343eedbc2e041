// Compiled by test/types.test.mjs with `tsc --noEmit`: the public API, imported as an
// ES module through package.json "exports", is typed as the README documents it.
import shmq, { Client, Consumer, Producer, Publisher, RequestContext, Server, Subscriber, WorkQueueProducer, ShmqError, unlink, type Reply, type ShmqErrorCode } from 'shmq'

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

// broadcast: a publisher has the producer's write API, a subscriber the consumer's read API and `lost`
const publisher: Publisher = Publisher.create('types-bc', { capacity: 1 << 16, policy: 'lossy', maxSubscribers: 4, subscriberTimeout: 1000 })
const published: boolean = publisher.tryWrite(new Uint8Array(1), 7)
const subscriber: Subscriber = Subscriber.open('types-bc', { from: 'oldest', timeout: 100 })
const lostCount: number = subscriber.lost
const dropped: { dead: number; evicted: number } = publisher.dropped
// @ts-expect-error policy is 'lossy' or 'backpressure'
Publisher.create('types-bc', { policy: 'sometimes' })
// @ts-expect-error from is 'next' or 'oldest'
Subscriber.open('types-bc', { from: 'newest' })

// work queues: Producer.create with consumers: 'many' gives the dispatching producer
const queue: WorkQueueProducer = Producer.create('types-wq', { consumers: 'many', capacity: 1 << 16, maxConsumers: 4 })
const queued: Promise<void> = queue.write(new Uint8Array(8))
const workers: number = queue.consumers
const worker: Consumer = Consumer.open('types-wq')
const marked: boolean = worker.lastRedelivered
const redeliveries: number = worker.redelivered
const queueClaim: Uint8Array | null = queue.tryClaim(8)
// @ts-expect-error a work queue's producer has no end(): close() ends every worker's stream
queue.end()

// request/response: the handler gets a view and a context; the client a copy it owns
const server: Server = Server.listen('types-rpc', async (request: Uint8Array, ctx: RequestContext) => {
  ctx.replyType = ctx.type + 1
  if (request.length === 0) return new Uint8Array(0)
  const replyView: Uint8Array = await ctx.claim(request.length)
  replyView.set(request)
  return ctx.commit()
}, { concurrency: 8, maxClients: 4, replyCapacity: 1 << 16 })
const closing: Promise<void> = server.close({ timeout: 100 })
const rpcClient: Promise<Client> = Client.connect('types-rpc', { timeout: 100, requestTimeout: 1000 })
const asked = rpcClient.then((c) => c.request(new Uint8Array(1), { timeout: 10, signal: AbortSignal.timeout(5), type: 3 }))
const answered: Promise<Reply> = rpcClient.then((c) => c.requestMessage(new Uint8Array(1)))
const remoteCode: string | undefined = new ShmqError('ERR_SHMQ_REMOTE', 'x').remoteCode
// @ts-expect-error a reply is a Uint8Array, not a string
Server.listen('types-rpc', () => 'text')
// @ts-expect-error request() resolves the reply's bytes
const wrongReply: Promise<string> = rpcClient.then((c) => c.request(new Uint8Array(1)))
void [closing, asked, answered, remoteCode, wrongReply]

void [published, lostCount, dropped, queued, workers, worker, marked, redeliveries, queueClaim]
void [accepted, waited, claimLater, view, drained, drainedRaw, next, blocking, ended, iterate, SameProducer, wrong]
