// Broadcast (one publisher, many subscribers) across real processes: every
// subscriber gets every message from its join point, in order, intact
// (backpressure), or each message it gets intact with every gap counted in
// `lost` (lossy); late joiners, SIGKILLed and SIGSTOPped subscribers, slot
// limits, kind refusals, and hostile subscriber words.
// SHMQ_BROADCAST_SEED replays a run.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, exitOf, poke, spawnFixture, testSegments, thrownBy, u32, waitUntil } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, Publisher, Subscriber, inspectSegment, collectGarbage } = require('../dist/index.js')
const L = require('../dist/layout.js')
const { buildMessage, lengthOf, BroadcastChecker } = require('./fixtures/broadcast-stream.cjs')

const SEED = Number(process.env.SHMQ_BROADCAST_SEED ?? ((Math.random() * 0x1_0000_0000) >>> 0 || 1))
const MAX_LENGTH = 4096
/** A hang detector only: no step here is expected to take more than a fraction of it. */
const HANG_MS = 90_000

const { endpoints, segmentName } = testSegments(afterEach)
const context = (what) => `${what} (SHMQ_BROADCAST_SEED=${SEED})`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function startPublisher(name, config) {
  return spawnFixture('broadcast-stream.cjs', { role: 'publisher', name, seed: SEED, maxLength: MAX_LENGTH, ...config })
}

function startSubscriber(name, config = {}) {
  return spawnFixture('broadcast-stream.cjs', { role: 'subscriber', name, seed: SEED, maxLength: MAX_LENGTH, ...config })
}

async function ready(handle) {
  return deadline(handle.next('ready'), HANG_MS, context(`${handle.script} ready`))
}

async function done(handle) {
  const report = await deadline(handle.next('done'), HANG_MS, context(`${handle.script} done`))
  expect(await exitOf(handle, HANG_MS), handle.describe()).toEqual({ code: 0, signal: null })
  return report
}

/** The fold of (seq, length, crc) over messages [from, to) as the publisher wrote them. */
function checksumOf(from, to) {
  const checker = new BroadcastChecker({ seed: SEED, maxLength: MAX_LENGTH })
  const scratch = new Uint8Array(MAX_LENGTH + 8)
  for (let seq = from; seq < to; seq++) {
    const length = lengthOf(SEED, seq, MAX_LENGTH)
    buildMessage(scratch, SEED, seq, length)
    checker.check(scratch, 0, length, 0)
  }
  return checker.checksum
}

describe('backpressure', () => {
  it('1 publisher, 4 subscriber processes (drainRaw, for await, tryRead, readSync), 1,000,000 random-size messages: each subscriber gets every one, in order, intact', async () => {
    const name = segmentName('bc-four')
    const count = 1_000_000
    const publisher = startPublisher(name, { capacity: 1 << 16, policy: 'backpressure', count })
    await ready(publisher)
    const modes = ['drainRaw', 'iterate', 'tryRead', 'readSync']
    const subscribers = modes.map((mode) => startSubscriber(name, { mode, from: 'next' }))
    await Promise.all(subscribers.map(ready))
    publisher.send({ type: 'go' })
    const published = await done(publisher)
    expect(published.published).toBe(count)
    expect(published.dropped).toEqual({ dead: 0, evicted: 0 })
    for (const [i, subscriber] of subscribers.entries()) {
      const report = await done(subscriber)
      expect(report, context(modes[i])).toMatchObject({ received: count, first: 0, last: count - 1, lost: 0, gaps: 0, resumes: 0, policy: 'backpressure' })
      expect(report.checksum, context(modes[i])).toBe(published.checksum)
    }
  }, 240_000)
})

