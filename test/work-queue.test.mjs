// Work queues (one producer, competing worker processes): every message
// reaches exactly one worker; workers SIGKILLed at random moments lose nothing,
// and the only duplicates are messages a dead worker had not released, each
// marked redelivered. SHMQ_WQ_KILLS sets the number of worker deaths (default
// 20; scripts/soak.mjs runs 1000), SHMQ_WQ_SEED replays a run.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, exitOf, spawnFixture, testSegments, thrownBy, random32 } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, Publisher, inspectSegment } = require('../dist/index.js')

const SEED = Number(process.env.SHMQ_WQ_SEED ?? ((Math.random() * 0x1_0000_0000) >>> 0 || 1))
const KILLS = Number(process.env.SHMQ_WQ_KILLS ?? 20)
const MAX_LENGTH = 1024
const HANG_MS = 120_000

const { endpoints, segmentName } = testSegments(afterEach)
const context = (what) => `${what} (SHMQ_WQ_SEED=${SEED})`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A private directory for the workers' record files, removed after the test. */
function recordDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-wq-'))
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Every (seq, redelivered) a worker recorded, from its file. */
function records(file) {
  const bytes = fs.readFileSync(file)
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2)
  return Array.from(words, (word) => ({ seq: word & 0x7fff_ffff, redelivered: word >>> 31 === 1 }))
}

async function ready(handle) {
  return deadline(handle.next('ready'), HANG_MS, context(`${handle.script} ready`))
}

async function done(handle) {
  const report = await deadline(handle.next('done'), HANG_MS, context(`${handle.script} done`))
  expect(await exitOf(handle, HANG_MS), handle.describe()).toEqual({ code: 0, signal: null })
  return report
}

function startProducer(name, config) {
  return spawnFixture('work-queue.cjs', { role: 'producer', name, seed: SEED, maxLength: MAX_LENGTH, ...config })
}

function startWorker(name, file, config = {}) {
  return spawnFixture('work-queue.cjs', { role: 'worker', name, file, seed: SEED, maxLength: MAX_LENGTH, ...config })
}

/**
 * Checks the records of every worker: each seq in [0, count) recorded at least
 * once; a seq recorded twice only if one copy is a dead worker's and every
 * other copy is marked redelivered. Returns counts.
 */
function checkUnion(files, deadFiles, count) {
  const byDead = new Uint8Array(count)
  const unmarked = new Uint8Array(count)
  const copies = new Uint32Array(count)
  for (const file of files) {
    const dead = deadFiles.has(file)
    for (const { seq, redelivered } of records(file)) {
      if (seq >= count) throw new Error(context(`${file}: seq ${seq} was never written`))
      copies[seq]++
      if (dead) byDead[seq]++
      if (!redelivered) unmarked[seq]++
    }
  }
  let missing = 0
  let duplicated = 0
  let firstProblem = null
  for (let seq = 0; seq < count; seq++) {
    if (copies[seq] === 0) {
      missing++
      firstProblem ??= `seq ${seq} never arrived`
    } else if (copies[seq] > 1) {
      duplicated++
      // the extra copies: a dead worker had it, every later copy is marked, and at most one copy is unmarked
      if (byDead[seq] === 0 || unmarked[seq] > 1) firstProblem ??= `seq ${seq}: ${copies[seq]} copies, ${byDead[seq]} by dead workers, ${unmarked[seq]} unmarked`
    }
  }
  return { missing, duplicated, firstProblem }
}

