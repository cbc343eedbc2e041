// The same API through require(): CommonJS resolution of package.json "exports".
import shmq = require('shmq')

const producer: shmq.Producer = shmq.Producer.create('types-cjs', { capacity: 4096 })
const consumer: shmq.Consumer = shmq.Consumer.open('types-cjs')
const ok: boolean = producer.tryWrite(new Uint8Array(1))
const message: Uint8Array | null = consumer.tryRead()
const error: shmq.ShmqError = new shmq.ShmqError('ERR_SHMQ_CLOSED', 'closed')
// @ts-expect-error tryRead takes no arguments
consumer.tryRead(1)
void [ok, message, error]
