// MPSC (many producers, one consumer) across real processes and threads: every
// message exactly once, in its producer's order, intact, under the tag it was
// written with; producers SIGKILLed at random points; producer slots
// (maxProducers), a second consumer, `consumer.producers`, and claimTimeout
// revoking the claim of a stopped producer.
// SHMQ_MPSC_KILLS sets the number of producer deaths of the kill test
// (default 20; scripts/soak.mjs runs 1000), SHMQ_MPSC_SEED replays a run.
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, exitOf, peek, spawnFixture, testSegments, thrownBy, waitUntil, random32 } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, inspectSegment } = require('../dist/index.js')
const { buildMessage, lengthsOf, StreamChecker } = require('./fixtures/mpsc-producer.cjs')

const KILLS = Number(process.env.SHMQ_MPSC_KILLS ?? 20)
const SEED = Number(process.env.SHMQ_MPSC_SEED ?? ((Math.random() * 0x1_0000_0000) >>> 0 || 1))
/** Largest message the stream tests write (most are 0..300 bytes). */
const MAX_LENGTH = 4096
/** A hang detector only: no step here is expected to take more than a fraction of it. */
const HANG_MS = 60_000
/** Header offsets (lib/layout.ts, docs/LAYOUT.md): low words of the MPSC tail and head. */
const TAIL_OFFSET = 128
const HEAD_OFFSET = 256

// removeSegment (harness) finds the FIFOs of every producer slot
const { endpoints, segmentName } = testSegments(afterEach)

const context = (what) => `${what} (SHMQ_MPSC_SEED=${SEED})`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const u32At = (name, offset) => peek(name, offset, 4).readUInt32LE(0)

async function expectExit(handle, expected = { code: 0, signal: null }) {
  expect(await exitOf(handle, HANG_MS), handle.describe()).toEqual(expected)
}

/** `promise` from `handles`' children; on failure (or a hang) every child's output is attached. */
async function awaitChildren(promise, handles, what) {
  try {
    return await deadline(promise, HANG_MS * 2, context(what))
  } catch (error) {
    throw new Error(`${error.message}\n${handles.map((handle) => handle.describe()).join('\n')}`)
  }
}

function startConsumer(config) {
  return spawnFixture('mpsc-consumer.cjs', { create: true, seed: SEED, maxLength: MAX_LENGTH, ...config })
}

function startStreamProducer(name, id, config) {
  return spawnFixture('mpsc-producer.cjs', { role: 'stream', name, id, seed: SEED, maxLength: MAX_LENGTH, ...config })
}

/** A producer child run by commands; resolves with it and its 'opened' report. */
async function openControl(name, id) {
  const handle = spawnFixture('mpsc-producer.cjs', { role: 'control', name, id, seed: SEED, maxLength: MAX_LENGTH })
  const opened = await deadline(handle.next('opened'), HANG_MS, `producer ${id} open`)
  return { handle, opened, pid: opened.pid }
}

async function command(producer, cmd, reply, extra = {}) {
  producer.handle.send({ type: 'cmd', cmd, ...extra })
  return deadline(producer.handle.next(reply), HANG_MS, `${cmd} of producer ${producer.opened.id}`)
}

/** Reads every message waiting in `consumer` into `checker`; returns how many. */
function drainInto(consumer, checker) {
  return consumer.drainRaw((bytes, offset, length, type) => checker.check(bytes, offset, length, type))
}

/** The producer slots `consumer.producers` lists, as { slot: [pid, alive] }. */
function slotsOf(consumer) {
  return Object.fromEntries(consumer.producers.map(({ slot, pid, alive }) => [slot, [pid, alive]]))
}

/** What a stream consumer received against what each producer reported sending. */
function expectEverySent(received, sentReports) {
  const expected = {}
  for (const sent of sentReports) expected[sent.id] = { count: sent.count, checksum: sent.checksum }
  expect(received.producers).toEqual(expected)
  expect(received.total).toBe(sentReports.reduce((sum, sent) => sum + sent.count, 0))
}

