// Fault injection: producers and consumers killed with SIGKILL at random
// points, hundreds of times, on one segment. What must hold (docs/GUARANTEES.md):
//   producer killed: every message it committed is delivered exactly once, in
//     order, intact; nothing of an uncommitted claim is ever seen; the reader
//     is told ERR_SHMQ_PEER_GONE; a successor continues the stream.
//   consumer killed: no loss; a successor resumes at the last released
//     position, so the only duplicates are the messages it had read and not
//     released (read(): the last one; drain(): the batch being drained), first
//     in the successor's stream; a writer waiting for room is told
//     ERR_SHMQ_PEER_GONE and its next write waits for the successor.
// SHMQ_FAULT_ITERATIONS sets the number of deaths per test (default 200),
// SHMQ_FAULT_SEED replays a run (the seed is printed on failure).
import { createHook } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, deadline, seedFrom, start, uniqueName } from './fixtures/fault-harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, ShmqError } = require('../dist/index.js')
const { rng, mix, verify, build } = require('./fixtures/fault-common.cjs')

const ITERATIONS = Number(process.env.SHMQ_FAULT_ITERATIONS ?? 200)
const SEED = seedFrom('SHMQ_FAULT_SEED')
const CAPACITY = 4096
/** A hang detector only: no step of these tests is expected to take more than a fraction of it. */
const HANG_MS = 30_000

const endpoints = []
afterEach(() => {
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  cleanup()
})

function context(what) {
  return `${what} (SHMQ_FAULT_SEED=${SEED} SHMQ_FAULT_ITERATIONS=${ITERATIONS})`
}

/** Spawns the next chain member ahead of time, so its start-up overlaps the current one's life. */
function warm(script) {
  return start(script)
}

function describeExit(result) {
  return `exit ${JSON.stringify({ code: result.code, signal: result.signal })}\nstdout (last lines):\n${result.lines.slice(-20).join('\n')}\nstderr:\n${result.stderr}`
}

/** The first plans go through every way to die once (with a producer before each); then at random. */
const FIRST_PHASES = [40, 10, 25, 55, 80, 1]

function pickProducerPlan(random, iteration) {
  const r = iteration < FIRST_PHASES.length ? FIRST_PHASES[iteration] : random() % 100
  if (r < 5) return { phase: 'open', count: 0 }
  if (r < 20) return { phase: 'claim', count: random() % 5 === 0 ? 0 : random() % 40 }
  if (r < 35) return { phase: 'fill', count: random() % 5 === 0 ? 0 : random() % 40 }
  if (r < 50) return { phase: 'commit', count: 1 + (random() % 40) }
  if (r < 65) {
    const burst = 1 + (random() % 20)
    return { phase: 'burst', count: burst + (random() % 20), burst }
  }
  return { phase: 'external', killAfter: 1 + (random() % 60) }
}

describe('a producer killed at random points of its write path', () => {
  it(`delivers every committed message exactly once, in order, intact, across ${ITERATIONS} deaths`, async () => {
    const name = uniqueName('faultp')
    const consumer = Consumer.create(name, { capacity: CAPACITY, spin: 0 })
    endpoints.push(consumer)
    const maxLength = consumer.maxMessage
    const random = rng(mix(SEED, 1))
    const phases = {}
    let expected = 0 // the next seq the stream must deliver
    let next = warm('fault-producer.cjs')
    for (let iteration = 0; iteration < ITERATIONS; iteration++) {
      const plan = pickProducerPlan(random, iteration)
      phases[plan.phase] = (phases[plan.phase] ?? 0) + 1
      const peer = next
      next = warm('fault-producer.cjs')
      const first = expected
      const where = () => context(`iteration ${iteration}, plan ${JSON.stringify(plan)}, first seq ${first}`)
      peer.send(JSON.stringify({ name, start: first, seed: mix(SEED, iteration), maxLength, plan }))
      let gone = null
      while (gone === null) {
        let message
        try {
          message = await deadline(consumer.read(), HANG_MS, `read() after ${expected - first} messages of ${where()}`)
        } catch (error) {
          if (!(error instanceof ShmqError)) throw error
          gone = error
          break
        }
        if (message === null) throw new Error(`the stream ended, though no producer closed it: ${where()}`)
        let seq
        try {
          seq = verify(message)
        } catch (error) {
          throw new Error(`${error.message}: ${where()}`)
        }
        if (seq !== expected) throw new Error(`got message ${seq}, expected ${expected} (lost, duplicated or reordered): ${where()}`)
        expected++
        if (plan.phase === 'external' && expected - first === plan.killAfter) peer.kill()
      }
      expect(gone.code, where()).toBe('ERR_SHMQ_PEER_GONE')
      const result = await deadline(peer.closed, HANG_MS, `exit of ${where()}`)
      expect({ code: result.code, signal: result.signal }, `${where()}\n${describeExit(result)}`).toEqual({ code: null, signal: 'SIGKILL' })
      // what the producer reported as committed (printed after each commit, before any death)
      const committed = result.lines.filter((line) => line.startsWith('c ')).map((line) => Number(line.slice(2)))
      expect(committed, where()).toEqual(Array.from({ length: committed.length }, (_, i) => first + i))
      expect(committed.length, `${where()}: reported committed messages that never arrived`).toBeLessThanOrEqual(expected - first)
      if (plan.phase === 'external') {
        expect(expected - first, where()).toBeGreaterThanOrEqual(plan.killAfter)
      } else {
        // it died by itself at a known point: exactly the messages it committed arrived
        expect(expected - first, where()).toBe(plan.count)
        expect(committed.length, where()).toBe(plan.count)
      }
      expect(consumer.peer, `${where()}: the dead producer is forgotten once reported`).toBeNull()
    }
    // a last producer ends the stream cleanly: the reader gets the rest, then the end
    next.send(JSON.stringify({ name, start: expected, seed: mix(SEED, ITERATIONS), maxLength, plan: { phase: 'close', count: 25 } }))
    for (;;) {
      const message = await deadline(consumer.read(), HANG_MS, context('read() of the last producer'))
      if (message === null) break
      expect(verify(message), context('last producer')).toBe(expected)
      expected++
    }
    const last = await deadline(next.closed, HANG_MS, context('exit of the last producer'))
    expect({ code: last.code, signal: last.signal }, describeExit(last)).toEqual({ code: 0, signal: null })
    expect(last.lines.filter((line) => line.startsWith('c ')).length).toBe(25)
    expect(consumer.ended).toBe(true)
    console.log(`producer faults: ${ITERATIONS} deaths ${JSON.stringify(phases)}, ${expected} messages delivered`)
  })
})