describe('work queue', () => {
  it('1 producer, 4 worker processes (drainRaw and for await), 1,000,000 messages: each exactly once, intact', async () => {
    const name = segmentName('wq-four')
    const dir = recordDir()
    const count = 1_000_000
    const producer = startProducer(name, { capacity: 1 << 16, count })
    await ready(producer)
    const files = [0, 1, 2, 3].map((i) => path.join(dir, `worker-${i}`))
    const workers = files.map((file, i) => startWorker(name, file, { mode: i % 2 === 0 ? 'drainRaw' : 'iterate' }))
    await Promise.all(workers.map(ready))
    producer.send({ type: 'go' })
    const written = await deadline(producer.next('written'), HANG_MS, context('written'))
    expect(written.workers).toBe(4)
    producer.send({ type: 'finish' })
    const produced = await done(producer)
    expect(produced).toMatchObject({ redelivered: 0, handedOn: 0 })
    // stats(): every message dispatched once, spread over the 4 live workers
    expect(produced.stats).toMatchObject({ kind: 'work queue', dispatched: count, redelivered: 0, handedOn: 0, backlog: 0 })
    expect(produced.stats.workers.map((worker) => worker.alive)).toEqual([true, true, true, true])
    expect(produced.stats.workers.reduce((total, worker) => total + worker.dispatched, 0)).toBe(count)
    const reports = await Promise.all(workers.map(done))
    expect(reports.reduce((total, r) => total + r.received, 0)).toBe(count)
    for (const report of reports) {
      expect(report.redelivered).toBe(0)
      // every worker took part
      expect(report.received).toBeGreaterThan(0)
    }
    const union = checkUnion(files, new Set(), count)
    expect(union, context('union')).toEqual({ missing: 0, duplicated: 0, firstProblem: null })
    console.log(`work queue: ${count} messages to 4 workers: ${reports.map((r) => r.received).join(', ')}`)
  }, 300_000)

  it(`${KILLS} worker SIGKILLs at random moments (each replaced): nothing lost, the only duplicates are dead workers' unreleased messages, marked redelivered`, async () => {
    const name = segmentName('wq-kill')
    const dir = recordDir()
    // paced at about 200 messages a millisecond, so that the kills (one every 100 ms or so) land mid-stream
    const count = 100_000 + KILLS * 20_000
    const random = random32(SEED)
    const producer = startProducer(name, { capacity: 1 << 14, count, maxConsumers: 8, pauseEvery: 1000, pauseMs: 5 })
    await ready(producer)
    let spawned = 0
    const live = []
    const files = []
    const deadFiles = new Set()
    const spawnWorker = () => {
      const file = path.join(dir, `worker-${spawned++}`)
      files.push(file)
      // slow now and then, so that kills find messages in flight and rings holding some
      const handle = startWorker(name, file, { mode: spawned % 2 === 0 ? 'drainRaw' : 'iterate', slowEvery: spawned % 3 === 0 ? 200 : 0 })
      live.push({ handle, file })
      return handle
    }
    await Promise.all([0, 1, 2, 3].map(() => ready(spawnWorker())))
    producer.send({ type: 'go' })
    for (let kill = 0; kill < KILLS; kill++) {
      await sleep(10 + (random() % 60))
      const victim = live.splice(random() % live.length, 1)[0]
      victim.handle.child.kill('SIGKILL')
      deadFiles.add(victim.file)
      expect(await exitOf(victim.handle, HANG_MS)).toEqual({ code: null, signal: 'SIGKILL' })
      await ready(spawnWorker())
    }
    await deadline(producer.next('written'), HANG_MS, context('written'))
    // the producer looks for dead workers every 100 ms: let it take back the last one's messages
    await sleep(400)
    producer.send({ type: 'finish' })
    const produced = await done(producer)
    const reports = await Promise.all(live.map(({ handle }) => done(handle)))
    const union = checkUnion(files, deadFiles, count)
    expect(union.firstProblem, context('union')).toBeNull()
    expect(union.missing).toBe(0)
    // what arrived marked is what the producer handed on marked
    const marked = reports.reduce((total, r) => total + r.redelivered, 0)
    expect(marked).toBeLessThanOrEqual(produced.redelivered)
    expect(marked).toBeGreaterThan(0)
    expect(produced.redelivered).toBeGreaterThan(0)
    // stats() totals include the rings of dead workers: each message once, plus each redelivery again
    expect(produced.stats.dispatched).toBe(count + produced.redelivered + produced.handedOn)
    expect(produced.stats.workers).toHaveLength(live.length)
    console.log(`work queue, ${KILLS} kills: ${count} messages, ${produced.redelivered} handed on marked redelivered, ${union.duplicated} delivered twice`)
    // no ring of a dead worker is left behind
    const rings = fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(`${name}.w`))
    expect(rings, JSON.stringify(rings.map((ring) => inspectSegment(ring)))).toEqual([])
  }, Math.max(300_000, KILLS * 2_000))

  it('a stopped worker holds back only what its ring holds: the others get the rest, and it reads its share when continued', async () => {
    const name = segmentName('wq-slow')
    const dir = recordDir()
    const count = 200_000
    const capacity = 1 << 14
    const producer = startProducer(name, { capacity, count })
    await ready(producer)
    const files = [path.join(dir, 'stopped'), path.join(dir, 'running')]
    const [stopped, running] = files.map((file) => startWorker(name, file, { mode: 'drainRaw' }))
    await Promise.all([ready(stopped), ready(running)])
    stopped.child.kill('SIGSTOP')
    producer.send({ type: 'go' })
    // the producer writes everything although one of its two workers does not move
    const written = await deadline(producer.next('written'), HANG_MS, context('written'))
    expect(written.workers).toBe(2)
    stopped.child.kill('SIGCONT')
    producer.send({ type: 'finish' })
    await done(producer)
    const [held, rest] = [await done(stopped), await done(running)]
    // at most a ring of frames of 16 bytes or more
    expect(held.received).toBeLessThanOrEqual(capacity / 16)
    expect(held.received + rest.received).toBe(count)
    expect(checkUnion(files, new Set(), count)).toEqual({ missing: 0, duplicated: 0, firstProblem: null })
  }, 300_000)

  it('an idle producer hands a dead worker\'s messages on once another worker has room (not only in the pass that found the death)', async () => {
    const name = segmentName('wq-idle')
    const dir = recordDir()
    const { lengthOf, buildMessage } = require('./fixtures/broadcast-stream.cjs')
    // messages of 8 to 300 bytes (lengthOf): frames of at most 312
    const capacity = 1 << 14
    const maxLength = 300
    const producer = Producer.create(name, { consumers: 'many', capacity, maxConsumers: 2 })
    endpoints.push(producer)
    const files = [path.join(dir, 'dies'), path.join(dir, 'lives')]
    const scratch = new Uint8Array(maxLength + 8)
    let count = 0
    /** Writes messages count, count + 1, ... until no worker's ring has room. */
    const writeUntilFull = () => {
      for (;;) {
        const length = lengthOf(SEED, count, maxLength)
        buildMessage(scratch, SEED, count, length)
        if (!producer.tryWrite(scratch.subarray(0, length))) return
        count++
      }
    }
    /** A worker that joins, then stops (SIGSTOP): what it is given stays in its ring, unreleased. */
    const stoppedWorker = async (file, workers) => {
      const worker = startWorker(name, file, { mode: 'drainRaw', maxLength })
      await ready(worker)
      worker.child.kill('SIGSTOP')
      while (producer.consumers < workers) await sleep(5)
      return worker
    }
    // each ring filled in turn: the second one has no room for the first one's messages
    const dies = await stoppedWorker(files[0], 1)
    writeUntilFull()
    const lives = await stoppedWorker(files[1], 2)
    writeUntilFull()
    expect(count).toBeGreaterThan(capacity / 312)
    dies.child.kill('SIGKILL')
    expect(await exitOf(dies, HANG_MS)).toEqual({ code: null, signal: 'SIGKILL' })
    const since = Date.now()
    while (producer.consumers > 1) {
      await sleep(10)
      expect(Date.now() - since).toBeLessThan(10_000)
    }
    expect(producer.backlog, 'taken back, waiting for room').toBeGreaterThan(0)
    // the producer writes nothing more; the live worker makes room as it reads
    lives.child.kill('SIGCONT')
    while (producer.backlog > 0) {
      await sleep(10)
      expect(Date.now() - since, `${producer.backlog} messages still held back`).toBeLessThan(10_000)
    }
    producer.close()
    const report = await done(lives)
    expect(report.received).toBe(count)
    expect(checkUnion(files, new Set([files[0]]), count)).toMatchObject({ missing: 0, firstProblem: null })
  })

  it('a worker that closes hands what it was never given to the others, unmarked; refusals name the right API', async () => {
    const name = segmentName('wq-api')
    const producer = Producer.create(name, { consumers: 'many', capacity: 4096, maxConsumers: 2 })
    endpoints.push(producer)
    const first = Consumer.open(name)
    const second = Consumer.open(name)
    endpoints.push(first, second)
    expect(thrownBy(() => Consumer.open(name, { timeout: 0 })).code).toBe('ERR_SHMQ_BUSY')
    const message = (n) => Uint8Array.of(n & 0xff, n >> 8)
    let written = 0
    // more than one worker's ring holds (4096 bytes: 256 frames of 16), so both get some
    while (written < 400 && producer.tryWrite(message(written))) written++
    expect(written).toBe(400)
    expect(producer.consumers).toBe(2)
    const got = []
    first.drainRaw((bytes, offset) => got.push(bytes[offset] | (bytes[offset + 1] << 8)))
    // second leaves with its ring unread: the producer hands those on to first, unmarked
    second.close()
    await deadline(
      (async () => {
        while (got.length < 400) {
          const view = await first.read()
          got.push(view[0] | (view[1] << 8))
          expect(first.lastRedelivered).toBe(false)
        }
      })(),
      HANG_MS,
      'handed on',
    )
    expect(new Set(got).size).toBe(400)
    expect(first.redelivered).toBe(0)
    expect(producer.handedOn).toBeGreaterThan(0)
    const report = inspectSegment(name)
    expect(report).toMatchObject({ kind: 'work queue', consumer: { pid: process.pid, alive: true }, maxProducers: 2 })
    expect(report.producers.map((worker) => worker.alive)).toEqual([true])
    const listed = execFileSync(process.execPath, [new URL('../dist/cli.js', import.meta.url).pathname, 'ls', '--prefix', name], { encoding: 'utf8' })
    expect(listed).toMatch(new RegExp(`${name}\\s+work queue\\s.*${process.pid} \\(alive\\)\\s+1/2 workers \\(1 alive\\)`))
    expect(thrownBy(() => Producer.open(name, { timeout: 0 })).code).toBe('ERR_SHMQ_KIND')
    expect(thrownBy(() => Publisher.create(segmentName('wq-pub'), { consumers: 'many' })).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    expect(thrownBy(() => Producer.create(segmentName('wq-bad'), { consumers: 'several' })).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    expect(thrownBy(() => Producer.create(segmentName('wq-bad'), { consumers: 'many', maxConsumers: 0 })).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
  })

  it('refuses bad messages with no worker attached; a worker that leaves before its ring was opened loses nothing; claim/commit/abort; no producer: ERR_SHMQ_PEER_GONE', async () => {
    const name = segmentName('wq-edges')
    const producer = Producer.create(name, { consumers: 'many', capacity: 4096 })
    expect(thrownBy(() => producer.tryWrite('text')).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    expect(thrownBy(() => producer.tryWrite(new Uint8Array(producer.maxMessage + 1))).code).toBe('ERR_SHMQ_TOO_LARGE')
    expect(thrownBy(() => producer.tryWrite(new Uint8Array(1), 1 << 16)).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    // no worker yet: nothing written
    expect(producer.tryWrite(Uint8Array.of(1))).toBe(false)
    // one joins and leaves before the producer read its announcement; another stays
    Consumer.open(name).close()
    const stays = Consumer.open(name)
    endpoints.push(stays)
    const got = []
    for (let n = 0; n < 50; n++) await deadline(producer.write(Uint8Array.of(n)), HANG_MS, `write ${n}`)
    await deadline(
      (async () => {
        while (got.length < 50) got.push((await stays.read())[0])
      })(),
      HANG_MS,
      'all 50 to the worker that stayed',
    )
    expect(got.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, n) => n))
    // claims: filled in place in one worker's ring, then committed (or aborted: nothing arrives)
    const view = await deadline(producer.claim(3), HANG_MS, 'claim')
    view.set([7, 8, 9])
    expect(thrownBy(() => producer.tryWrite(Uint8Array.of(1))).code).toBe('ERR_SHMQ_PENDING')
    producer.commit(2, 5)
    const claimed = await deadline(stays.read(), HANG_MS, 'claimed message')
    expect([Array.from(claimed), stays.lastType]).toEqual([[7, 8], 5])
    producer.tryClaim(4).fill(1)
    producer.abort()
    expect(producer.tryWrite(Uint8Array.of(42))).toBe(true)
    expect(Array.from(await deadline(stays.read(), HANG_MS, 'after abort'))).toEqual([42])
    expect(thrownBy(() => producer.commit()).code).toBe('ERR_SHMQ_PENDING')
    expect(thrownBy(() => producer.tryClaim(producer.maxMessage + 1)).code).toBe('ERR_SHMQ_TOO_LARGE')
    producer.close()
    // the queue has no producer now
    expect(thrownBy(() => Consumer.open(name, { timeout: 0 })).code).toBe('ERR_SHMQ_PEER_GONE')
    expect(fs.readdirSync('/dev/shm').filter((entry) => entry.startsWith(`${name}.w`) && !entry.includes(stays.name.slice(name.length)))).toEqual([])
  })
})