describe('many producer processes, one consumer process', () => {
  it('8 producers x 250,000 random-size messages: each exactly once, in its producer order, intact, under its tag', async () => {
    const count = 250_000
    const name = segmentName('mpsc8')
    const consumer = startConsumer({ name, capacity: 1 << 18, maxProducers: 8, mode: 'drainRaw' })
    await awaitChildren(consumer.next('ready'), [consumer], 'consumer start')
    const ids = [0, 1, 2, 3, 4, 5, 6, 7]
    // all open before any writes, so that the first to finish may end the stream (open() after end() fails)
    const producers = ids.map((id) => startStreamProducer(name, id, { count, waitGo: true, finish: id === 0 ? 'end' : 'close' }))
    const handles = [consumer, ...producers]
    await awaitChildren(Promise.all(producers.map((producer) => producer.next('ready'))), handles, 'producers open')
    for (const producer of producers) producer.send({ type: 'go' })
    const [received, ...sent] = await awaitChildren(Promise.all([consumer.next('done'), ...producers.map((producer) => producer.next('done'))]), handles, 'stream')
    for (const handle of handles) await expectExit(handle)

    for (const report of sent) {
      expect(report.count).toBe(count)
      // every way of writing was taken by every producer
      for (const way of ['write', 'tryWrite', 'tryClaim', 'claim', 'shorterCommit', 'aborted']) expect(report.modes[way], `producer ${report.id}: ${way}`).toBeGreaterThan(0)
    }
    expectEverySent(received, sent)
    expect(received.total).toBe(ids.length * count)
    expect(received.losses).toEqual({ lostUncommitted: 0, lostRevoked: 0 })
    expect(received.shared).toBe(true)
    expect(received.endedAfter).toBe(true)
    expect(received.nullAfter).toBe(true)
  }, 180_000)

  it('4 worker-thread producers in one process into a consumer in another', async () => {
    const count = 250_000
    const name = segmentName('mpscthreads')
    const consumer = startConsumer({ name, capacity: 1 << 18, maxProducers: 4, mode: 'tryRead' })
    await awaitChildren(consumer.next('ready'), [consumer], 'consumer start')
    const threads = spawnFixture('mpsc-threads.cjs', { name, threads: 4, firstId: 10, count, seed: SEED, maxLength: MAX_LENGTH })
    const handles = [consumer, threads]
    const { pid } = await awaitChildren(threads.next('ready'), handles, 'threads open')
    // four producer slots, all held by the one process
    expect(inspectSegment(name).producers).toEqual([1, 2, 3, 4].map((slot) => ({ slot, pid, alive: true })))
    threads.send({ type: 'go' })
    const [received, sent] = await awaitChildren(Promise.all([consumer.next('done'), threads.next('done')]), handles, 'stream')
    for (const handle of handles) await expectExit(handle)

    expect(sent.producers.map((report) => report.id)).toEqual([10, 11, 12, 13])
    for (const report of sent.producers) {
      expect(report.count).toBe(count)
      for (const way of ['write', 'tryWrite', 'tryClaim', 'claim', 'shorterCommit', 'aborted']) expect(report.modes[way], `thread ${report.id}: ${way}`).toBeGreaterThan(0)
    }
    expectEverySent(received, sent.producers)
    expect(received.losses).toEqual({ lostUncommitted: 0, lostRevoked: 0 })
    expect(received.endedAfter).toBe(true)
    expect(received.nullAfter).toBe(true)
  }, 180_000)
})