function pickConsumerPlan(random) {
  const mode = random() % 2 === 0 ? 'read' : 'drain'
  if (random() % 100 < 65) return { mode, self: true, count: random() % 10 === 0 ? 0 : 1 + (random() % 40) }
  return { mode, self: false, killAfter: 1 + (random() % 60) }
}

/**
 * Checks one consumer's report against `allowed` (the seqs it may start at)
 * and returns the seqs its successor may start at.
 *   R s: read and printed; D s: seen in a drain handler; B: everything printed is
 *   released, a drain starts; E n: the drain released everything printed.
 */
function checkConsumer(lines, allowed, plan, where) {
  let first = null
  let last = null
  let state = 'none'
  let batchFirst = null
  for (const line of lines) {
    if (line.startsWith('F ')) throw new Error(`consumer failed: ${line}: ${where}`)
    const [tag, value] = line.split(' ')
    if (tag === 'R' || tag === 'D') {
      const seq = Number(value)
      if (first === null) {
        if (!allowed.has(seq)) throw new Error(`consumer started at ${seq}; it may start only at ${[...allowed]} (lost or unexpected duplicates): ${where}`)
        first = seq
      } else if (seq !== last + 1) {
        throw new Error(`consumer got ${seq} after ${last}: ${where}`)
      }
      last = seq
      if (tag === 'R') state = 'read'
      else if (state !== 'drain') {
        state = 'drain'
        batchFirst = seq
      }
    } else if (tag === 'B' || tag === 'E') {
      state = 'released'
    }
  }
  if (first === null) return { next: allowed, first, last, duplicates: 0 }
  let next
  if (state === 'released') next = [last + 1]
  else if (state === 'read') next = plan.self ? [last] : [last, last + 1]
  else next = plan.self ? [batchFirst] : [batchFirst, last + 1]
  return { next: new Set(next), first, last }
}

