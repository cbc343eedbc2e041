// Two separate processes (neither of them this one) stream >= 1,000,000
// messages of random sizes through a ring; the consumer checks the order,
// length and content of every message, then the end of the stream.
import { afterEach, describe, expect, it } from 'vitest'
import { spawnFixture, uniqueName, removeSegment, killAll, exitOf } from './fixtures/harness.mjs'

const COUNT = 1_000_000
const names = []

afterEach(() => {
  killAll()
  for (const name of names.splice(0)) removeSegment(name)
})

/**
 * Starts the creating side, waits until it reports the segment ready, starts
 * the opening side, and returns both reports and exits.
 */
async function stream({ capacity, maxMessage, creator, producerMode, consumerMode, spin, seed }) {
  const name = uniqueName('stream')
  names.push(name)
  const base = { name, capacity, count: COUNT, seed, spin, ...(maxMessage === undefined ? {} : { maxMessage }) }
  const producerConfig = { ...base, create: creator === 'producer', mode: producerMode }
  const consumerConfig = { ...base, create: creator === 'consumer', mode: consumerMode }
  let producer
  let consumer
  if (creator === 'producer') {
    producer = spawnFixture('stream-producer.cjs', producerConfig)
    await producer.next('ready')
    consumer = spawnFixture('stream-consumer.cjs', consumerConfig)
  } else {
    consumer = spawnFixture('stream-consumer.cjs', consumerConfig)
    await consumer.next('ready')
    producer = spawnFixture('stream-producer.cjs', producerConfig)
  }
  const [sent, received] = await Promise.all([producer.next('done'), consumer.next('done')])
  const producerExit = await exitOf(producer)
  const consumerExit = await exitOf(consumer)
  return { sent, received, producerExit, consumerExit, producer, consumer }
}

function expectClean(run) {
  expect(run.producerExit, run.producer.describe()).toEqual({ code: 0, signal: null })
  expect(run.consumerExit, run.consumer.describe()).toEqual({ code: 0, signal: null })
}

function expectDelivered(run, { capacity, maxMessage }) {
  const { sent, received } = run
  // both ends see the channel as created
  expect(sent.capacity).toBe(capacity)
  expect(received.capacity).toBe(capacity)
  expect(sent.maxMessage).toBe(maxMessage)
  expect(received.maxMessage).toBe(maxMessage)
  // every message arrived, in order (checked per message in the consumer), and
  // the running checksum over (seq, length, crc) agrees with the producer's
  expect(sent.count).toBe(COUNT)
  expect(received.count).toBe(COUNT)
  expect(received.checksum).toBe(sent.checksum)
  // after the last message: end of stream
  expect(received.endedAfter).toBe(true)
  expect(received.nullAfter).toBe(true)
}

// Small ring: 4096 bytes, messages 0..2040 bytes (the default and largest
// maxMessage, capacity / 2 - 8): about four messages fit, so the ring wraps
// every few messages and both sides keep finding it full / empty.
// Under load from other work on this 2-core machine these runs take well over
// a minute, hence the longer per-test timeout (a hang still fails).
describe('small ring (4 KiB, sizes 0..2040, many wraps)', () => {
  const capacity = 4096
  const maxMessage = 2040

  it('Producer.create + Consumer.open; await write() -> drain() (read() to wait)', async () => {
    const run = await stream({ capacity, creator: 'producer', producerMode: 'write', consumerMode: 'drain', seed: 0x1001 })
    expectClean(run)
    expectDelivered(run, { capacity, maxMessage })
  }, 200_000)

  it('Consumer.create + Producer.open; tryWrite() (write() when full) -> for await, spin 0 (every wait parks)', async () => {
    const run = await stream({ capacity, creator: 'consumer', producerMode: 'tryWrite', consumerMode: 'iterate', spin: 0, seed: 0x2002 })
    expectClean(run)
    expectDelivered(run, { capacity, maxMessage })
    // with ~4 messages per ring and a consumer that must be woken, the producer found the ring full
    expect(run.sent.fullCount).toBeGreaterThan(0)
  }, 200_000)
})

// Large ring: 1 MiB, maxMessage 1024 (so 1M messages of 0..1024 bytes, ~0.5 GB,
// fit the time budget): the ring is rarely full.
describe('large ring (1 MiB, sizes 0..1024)', () => {
  const capacity = 1 << 20
  const maxMessage = 1024

  it('Consumer.create + Producer.open; claim()/commit(shorter)/abort() -> await read()', async () => {
    const run = await stream({ capacity, maxMessage, creator: 'consumer', producerMode: 'claim', consumerMode: 'read', seed: 0x3003 })
    expectClean(run)
    expectDelivered(run, { capacity, maxMessage })
  }, 200_000)

  it('Producer.create + Consumer.open; await write() -> tryRead() (read() to wait)', async () => {
    const run = await stream({ capacity, maxMessage, creator: 'producer', producerMode: 'write', consumerMode: 'tryRead', seed: 0x4004 })
    expectClean(run)
    expectDelivered(run, { capacity, maxMessage })
  }, 200_000)
})