describe('producers SIGKILLed at random points', () => {
  it(`delivers a contiguous prefix of every producer's messages across ${KILLS} deaths; the consumer never stalls`, async () => {
    const LIVE = 4
    /** The longest the consumer may go without a delivery while producers write (it learns of a dead claimer by pidfd, or within 100 ms by polling). */
    const STALL_BOUND_MS = 2000
    const name = segmentName('mpsckill')
    const random = random32(SEED)
    const consumer = startConsumer({ name, capacity: 1 << 16, maxProducers: 16, mode: 'iterate' })
    await awaitChildren(consumer.next('ready'), [consumer], 'consumer start')

    const producers = new Map() // id -> { handle, ready }
    const committed = new Map() // id -> messages it reported committed
    const killed = []
    const all = [consumer]
    let nextId = 0
    const startOne = () => {
      const id = nextId++
      const handle = startStreamProducer(name, id, { count: null, holdClaims: true, progressEvery: 32 })
      const record = { id, handle, ready: false }
      handle.child.on('message', (message) => {
        if (message.type === 'ready') record.ready = true
        else if (message.type === 'progress') committed.set(id, Math.max(committed.get(id) ?? 0, message.committed))
      })
      producers.set(id, record)
      all.push(handle)
    }
    for (let i = 0; i < LIVE; i++) startOne()

    while (killed.length < KILLS) {
      await sleep(5 + (random() % 80))
      const candidates = [...producers.values()].filter((record) => record.ready)
      if (candidates.length === 0) continue
      const victim = candidates[random() % candidates.length]
      victim.handle.child.kill('SIGKILL')
      await expectExit(victim.handle, { code: null, signal: 'SIGKILL' })
      producers.delete(victim.id)
      killed.push(victim.id)
      startOne()
    }

    // the end: every survivor open (open() after end() fails), one ends the stream, the others close
    await awaitChildren(waitUntil(() => [...producers.values()].every((record) => record.ready), 'survivors open', HANG_MS), all, 'survivors open')
    const survivors = [...producers.values()]
    survivors.forEach((record, i) => record.handle.send({ type: 'finish', how: i === 0 ? 'end' : 'close' }))
    const sent = await awaitChildren(Promise.all(survivors.map((record) => record.handle.next('done'))), all, 'survivors finish')
    const received = await awaitChildren(consumer.next('done'), all, 'consumer end')
    for (const record of survivors) await expectExit(record.handle)
    await expectExit(consumer)

    // survivors: everything they wrote, each exactly once and in order (the consumer checks order and contents)
    for (const report of sent) {
      expect(received.producers[report.id], context(`survivor ${report.id}`)).toEqual({ count: report.count, checksum: report.checksum })
    }
    // the killed: a contiguous prefix 0..k (the consumer threw on any gap, repeat or reorder),
    // holding at least every message they reported committed
    let killedDelivered = 0
    for (const id of killed) {
      const delivered = received.producers[id]?.count ?? 0
      killedDelivered += delivered
      expect(delivered, context(`killed producer ${id}: reported ${committed.get(id) ?? 0} committed`)).toBeGreaterThanOrEqual(committed.get(id) ?? 0)
    }
    expect(Object.keys(received.producers).map(Number).every((id) => id < nextId)).toBe(true)
    expect(received.total).toBe(killedDelivered + sent.reduce((sum, report) => sum + report.count, 0))
    // a producer leaves at most one claim uncommitted when it dies
    expect(received.losses.lostUncommitted, context('lostUncommitted')).toBeLessThanOrEqual(KILLS)
    expect(received.losses.lostRevoked, context('lostRevoked')).toBe(0)
    expect(received.maxGapMs, context('longest time without a delivery')).toBeLessThan(STALL_BOUND_MS)
    expect(received.endedAfter).toBe(true)
    expect(received.nullAfter).toBe(true)
    console.log(
      `mpsc kills: ${KILLS} kills, ${nextId} producers, ${received.total} messages (${killedDelivered} from killed producers), ` +
        `lostUncommitted ${received.losses.lostUncommitted}, longest gap ${received.maxGapMs.toFixed(1)} ms (SHMQ_MPSC_SEED=${SEED})`,
    )
  }, Math.max(120_000, KILLS * 1000))
})