describe('a consumer killed at random points of its read path', () => {
  it(`loses nothing and repeats only what was read and not released, across ${ITERATIONS} deaths`, async () => {
    const name = uniqueName('faultc')
    const writer = start('fault-writer.cjs', [JSON.stringify({ name, capacity: CAPACITY, seed: SEED, maxLength: CAPACITY / 2 - 8 })])
    await deadline(writer.line((line) => line === 'ready'), HANG_MS, 'writer start')
    const random = rng(mix(SEED, 2))
    let allowed = new Set([0])
    let duplicates = 0
    let maxDuplicatesAtOnce = 0
    let highest = -1 // the highest seq any consumer printed
    let previousReport = 'none'
    let next = warm('fault-consumer.cjs')
    for (let iteration = 0; iteration < ITERATIONS; iteration++) {
      const plan = pickConsumerPlan(random)
      const peer = next
      next = warm('fault-consumer.cjs')
      const where = context(`iteration ${iteration}, plan ${JSON.stringify(plan)}, may start at ${[...allowed]}`)
      if (!plan.self) {
        let events = 0
        peer.onLine((line) => {
          if ((line.startsWith('R ') || line.startsWith('D ')) && ++events === plan.killAfter) peer.kill()
        })
      }
      peer.send(JSON.stringify({ name, plan }))
      const result = await deadline(peer.closed, HANG_MS, `exit of ${where}`)
      expect({ code: result.code, signal: result.signal }, `${where}\n${describeExit(result)}`).toEqual({ code: null, signal: 'SIGKILL' })
      const report = checkConsumer(result.lines, allowed, plan, `${where}\n${describeExit(result)}\nthe consumer before it: ${previousReport}`)
      previousReport = `plan ${JSON.stringify(plan)}\n${describeExit(result)}`
      if (report.first !== null) {
        // the ones it got again: read by a dead predecessor and not released (at-least-once)
        const again = highest + 1 - report.first
        duplicates += again
        maxDuplicatesAtOnce = Math.max(maxDuplicatesAtOnce, again)
        highest = Math.max(highest, report.last)
      }
      allowed = report.next
    }
    // stop the writer (it closes after the write in progress) and read to the end
    writer.send('stop')
    next.send(JSON.stringify({ name, plan: { mode: 'read', self: false } }))
    const final = await deadline(next.closed, HANG_MS, context('exit of the last consumer'))
    expect({ code: final.code, signal: final.signal }, describeExit(final)).toEqual({ code: 0, signal: null })
    expect(final.lines.at(-1)).toBe('END')
    const wrote = await deadline(writer.closed, HANG_MS, context('exit of the writer'))
    expect({ code: wrote.code, signal: wrote.signal }, describeExit(wrote)).toEqual({ code: 0, signal: null })
    const { wrote: total, peerGone } = JSON.parse(wrote.lines.at(-1))
    const report = checkConsumer(final.lines, allowed, { self: false }, context(`last consumer\n${describeExit(final)}`))
    // the last consumer read everything up to the last message written: nothing was lost
    if (report.first === null) expect([...allowed], context('nothing left for the last consumer')).toContain(total)
    else expect(report.last, context('the last consumer stops short')).toBe(total - 1)
    // the writer was told about dead consumers while it waited for room, never more often than they died
    expect(peerGone, context('ERR_SHMQ_PEER_GONE seen by the writer')).toBeGreaterThan(0)
    expect(peerGone, context('ERR_SHMQ_PEER_GONE seen by the writer')).toBeLessThanOrEqual(ITERATIONS)
    console.log(
      `consumer faults: ${ITERATIONS} deaths, ${total} messages, ${duplicates} re-delivered (at most ${maxDuplicatesAtOnce} at once), writer told ERR_SHMQ_PEER_GONE ${peerGone} times`,
    )
  })
})

/**
 * Counts callbacks of the native async resources named `type`. Enabled at
 * once (the resource may be made long before the callbacks that count); only
 * callbacks between start() and stop() count.
 */
function callbackCounter(type) {
  const ids = new Set()
  let counting = false
  let count = 0
  const hook = createHook({
    init(id, resourceType) {
      if (resourceType === type) ids.add(id)
    },
    before(id) {
      if (counting && ids.has(id)) count++
    },
  })
  hook.enable()
  return {
    start() {
      count = 0
      counting = true
    },
    stop() {
      counting = false
      hook.disable()
      return count
    },
  }
}

