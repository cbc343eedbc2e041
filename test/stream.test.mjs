// Two separate processes (neither of them this one) stream 1,000,000 messages
// of random sizes through a ring; the consumer checks the order, length and
// content of every message, then the end of the stream. Also: positions
// crossing 2^31 / 2^32, and round trips where every wait parks.
import { afterEach, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { spawnFixture, uniqueName, removeSegment, killAll, exitOf, deadline, poke, peekU32, u32, LAYOUT } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer } = require('../dist/index.js')

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
async function stream({ capacity, maxMessage, creator, producerMode, consumerMode, spin, seed, env }) {
  const name = uniqueName('stream')
  names.push(name)
  const base = { name, capacity, count: COUNT, seed, spin, ...(maxMessage === undefined ? {} : { maxMessage }) }
  const producerConfig = { ...base, create: creator === 'producer', mode: producerMode }
  const consumerConfig = { ...base, create: creator === 'consumer', mode: consumerMode }
  let producer
  let consumer
  if (creator === 'producer') {
    producer = spawnFixture('stream-producer.cjs', producerConfig, { env })
    await producer.next('ready')
    consumer = spawnFixture('stream-consumer.cjs', consumerConfig, { env })
  } else {
    consumer = spawnFixture('stream-consumer.cjs', consumerConfig, { env })
    await consumer.next('ready')
    producer = spawnFixture('stream-producer.cjs', producerConfig, { env })
  }
  // a hang (a lost wake-up) fails here with both sides' output, before the test timeout
  const [sent, received] = await deadline(Promise.all([producer.next('done'), consumer.next('done')]), 180_000, `stream ${name}`).catch((error) => {
    throw new Error(`${error.message}\n${producer.describe()}\n${consumer.describe()}`)
  })
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

  // SHMQ_FENCED_PUBLISH=1: positions published with Atomics.store instead of
  // plain stores + membarrier on park (lib/fence.ts): the other wake-up protocol
  it('Producer.create + Consumer.open; await write() -> drain() (read() to wait); fenced publishing', async () => {
    const env = { ...process.env, SHMQ_FENCED_PUBLISH: '1' }
    const run = await stream({ capacity, creator: 'producer', producerMode: 'write', consumerMode: 'drain', seed: 0x1001, env })
    expectClean(run)
    expectDelivered(run, { capacity, maxMessage })
  }, 200_000)

  it('Consumer.create + Producer.open; tryWrite() (write() when full) -> for await, spin 0 (every wait parks)', async () => {
    const run = await stream({ capacity, creator: 'consumer', producerMode: 'tryWrite', consumerMode: 'iterate', spin: 0, seed: 0x2002 })
    expectClean(run)
    expectDelivered(run, { capacity, maxMessage })
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

// Positions are byte counts mod 2^32 kept in int32 words: they turn negative
// after 2 GiB and wrap to 0 after 4 GiB of traffic, which the runs above never
// reach. Here the segment starts with both positions just before those points
// (a consumer creates it and leaves; the test moves both positions, as if that
// much had been streamed), then two processes open it and stream across them.
describe('positions crossing 2^31 and 2^32', () => {
  for (const [label, start] of [['2^31', 2 ** 31 - 2048], ['2^32', 2 ** 32 - 2048]]) {
    it(`small ring, 100,000 messages starting ${2048} bytes before ${label}`, async () => {
      const name = uniqueName('wrap32')
      names.push(name)
      Consumer.create(name, { capacity: 4096 }).close()
      poke(name, LAYOUT.PRODUCER_POSITION, u32(start))
      poke(name, LAYOUT.CONSUMER_POSITION, u32(start))
      const count = 100_000
      const seed = 0x5005
      const consumer = spawnFixture('stream-consumer.cjs', { name, create: false, count, seed, mode: 'drain' })
      const producer = spawnFixture('stream-producer.cjs', { name, create: false, count, seed, mode: 'write' })
      const [sent, received] = await Promise.all([producer.next('done'), consumer.next('done')])
      expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
      expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })
      expect(received.count).toBe(count)
      expect(received.checksum).toBe(sent.checksum)
      expect(received.endedAfter).toBe(true)
      // the positions went past the boundary (mod 2^32) by the same amount
      const producerPosition = peekU32(name, LAYOUT.PRODUCER_POSITION)
      expect(peekU32(name, LAYOUT.CONSUMER_POSITION)).toBe(producerPosition)
      expect((producerPosition - start + 2 ** 32) % 2 ** 32).toBeGreaterThan(2048)
    })
  }
})

// Every message waits for its answer: with spin 0 each read parks and each
// write must wake the other process. A lost wake-up is a hang.
describe('round trips, every wait parked', () => {
  for (const how of ['read', 'readSync']) {
    it(`100,000 round trips, the echo side waiting in ${how}()`, async () => {
      const ping = uniqueName('ping')
      const pong = uniqueName('pong')
      names.push(ping, pong)
      const count = 100_000
      const pinger = spawnFixture('pingpong.cjs', { role: 'ping', ping, pong, count, spin: 0 })
      await pinger.next('ready')
      const ponger = spawnFixture('pingpong.cjs', { role: 'pong', ping, pong, count, spin: 0, how })
      const [a, b] = await deadline(Promise.all([pinger.next('done'), ponger.next('done')]), 100_000, `round trips ${ping}`)
      expect(a.count).toBe(count)
      expect(b.count).toBe(count)
      expect(await exitOf(pinger), pinger.describe()).toEqual({ code: 0, signal: null })
      expect(await exitOf(ponger), ponger.describe()).toEqual({ code: 0, signal: null })
    })
  }
})