describe('producer slots, and one consumer', () => {
  it('maxProducers 2: a third open fails ERR_SHMQ_BUSY until one closes or dies; a dead claimer holds its slot until its claim is skipped', async () => {
    const name = segmentName('mpscmax')
    const consumer = Consumer.create(name, { producers: 'many', maxProducers: 2, capacity: 1 << 16 })
    endpoints.push(consumer)
    const checker = new StreamChecker({ seed: SEED, maxLength: MAX_LENGTH })
    const a = await openControl(name, 1)
    const b = await openControl(name, 2)
    expect(a.opened.ok && b.opened.ok, `${a.handle.describe()}\n${b.handle.describe()}`).toBe(true)
    expect(slotsOf(consumer)).toEqual({ 1: [a.pid, true], 2: [b.pid, true] })

    const third = await openControl(name, 3)
    expect(third.opened.ok).toBe(false)
    expect(third.opened.error.code).toBe('ERR_SHMQ_BUSY')
    expect(third.opened.error.message).toContain('2 producer slots')
    await expectExit(third.handle)
    expect(thrownBy(() => Producer.open(name)).code).toBe('ERR_SHMQ_BUSY')

    // a closes: its slot is free again
    expect((await command(a, 'write', 'written', { count: 20 })).count).toBe(20)
    await command(a, 'close', 'closed')
    await expectExit(a.handle)
    const d = await openControl(name, 4)
    expect(d.opened.ok, d.handle.describe()).toBe(true)
    expect(slotsOf(consumer)).toEqual({ 1: [d.pid, true], 2: [b.pid, true] })

    // b is SIGKILLed while holding no claim: the kernel drops its slot lock, the next open takes the slot
    b.handle.child.kill('SIGKILL')
    await expectExit(b.handle, { code: null, signal: 'SIGKILL' })
    expect(slotsOf(consumer)).toEqual({ 1: [d.pid, true], 2: [b.pid, false] })
    const e = await openControl(name, 5)
    expect(e.opened.ok, e.handle.describe()).toBe(true)
    expect(slotsOf(consumer)).toEqual({ 1: [d.pid, true], 2: [e.pid, true] })
    const f = await openControl(name, 6)
    expect(f.opened.error?.code).toBe('ERR_SHMQ_BUSY')
    await expectExit(f.handle)

    // e dies holding a claim: its slot is not free until the consumer has skipped that claim
    expect((await command(e, 'write', 'written', { count: 5 })).count).toBe(5)
    expect((await command(e, 'claim', 'claimed', { length: 100 })).ok).toBe(true)
    e.handle.child.kill('SIGKILL')
    await expectExit(e.handle, { code: null, signal: 'SIGKILL' })
    const g = await openControl(name, 7)
    expect(g.opened.error?.code).toBe('ERR_SHMQ_BUSY')
    await expectExit(g.handle)
    await waitUntil(() => {
      drainInto(consumer, checker)
      return consumer.losses().lostUncommitted === 1
    }, 'the dead claim skipped')
    expect(consumer.losses()).toEqual({ lostUncommitted: 1, lostRevoked: 0 })
    const h = await openControl(name, 8)
    expect(h.opened.ok, h.handle.describe()).toBe(true)
    expect(slotsOf(consumer)).toEqual({ 1: [d.pid, true], 2: [h.pid, true] })

    await command(h, 'write', 'written', { count: 3 })
    await command(d, 'write', 'written', { count: 3 })
    await command(d, 'end', 'closed')
    await command(h, 'close', 'closed')
    for (;;) {
      const message = await deadline(consumer.read(), HANG_MS, 'read to the end')
      if (message === null) break
      checker.check(message, 0, message.length, consumer.lastType)
    }
    expect(consumer.ended).toBe(true)
    const counts = Object.fromEntries(Object.entries(checker.report().producers).map(([id, { count }]) => [id, count]))
    expect(counts).toEqual({ 1: 20, 4: 3, 5: 5, 8: 3 })
    for (const producer of [d, h]) await expectExit(producer.handle)
  })

  it('a second consumer fails ERR_SHMQ_BUSY, from this process and from another', async () => {
    const name = segmentName('mpsc2c')
    const consumer = startConsumer({ name, capacity: 1 << 16, mode: 'drainRaw' })
    const { pid } = await awaitChildren(consumer.next('ready'), [consumer], 'consumer start')
    const error = thrownBy(() => Consumer.open(name))
    expect(error.code).toBe('ERR_SHMQ_BUSY')
    expect(error.message).toContain(`already has a consumer (pid ${pid})`)
    const other = spawnFixture('try-open.cjs', { name, role: 'consumer' }, { ipc: false })
    const tried = await deadline(other.line(() => true), HANG_MS, 'second consumer in another process')
    expect(tried.ok).toBe(false)
    expect(tried.error.code).toBe('ERR_SHMQ_BUSY')
    await expectExit(other)

    // the first consumer was not disturbed: it reads a stream to its end
    const producer = Producer.open(name)
    const nextLength = lengthsOf(SEED, 1, MAX_LENGTH)
    const scratch = new Uint8Array(MAX_LENGTH + 16)
    for (let seq = 0; seq < 10; seq++) {
      const length = nextLength()
      buildMessage(scratch, SEED, 1, seq, length)
      expect(producer.tryWrite(scratch.subarray(0, length), 1)).toBe(true)
    }
    producer.end()
    const received = await awaitChildren(consumer.next('done'), [consumer], 'consumer end')
    expect(Object.keys(received.producers)).toEqual(['1'])
    expect(received.producers[1].count).toBe(10)
    expect(received.endedAfter).toBe(true)
    await expectExit(consumer)
    // its slot is free once it closed
    const successor = Consumer.open(name)
    endpoints.push(successor)
    expect(successor.ended).toBe(true)
  })

  it('consumer.producers lists the producer children by pid, and a killed one as alive: false until its slot is reused', async () => {
    const name = segmentName('mpscpeers')
    const consumer = Consumer.create(name, { producers: 'many', maxProducers: 4, capacity: 1 << 16 })
    endpoints.push(consumer)
    expect(consumer.producers).toEqual([])
    const children = []
    for (const id of [1, 2, 3]) {
      const child = await openControl(name, id)
      expect(child.opened.ok, child.handle.describe()).toBe(true)
      children.push(child)
    }
    expect(children.map((child) => child.pid)).toEqual(children.map((child) => child.handle.child.pid))
    expect(slotsOf(consumer)).toEqual({ 1: [children[0].pid, true], 2: [children[1].pid, true], 3: [children[2].pid, true] })

    children[1].handle.child.kill('SIGKILL')
    await expectExit(children[1].handle, { code: null, signal: 'SIGKILL' })
    expect(slotsOf(consumer)).toEqual({ 1: [children[0].pid, true], 2: [children[1].pid, false], 3: [children[2].pid, true] })

    // the first free slot is the dead one's: its new producer replaces it in the list
    const successor = await openControl(name, 4)
    expect(successor.opened.ok, successor.handle.describe()).toBe(true)
    expect(slotsOf(consumer)).toEqual({ 1: [children[0].pid, true], 2: [successor.pid, true], 3: [children[2].pid, true] })

    await command(children[0], 'close', 'closed')
    await expectExit(children[0].handle)
    expect(slotsOf(consumer)).toEqual({ 2: [successor.pid, true], 3: [children[2].pid, true] })
    for (const child of [children[2], successor]) {
      await command(child, 'close', 'closed')
      await expectExit(child.handle)
    }
    expect(consumer.producers).toEqual([])
  })
})