describe('a side waiting for the successor of a dead peer', () => {
  // Once ERR_SHMQ_PEER_GONE is reported, the next read()/write() waits for a
  // successor. That wait must sleep: the dead peer's process watch must not
  // keep waking it. Counted: callbacks of the 'shmq:process-watch' resource
  // while a successor process starts (a sleeping wait has none or one).
  it('a reader does not spin on the dead producer while the next one starts', async () => {
    const name = uniqueName('faultw')
    const counter = callbackCounter('shmq:process-watch')
    const consumer = Consumer.create(name, { capacity: CAPACITY, spin: 0 })
    endpoints.push(consumer)
    const dead = start('fault-producer.cjs')
    dead.send(JSON.stringify({ name, start: 0, seed: SEED, maxLength: 100, plan: { phase: 'commit', count: 1 } }))
    expect(verify(await deadline(consumer.read(), HANG_MS, 'first message'))).toBe(0)
    const error = await deadline(consumer.read().then(() => null, (caught) => caught), HANG_MS, 'PEER_GONE')
    expect(error?.code).toBe('ERR_SHMQ_PEER_GONE')
    expect((await dead.closed).signal).toBe('SIGKILL')
    counter.start()
    const successor = start('fault-producer.cjs')
    const waiting = consumer.read()
    successor.send(JSON.stringify({ name, start: 1, seed: SEED, maxLength: 100, plan: { phase: 'close', count: 1 } }))
    const message = await deadline(waiting, HANG_MS, 'message of the successor')
    const wakeUps = counter.stop()
    expect(verify(message)).toBe(1)
    expect((await successor.closed).code).toBe(0)
    expect(wakeUps, 'process-watch callbacks while waiting for the successor (the dead peer keeps waking the reader: busy loop)').toBeLessThanOrEqual(2)
  })

  it('a writer does not spin on the dead consumer while the next one starts', async () => {
    const name = uniqueName('faultw')
    const counter = callbackCounter('shmq:process-watch')
    const producer = Producer.create(name, { capacity: 1024, spin: 0 })
    endpoints.push(producer)
    let seq = 0
    while (producer.tryWrite(build(seq, 100))) seq++
    // a consumer that opens and reads nothing; the writer waits for room, following it; it is killed
    const dead = start('fault-consumer.cjs')
    dead.send(JSON.stringify({ name, plan: { hold: true } }))
    await deadline(dead.line((line) => line === 'O'), HANG_MS, 'consumer open')
    const message = build(seq, 100)
    const gone = producer.write(message).then(() => null, (caught) => caught)
    dead.kill()
    const error = await deadline(gone, HANG_MS, 'PEER_GONE')
    expect(error?.code).toBe('ERR_SHMQ_PEER_GONE')
    expect((await dead.closed).signal).toBe('SIGKILL')
    counter.start()
    const successor = start('fault-consumer.cjs')
    const written = producer.write(message)
    // it reads 0 and 1 (releasing 0: room for one more), then dies
    successor.send(JSON.stringify({ name, plan: { mode: 'read', self: true, count: 2 } }))
    await deadline(written, HANG_MS, 'write after the successor made room')
    const wakeUps = counter.stop()
    expect((await successor.closed).lines).toEqual(['O', 'R 0', 'R 1'])
    expect(wakeUps, 'process-watch callbacks while waiting for the successor (the dead peer keeps waking the writer: busy loop)').toBeLessThanOrEqual(2)
  })
})

describe('a peer that attaches and dies without a word', () => {
  // The waiting side parked before the peer existed (nobody in the peer slot),
  // so it follows no process; the peer then attaches (Producer.open /
  // Consumer.open) and is killed before publishing anything. The waiting side
  // must still be told ERR_SHMQ_PEER_GONE (docs: read() "rejects with
  // ERR_SHMQ_PEER_GONE when the producer died and every message it published
  // was read"), not wait forever.
  const ATTACH_HANG_MS = 5_000

  it('a reader parked on a new segment is told ERR_SHMQ_PEER_GONE when a producer opens it and dies', async () => {
    const name = uniqueName('faulta')
    const consumer = Consumer.create(name, { capacity: CAPACITY, spin: 0 })
    endpoints.push(consumer)
    const waiting = consumer.read().then(
      (message) => ({ message }),
      (error) => ({ error }),
    )
    const producer = start('fault-producer.cjs')
    producer.send(JSON.stringify({ name, start: 0, seed: SEED, maxLength: 100, plan: { phase: 'open', count: 0 } }))
    expect((await producer.closed).signal).toBe('SIGKILL')
    // dead, or already reported and reaped by the woken side
    expect([null, JSON.stringify({ pid: producer.child.pid, alive: false })]).toContain(consumer.peer === null ? null : JSON.stringify(consumer.peer))
    const outcome = await deadline(waiting, ATTACH_HANG_MS, 'read() of a reader whose producer attached and died without writing')
    expect(outcome.error?.code).toBe('ERR_SHMQ_PEER_GONE')
  })

  it('a writer waiting for room on a new segment is told ERR_SHMQ_PEER_GONE when a consumer opens it and dies', async () => {
    const name = uniqueName('faulta')
    const producer = Producer.create(name, { capacity: 1024, spin: 0 })
    endpoints.push(producer)
    let seq = 0
    while (producer.tryWrite(build(seq, 100))) seq++
    const waiting = producer.write(build(seq, 100)).then(
      () => ({}),
      (error) => ({ error }),
    )
    const consumer = start('fault-consumer.cjs')
    consumer.send(JSON.stringify({ name, plan: { mode: 'read', self: true, count: 0 } }))
    expect((await consumer.closed).signal).toBe('SIGKILL')
    // dead, or already reported and reaped by the woken side
    expect([null, JSON.stringify({ pid: consumer.child.pid, alive: false })]).toContain(producer.peer === null ? null : JSON.stringify(producer.peer))
    const outcome = await deadline(waiting, ATTACH_HANG_MS, 'write() of a writer whose consumer attached and died without reading')
    expect(outcome.error?.code).toBe('ERR_SHMQ_PEER_GONE')
  })
})