describe('joins and leaves', () => {
  it("subscribers join mid-stream ('oldest' starts before 'next', both contiguous to the end) and one that closes early stops holding the publisher", async () => {
    const name = segmentName('bc-join')
    const count = 400_000
    const held = 100_000
    const publisher = startPublisher(name, { capacity: 1 << 16, policy: 'backpressure', count, holdAt: held })
    await ready(publisher)
    const early = startSubscriber(name, { mode: 'drainRaw', from: 'oldest' })
    const leaving = startSubscriber(name, { mode: 'iterate', stopAfter: 1000 })
    await Promise.all([ready(early), ready(leaving)])
    publisher.send({ type: 'go' })
    // the publisher stops after 100,000 until both late subscribers joined: the ring holds at most 64 KiB of the newest
    await deadline(publisher.next('held'), HANG_MS, 'held')
    const oldest = startSubscriber(name, { mode: 'tryRead', from: 'oldest' })
    await ready(oldest)
    const next = startSubscriber(name, { mode: 'iterate', from: 'next' })
    await ready(next)
    publisher.send({ type: 'resume' })
    const published = await done(publisher)
    expect(published.published).toBe(count)
    expect(published.dropped).toEqual({ dead: 0, evicted: 0 })
    const left = await done(leaving)
    expect(left).toMatchObject({ received: 1000, first: 0, last: 999, lost: 0 })
    expect(await done(early)).toMatchObject({ received: count, first: 0, last: count - 1, lost: 0, checksum: published.checksum })
    const [fromOldest, fromNext] = [await done(oldest), await done(next)]
    for (const report of [fromOldest, fromNext]) {
      expect(report, context('late joiner')).toMatchObject({ last: count - 1, lost: 0, gaps: 0, resumes: 0 })
      expect(report.received).toBe(count - report.first)
      expect(report.checksum).toBe(checksumOf(report.first, count))
    }
    // 'oldest': within the ring's last 64 KiB (frames of 16 bytes at least); 'next': the first after the hold
    expect(fromOldest.first).toBeGreaterThanOrEqual(held - (1 << 16) / 16)
    expect(fromOldest.first).toBeLessThan(held)
    expect(fromNext.first).toBe(held)
  }, 240_000)

  it('maxSubscribers bounds the slots: one more is ERR_SHMQ_BUSY, a closed slot is taken again; kinds and options are checked', () => {
    const name = segmentName('bc-slots')
    const publisher = Publisher.create(name, { capacity: 4096, maxSubscribers: 2 })
    endpoints.push(publisher)
    const first = Subscriber.open(name)
    const second = Subscriber.open(name)
    endpoints.push(first, second)
    expect(thrownBy(() => Subscriber.open(name, { timeout: 0 })).code).toBe('ERR_SHMQ_BUSY')
    second.close()
    const third = Subscriber.open(name)
    endpoints.push(third)
    expect(publisher.tryWrite(new Uint8Array([1, 2, 3]))).toBe(true)
    expect(Array.from(first.tryRead())).toEqual([1, 2, 3])
    expect(Array.from(third.tryRead())).toEqual([1, 2, 3])
    // a broadcast ring is not a queue, and a queue is not a broadcast ring
    expect(thrownBy(() => Consumer.open(name, { timeout: 0 })).code).toBe('ERR_SHMQ_KIND')
    expect(thrownBy(() => Producer.open(name, { timeout: 0 })).code).toBe('ERR_SHMQ_KIND')
    expect(thrownBy(() => Publisher.open(name)).code).toBe('ERR_SHMQ_KIND')
    expect(thrownBy(() => Subscriber.create(name)).code).toBe('ERR_SHMQ_KIND')
    const queue = segmentName('bc-queue')
    endpoints.push(Producer.create(queue, { capacity: 4096 }))
    expect(thrownBy(() => Subscriber.open(queue, { timeout: 0 })).code).toBe('ERR_SHMQ_KIND')
    for (const options of [{ policy: 'sometimes' }, { maxSubscribers: 0 }, { maxSubscribers: 256 }, { maxSubscribers: 1.5 }, { subscriberTimeout: -1 }]) {
      expect(thrownBy(() => Publisher.create(segmentName('bc-bad'), { capacity: 4096, ...options })).code, JSON.stringify(options)).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    }
    expect(thrownBy(() => Subscriber.open(name, { from: 'newest' })).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
  })
})

describe('subscribers that die or stop (backpressure)', () => {
  it('a SIGKILLed subscriber is dropped when the publisher next needs its room; the others get every message', async () => {
    const name = segmentName('bc-kill')
    const count = 300_000
    // subscriberTimeout far above the test's length: what frees the publisher is the death, not a timeout
    const publisher = startPublisher(name, { capacity: 1 << 14, policy: 'backpressure', count, holdAt: 20_000, subscriberTimeout: 600_000 })
    await ready(publisher)
    const survivor = startSubscriber(name, { mode: 'drainRaw' })
    const victim = startSubscriber(name, { mode: 'iterate', slowEvery: 50 })
    await Promise.all([ready(survivor), ready(victim)])
    publisher.send({ type: 'go' })
    // mid-stream: the publisher holds after 20,000 while the victim dies
    await deadline(publisher.next('held'), HANG_MS, 'held')
    victim.child.kill('SIGKILL')
    expect(await exitOf(victim, HANG_MS)).toEqual({ code: null, signal: 'SIGKILL' })
    publisher.send({ type: 'resume' })
    const published = await done(publisher)
    expect(published.published).toBe(count)
    expect(published.dropped).toEqual({ dead: 1, evicted: 0 })
    expect(await done(survivor)).toMatchObject({ received: count, first: 0, last: count - 1, lost: 0, checksum: published.checksum })
    // its slot is free again
    const again = startSubscriber(name, { mode: 'iterate', openTimeout: 0 })
    await ready(again)
  }, 240_000)

  it('a SIGSTOPped subscriber is evicted after subscriberTimeout; resumed, it reads on from the oldest message and counts what it missed', async () => {
    const name = segmentName('bc-stop')
    const count = 200_000
    // 2 s: well above how long a loaded 2-core host leaves a running subscriber unscheduled
    const publisher = startPublisher(name, { capacity: 1 << 14, policy: 'backpressure', count, holdAt: 20_000, subscriberTimeout: 2000 })
    await ready(publisher)
    const running = startSubscriber(name, { mode: 'iterate' })
    const stopped = startSubscriber(name, { mode: 'drainRaw' })
    await Promise.all([ready(running), ready(stopped)])
    publisher.send({ type: 'go' })
    // mid-stream: the publisher holds after 20,000 while the subscriber is stopped
    await deadline(publisher.next('held'), HANG_MS, 'held')
    stopped.child.kill('SIGSTOP')
    publisher.send({ type: 'resume' })
    const published = await done(publisher)
    expect(published.published).toBe(count)
    stopped.child.kill('SIGCONT')
    const [kept, resumed] = [await done(running), await done(stopped)]
    const reports = context(JSON.stringify({ published, kept, resumed }))
    expect(published.dropped, reports).toEqual({ dead: 0, evicted: 1 })
    expect(kept, reports).toMatchObject({ received: count, first: 0, last: count - 1, lost: 0, checksum: published.checksum })
    expect(resumed.last, reports).toBe(count - 1)
    expect(resumed.lost - resumed.gaps, reports).toBe(resumed.first)
    expect(resumed.resumes, reports).toBeGreaterThanOrEqual(1)
    expect(resumed.lost, reports).toBeGreaterThan(0)
    // every message is either received or counted lost, exactly
    expect(resumed.received + resumed.lost, reports).toBe(count)
    console.log(`evicted subscriber: received ${resumed.received}, lost ${resumed.lost} in ${resumed.resumes} resumes`)
  }, 240_000)
})

describe('a publisher that dies', () => {
  it('its subscribers read everything it published, then read() and readSync() are ERR_SHMQ_PEER_GONE, each time they are asked, within 1 s', async () => {
    const name = segmentName('bc-publisher-dies')
    const publisher = startPublisher(name, { capacity: 1 << 16, policy: 'backpressure', count: 100, noWait: true, holdOpen: true })
    await ready(publisher)
    const subscriber = Subscriber.open(name, { from: 'oldest' })
    endpoints.push(subscriber)
    const written = await deadline(publisher.next('written'), HANG_MS, 'written')
    publisher.child.kill('SIGKILL')
    expect(await exitOf(publisher, HANG_MS)).toEqual({ code: null, signal: 'SIGKILL' })
    const checker = new BroadcastChecker({ seed: SEED, maxLength: MAX_LENGTH })
    let error
    try {
      for (;;) {
        const message = await deadline(subscriber.read(), HANG_MS, 'read')
        checker.check(message, 0, message.length, subscriber.lost)
      }
    } catch (caught) {
      error = caught
    }
    expect(error.code, String(error.stack)).toBe('ERR_SHMQ_PEER_GONE')
    expect(checker.received).toBe(written.published)
    expect(checker.checksum).toBe(written.checksum)
    // asked again: the same answer, at once (no publisher can ever take over)
    for (let again = 0; again < 3; again++) {
      const started = performance.now()
      const repeated = await deadline(subscriber.read().then(() => null, (caught) => caught), 5000, 'read again')
      expect(repeated?.code).toBe('ERR_SHMQ_PEER_GONE')
      expect(thrownBy(() => subscriber.readSync(5000)).code).toBe('ERR_SHMQ_PEER_GONE')
      expect(performance.now() - started).toBeLessThan(1000)
    }
  }, 60_000)
})

describe('shmq ls and gc', () => {
  it('report a broadcast ring with its publisher and subscribers, keep it while one lives, remove it once all are dead', async () => {
    const name = segmentName('bc-admin')
    const publisher = startPublisher(name, { capacity: 1 << 14, policy: 'lossy', count: 10, noWait: true, holdOpen: true, maxSubscribers: 3 })
    const { pid } = await ready(publisher)
    const subscriber = Subscriber.open(name, { from: 'oldest' })
    await deadline(publisher.next('written'), HANG_MS, 'written')
    const report = inspectSegment(name)
    expect(report).toMatchObject({ kind: 'broadcast', capacity: 1 << 14, producer: { pid, alive: true }, maxSubscribers: 3, consumer: null, ended: false })
    expect(report.subscribers).toEqual([{ slot: 1, pid: process.pid, alive: true }])
    expect(report.fill).toBeGreaterThan(0)
    const stdout = execFileSync(process.execPath, [new URL('../dist/cli.js', import.meta.url).pathname, 'ls', '--prefix', name], { encoding: 'utf8' })
    expect(stdout).toMatch(new RegExp(`${name}\\s+broadcast\\s.*${pid} \\(alive\\)\\s+1/3 subscribers \\(1 alive\\)`))
    publisher.child.kill('SIGKILL')
    await exitOf(publisher, HANG_MS)
    // the subscriber still lives: not garbage
    expect(collectGarbage({ prefix: name, graceMs: 0 }).removed).toEqual([])
    subscriber.close()
    expect(inspectSegment(name).subscribers).toEqual([])
    expect(collectGarbage({ prefix: name, graceMs: 0 }).removed.map((removed) => removed.name)).toEqual([name])
    expect(inspectSegment(name)).toBeNull()
  })
})

describe('lossy', () => {
  it('the publisher never waits; a slow subscriber gets intact messages in order and counts every one it missed; a fast one misses few or none', async () => {
    const name = segmentName('bc-lossy')
    const count = 300_000
    const publisher = startPublisher(name, { capacity: 1 << 14, policy: 'lossy', count })
    await ready(publisher)
    const slow = startSubscriber(name, { mode: 'iterate', slowEvery: 20 })
    const fast = startSubscriber(name, { mode: 'drainRaw' })
    const sync = startSubscriber(name, { mode: 'readSync', slowEvery: 500 })
    await Promise.all([ready(slow), ready(fast), ready(sync)])
    publisher.send({ type: 'go' })
    const published = await done(publisher)
    expect(published.published).toBe(count)
    const reports = {}
    for (const [what, handle] of [['slow', slow], ['fast', fast], ['readSync', sync]]) {
      const report = await done(handle)
      expect(report.policy).toBe('lossy')
      // joined before the first message: everything published is received or counted lost
      expect(report.received + report.lost, context(what)).toBe(count)
      expect(report.lost - report.gaps, context(what)).toBe(report.first)
      if (report.received > 0) expect(report.last).toBe(count - 1)
      if (report.lost > 0) expect(report.resumes).toBeGreaterThan(0)
      reports[what] = report
    }
    // 1 ms of sleep every 20 messages cannot keep up with a publisher that never waits
    expect(reports.slow.lost).toBeGreaterThan(0)
    console.log(`lossy: ${count} published; ${Object.entries(reports).map(([what, r]) => `${what} received ${r.received}, lost ${r.lost} in ${r.resumes} resumes`).join('; ')}`)
  }, 240_000)
})

describe('hostile words in the segment', () => {
  const bytes = (n, fill) => new Uint8Array(n).fill(fill)
  /** Reads what is ready, as a list of first bytes; ShmqErrors are returned as their code. */
  const readAll = (subscriber) => {
    const seen = []
    try {
      for (let view; (view = subscriber.tryRead()) !== null; ) seen.push(view[0])
    } catch (error) {
      if (!error.code) throw error
      return error.code
    }
    return seen
  }

  it('a forged joined subscriber cannot hold the publisher (no live endpoint holds its slot: dropped); forged positions outside the ring are ignored', async () => {
    const name = segmentName('bc-forged')
    const publisher = Publisher.create(name, { capacity: 4096, maxSubscribers: 4, subscriberTimeout: 600_000 })
    endpoints.push(publisher)
    const subscriber = Subscriber.open(name)
    endpoints.push(subscriber)
    const layout = L.ringLayout(L.KIND_BROADCAST, 5)
    // slot 3: joined, a position a ring ahead of the tail (ignored); slot 4: joined at the tail, never moving (no lock: dropped)
    poke(name, layout.slots[3].position, u32(1 << 20))
    poke(name, layout.slots[3].state, u32(L.SUBSCRIBER_JOINED))
    poke(name, layout.slots[4].position, u32(0))
    poke(name, layout.slots[4].state, u32(L.SUBSCRIBER_JOINED))
    for (let i = 0; i < 200; i++) {
      // tryWrite refuses once the forged one looks like the slowest; write() waits, finds no one holds it, drops it
      if (!publisher.tryWrite(bytes(100, i & 0xff))) await deadline(publisher.write(bytes(100, i & 0xff)), HANG_MS, `message ${i}`)
      expect(readAll(subscriber)).toEqual([i & 0xff])
    }
    expect(publisher.dropped).toEqual({ dead: 1, evicted: 0 })
  })

  it("a subscriber's own state overwritten makes it rejoin (counted), never read stale data; a forged tail or oldest line is ERR_SHMQ_CORRUPT, never a crash or a view outside the ring", () => {
    const name = segmentName('bc-hostile')
    const publisher = Publisher.create(name, { capacity: 4096, maxSubscribers: 2 })
    endpoints.push(publisher)
    const subscriber = Subscriber.open(name)
    endpoints.push(subscriber)
    const layout = L.ringLayout(L.KIND_BROADCAST, 3)
    expect(publisher.tryWrite(bytes(50, 1))).toBe(true)
    expect(readAll(subscriber)).toEqual([1])
    // its state word set to something that is not JOINED: it no longer holds the publisher, so it rejoins
    poke(name, layout.slots[1].state, u32(9))
    expect(publisher.tryWrite(bytes(50, 2))).toBe(true)
    const after = readAll(subscriber)
    expect(after).toEqual([2])
    expect(subscriber.resumes).toBe(1)
    // a forged oldest line: a subscriber joining at the oldest refuses it
    poke(name, L.OLDEST_VERSION_OFFSET, new Uint8Array(8))
    poke(name, L.OLDEST_POSITION_OFFSET, u32(12345))
    const late = (() => {
      try {
        const joined = Subscriber.open(name, { from: 'oldest' })
        endpoints.push(joined)
        return readAll(joined)
      } catch (error) {
        return error.code
      }
    })()
    expect(late).toBe('ERR_SHMQ_CORRUPT')
    // the publisher keeps its own oldest line: it writes on
    expect(publisher.tryWrite(bytes(50, 3))).toBe(true)
    // a version left odd (as by a publisher stopped mid-update): a join gives up after about a second, not a hang
    const odd = segmentName('bc-odd')
    endpoints.push(Publisher.create(odd, { capacity: 4096 }))
    poke(odd, L.OLDEST_VERSION_OFFSET, u32(7))
    const started = performance.now()
    const refused = thrownBy(() => Subscriber.open(odd, { from: 'oldest' }))
    expect(refused.code).toBe('ERR_SHMQ_CORRUPT')
    expect(refused.message).toMatch(/stayed odd/)
    expect(performance.now() - started).toBeGreaterThanOrEqual(900)
    // a forged tail far ahead: the subscriber refuses it
    poke(name, L.WRITE_POSITION_OFFSET, u32(1 << 24))
    expect(readAll(subscriber)).toBe('ERR_SHMQ_CORRUPT')
  })
})

describe('positions crossing 2^31 and 2^32 (in-process)', () => {
  const { sharedRingMemory } = require('../dist/memory.js')
  const { BroadcastWriter, BroadcastReader } = require('../dist/broadcast.js')
  const { FENCED_PUBLISH } = require('../dist/spsc.js')
  const word = (offset) => offset / 4
  /** A broadcast ring whose tail, oldest line and checkpoint start at `start` (low word; high words 0). */
  function ringAt(policy, start) {
    const memory = sharedRingMemory('bc-wrap', { kind: 'broadcast', capacity: 4096, maxSubscribers: 2, policy })
    for (const offset of [L.WRITE_POSITION_OFFSET, L.OLDEST_POSITION_OFFSET, L.CHECKPOINT_POSITION_OFFSET]) memory.words[word(offset)] = start | 0
    return memory
  }

  for (const policy of ['backpressure', 'lossy']) {
    for (const [label, start] of [['2^31', 2 ** 31 - 2048], ['2^32', 2 ** 32 - 2048]]) {
      it(`${policy}: 100,000 messages starting 2048 bytes before ${label}; every message arrives or is counted lost, in order`, () => {
        const memory = ringAt(policy, start)
        const writer = new BroadcastWriter(memory, () => {}, FENCED_PUBLISH, { slotAlive: () => true })
        const readers = [1, 2].map((slot) => new BroadcastReader(memory, slot, () => {}, FENCED_PUBLISH, 'next'))
        const checkers = readers.map(() => new BroadcastChecker({ seed: SEED, maxLength: 1000 }))
        const scratch = new Uint8Array(1008)
        const count = 100_000
        let seq = 0
        for (let round = 0; seq < count; round++) {
          // lossy: reader 1 reads every round, reader 0 every seventh (it is lapped, and counts it)
          for (let n = 0; n < 9 && seq < count; n++) {
            const length = lengthOf(SEED, seq, 1000)
            buildMessage(scratch, SEED, seq, length)
            if (!writer.tryWrite(scratch.subarray(0, length), length)) break
            seq++
          }
          for (const [i, reader] of readers.entries()) {
            if (policy === 'lossy' && i === 0 && round % 7 !== 0) continue
            reader.drainRaw((bytes, offset, length) => checkers[i].check(bytes, offset, length, reader.lost), Infinity)
          }
        }
        writer.end()
        for (const [i, reader] of readers.entries()) reader.drainRaw((bytes, offset, length) => checkers[i].check(bytes, offset, length, reader.lost), Infinity)
        for (const [i, checker] of checkers.entries()) {
          expect(readers[i].ended).toBe(true)
          expect(checker.first).toBe(0)
          expect(checker.last).toBe(count - 1)
          expect(checker.received + readers[i].lost).toBe(count)
          expect(checker.gaps).toBe(readers[i].lost)
          if (policy === 'backpressure') expect(readers[i].lost).toBe(0)
        }
        if (policy === 'lossy') expect(readers[0].lost).toBeGreaterThan(0)
        // the tail went past the boundary, its high word with it when it crossed 2^32; each subscriber's 64-bit position too
        const tail = memory.words[word(L.WRITE_POSITION_OFFSET)] >>> 0
        expect((tail - start + 2 ** 32) % 2 ** 32).toBeGreaterThan(2048)
        const high = label === '2^32' ? 1 : 0
        expect(memory.words[word(L.WRITE_POSITION_OFFSET) + 1]).toBe(high)
        for (const slot of [1, 2]) {
          const position = memory.layout.slots[slot].position
          expect(memory.words[word(position)] >>> 0).toBe(tail)
          expect(memory.words[word(position) + 1]).toBe(high)
        }
      })
    }
  }
})

describe('parking, in-process threads (lost wake-ups throw)', () => {
  const { Worker } = require('node:worker_threads')
  const { sharedRingMemory } = require('../dist/memory.js')
  const WORKER = new URL('./fixtures/broadcast-threads.cjs', import.meta.url)
  const COUNT = 1_000_000

  function runThreads(sides) {
    const workers = []
    const stopAll = () => workers.forEach((worker) => worker.terminate())
    const timer = setTimeout(stopAll, 120_000)
    return Promise.allSettled(
      sides.map(
        (workerData) =>
          new Promise((resolve, reject) => {
            const worker = new Worker(WORKER, { workerData })
            workers.push(worker)
            let result
            worker.once('message', (message) => {
              result = message
              if (!message.ok) stopAll()
            })
            worker.once('error', (error) => {
              stopAll()
              reject(error)
            })
            worker.once('exit', (code) => (code === 0 && result?.ok ? resolve(result) : reject(new Error(`${workerData.role} ${workerData.slot ?? ''} exited ${code}: ${result?.error ?? 'stopped'}`))))
          }),
      ),
    ).then((settled) => {
      clearTimeout(timer)
      const failed = settled.filter((s) => s.status === 'rejected').map((s) => s.reason.message)
      if (failed.length > 0) throw new Error(failed.join('\n'))
      return settled.map((s) => s.value)
    })
  }

  for (const mode of ['plain/plain', 'fenced/fenced', 'plain writer/fenced reader']) {
    it(`${mode}: 1 publisher and 2 subscriber threads, ${COUNT.toLocaleString('en')} random-size messages across the 32-bit wrap, every side parking: each subscriber gets every one, in order`, async () => {
      const capacity = 16384
      const memory = sharedRingMemory('bc-threads', { kind: 'broadcast', capacity, maxSubscribers: 2, policy: 'backpressure' })
      const start = (2 ** 32 - 2 * capacity - 776) | 0
      for (const offset of [L.WRITE_POSITION_OFFSET, L.OLDEST_POSITION_OFFSET, L.CHECKPOINT_POSITION_OFFSET]) memory.words[offset / 4] = start
      const control = new SharedArrayBuffer(4)
      const common = { buffer: memory.buffer, control, count: COUNT, seed: SEED, subscribers: 2, mode }
      const [published, ...received] = await runThreads([
        { ...common, role: 'publisher' },
        { ...common, role: 'subscriber', slot: 1 },
        { ...common, role: 'subscriber', slot: 2 },
      ])
      expect(published.published).toBe(COUNT)
      for (const report of received) {
        expect(report, context(mode)).toMatchObject({ received: COUNT, bad: 0, lost: 0, parkerLost: 0, sum: published.sum })
      }
      expect(published.lost).toBe(0)
      // both sides waited, so both Dekker pairs were exercised
      expect(published.parks).toBeGreaterThan(0)
      expect(received[0].parks + received[1].parks).toBeGreaterThan(0)
      console.log(`broadcast threads, ${mode}: publisher parked ${published.parks} times, subscribers ${received.map((r) => r.parks).join(' and ')}`)
    }, 180_000)
  }
})
