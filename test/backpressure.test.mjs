// Backpressure: a fast producer doing `await p.write()` into a small ring that a
// slow consumer (in another process) empties loses nothing and does not grow.
import { afterEach, expect, it } from 'vitest'
import { spawnFixture, uniqueName, removeSegment, killAll, exitOf } from './fixtures/harness.mjs'

const names = []
afterEach(() => {
  killAll()
  for (const name of names.splice(0)) removeSegment(name)
})

const MB = 1024 * 1024

it('slow consumer, fast await write() producer: nothing lost, producer memory flat', async () => {
  const name = uniqueName('bp')
  names.push(name)
  const count = 150_000
  const seed = 0xb00b
  // 4 KiB ring, messages 0..2040 bytes: the producer is ahead after ~4 messages
  const consumer = spawnFixture('bp-consumer.cjs', { name, capacity: 4096, count, seed, work: 4 })
  await consumer.next('ready')
  const producer = spawnFixture('bp-producer.cjs', { name, count, seed, warmup: 20_000 }, { execArgv: ['--expose-gc'] })
  // the consumer reads nothing until the producer is stuck on a full ring:
  // from then on the producer can only go as fast as the slow consumer
  const blocked = await producer.next('blocked')
  expect(blocked.seq).toBeGreaterThan(0)
  expect(blocked.seq).toBeLessThan(10) // 4 KiB hold at most 4096 / 8 frames; sizes average ~1 KiB
  consumer.send({ type: 'go' })

  const [sent, received] = await Promise.all([producer.next('done'), consumer.next('done')])
  expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
  expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })

  expect(sent.count).toBe(count)
  expect(received.count).toBe(count)
  expect(received.checksum).toBe(sent.checksum)
  expect(received.ended).toBe(true)
  // writes did wait for room (at least the one reported as 'blocked'; how many
  // more depends on the two processes' speeds, so it is not asserted)
  expect(sent.waits).toBeGreaterThanOrEqual(1)

  // measured in the producer after gc(), after 20,000 writes and after 150,000
  const rssGrowth = sent.end.rss - sent.warm.rss
  const heapGrowth = sent.end.heapUsed - sent.warm.heapUsed
  expect(rssGrowth, `rss ${sent.warm.rss} -> ${sent.end.rss}`).toBeLessThan(20 * MB)
  expect(heapGrowth, `heapUsed ${sent.warm.heapUsed} -> ${sent.end.heapUsed}`).toBeLessThan(10 * MB)
})