describe('claimTimeout', () => {
  it('reads past the claim of a SIGSTOPped producer after claimTimeout; its commit fails ERR_SHMQ_TIMEOUT, and the room comes back', async () => {
    const claimTimeout = 300
    const capacity = 1 << 16
    const name = segmentName('mpscstop')
    const consumer = Consumer.create(name, { producers: 'many', capacity, claimTimeout })
    endpoints.push(consumer)
    const checker = new StreamChecker({ seed: SEED, maxLength: MAX_LENGTH })
    const stopped = await openControl(name, 1)
    const writer = await openControl(name, 2)
    expect(stopped.opened.ok && writer.opened.ok).toBe(true)

    expect((await command(stopped, 'claim', 'claimed', { length: 100 })).ok).toBe(true)
    stopped.handle.child.kill('SIGSTOP')
    expect((await command(writer, 'write', 'written', { count: 10 })).count).toBe(10)

    // the stopped claim is at the head: nothing arrives until claimTimeout has passed
    const waitStarted = performance.now()
    const first = await deadline(consumer.read(), HANG_MS, 'read past the stopped claim')
    const waited = performance.now() - waitStarted
    checker.check(first, 0, first.length, consumer.lastType)
    for (let message = consumer.tryRead(); message !== null; message = consumer.tryRead()) checker.check(message, 0, message.length, consumer.lastType)
    expect(checker.report().producers).toEqual({ 2: { count: 10, checksum: expect.any(Number) } })
    expect(waited).toBeGreaterThanOrEqual(claimTimeout - 1)
    expect(waited).toBeLessThan(claimTimeout + 1700)
    expect(consumer.losses()).toEqual({ lostUncommitted: 0, lostRevoked: 1 })
    // nothing from the revoked claim on is given back while its producer has not acknowledged
    consumer.release()
    expect(u32At(name, HEAD_OFFSET)).toBe(0)
    expect(u32At(name, TAIL_OFFSET)).toBeGreaterThan(0)

    stopped.handle.child.kill('SIGCONT')
    const commit = await command(stopped, 'commit', 'committed')
    expect(commit.error?.code).toBe('ERR_SHMQ_TIMEOUT')
    expect(commit.error?.isShmqError).toBe(true)
    expect(consumer.tryRead()).toBeNull()
    expect(u32At(name, HEAD_OFFSET)).toBe(u32At(name, TAIL_OFFSET))

    // the producer writes on, and it arrives
    expect((await command(stopped, 'write', 'written', { count: 5 })).count).toBe(5)
    expect(drainInto(consumer, checker)).toBe(5)
    expect(checker.report().producers[1].count).toBe(5)

    // a whole ring's worth of room: capacity / 8 empty messages (8-byte frames) fit, no more
    expect((await command(stopped, 'fill', 'filled')).count).toBe(capacity / 8)
    let empties = 0
    consumer.drainRaw((_bytes, _offset, length, type) => {
      if (length !== 0 || type !== 1) throw new Error(`filler message of ${length} bytes, tag ${type}`)
      empties++
    })
    expect(empties).toBe(capacity / 8)

    await command(stopped, 'end', 'closed')
    await command(writer, 'close', 'closed')
    expect(await deadline(consumer.read(), HANG_MS, 'the end')).toBeNull()
    expect(consumer.ended).toBe(true)
    expect(consumer.losses()).toEqual({ lostUncommitted: 0, lostRevoked: 1 })
    for (const producer of [stopped, writer]) await expectExit(producer.handle)
  })
})
