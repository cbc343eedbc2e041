// A C peer written from docs/LAYOUT.md alone (test/fixtures/c-peer.c) against
// shmq, both ring kinds, both directions: every message arrives once, in
// order, with the right bytes and tag, and both sides agree on the count and
// checksum of what was sent. Some cases make one side park (spin 0, or the
// other side pausing) so that each side's wake-ups of the other are used, by
// futex and by FIFO.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { Producer, Consumer, unlink } = require(root)

const CAPACITY = 64 * 1024
const MAX_MESSAGE = CAPACITY / 2 - 8
const SPSC_COUNT = 200_000
const MPSC_COUNT = 100_000

// The Node half of the peer, written to a file so that child processes run the
// same code: the message generator (the same functions as c-peer.c), a
// verifying reader, a producer, and a child-process producer mode.
function nodePeer(module, require, process) {
  function mix32(x) {
    x ^= x >>> 16
    x = Math.imul(x, 0x7feb352d)
    x ^= x >>> 15
    x = Math.imul(x, 0x846ca68b)
    x ^= x >>> 16
    return x >>> 0
  }
  function msgHash(seed, id, seq) {
    return mix32(Math.imul(seed, 0x9e3779b1) ^ mix32(Math.imul(id, 0x85ebca6b) ^ mix32((seq + 0x632be5ab) >>> 0)))
  }
  // 10 % empty, 60 % 1..64, 25 % 65..512, 4.9 % 513..8704, 0.1 % maxMessage
  function msgLen(h, maxMessage) {
    const c = h % 1000, r = h >>> 10
    let len
    if (c < 100) len = 0
    else if (c < 700) len = 1 + (r % 64)
    else if (c < 950) len = 65 + (r % 448)
    else if (c < 999) len = 513 + (r % 8192)
    else len = maxMessage
    return Math.min(len, maxMessage)
  }
  function fnv1a(bytes, offset, n) {
    let h = 0x811c9dc5
    for (let i = 0; i < n; i++) {
      h ^= bytes[offset + i]
      h = Math.imul(h, 0x01000193)
    }
    return h >>> 0
  }
  // seq (u32 LE), id (u32 LE), xorshift bytes, and from 16 bytes on the
  // FNV-1a of the rest as the last 4 bytes
  function msgBody(h, id, seq, dst, len) {
    const head = [seq & 0xff, (seq >>> 8) & 0xff, (seq >>> 16) & 0xff, seq >>> 24,
      id & 0xff, (id >>> 8) & 0xff, (id >>> 16) & 0xff, id >>> 24]
    for (let j = 0; j < len && j < 8; j++) dst[j] = head[j]
    let s = h | 1
    for (let j = 8; j < len; j++) {
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      dst[j] = s & 0xff
    }
    if (len >= 16) {
      const f = fnv1a(dst, 0, len - 4)
      dst[len - 4] = f & 0xff
      dst[len - 3] = (f >>> 8) & 0xff
      dst[len - 2] = (f >>> 16) & 0xff
      dst[len - 1] = f >>> 24
    }
  }
  // the stream checksum both sides fold every message into
  function fold(acc, fnv, len, tag) {
    return (Math.imul(acc ^ fnv, 0x01000193) + len + tag * 65536) >>> 0
  }

  // Per producer id (SPSC: id 0, tag = seq & 0xffff; MPSC: tag = id): order,
  // length, tag and bytes of every message.
  class Verifier {
    constructor({ seed, maxMessage, spsc, ids }) {
      this.seed = seed
      this.maxMessage = maxMessage
      this.spsc = spsc
      this.counts = new Map(ids.map((id) => [id, 0]))
      this.checksums = new Map(ids.map((id) => [id, 0]))
      this.bad = 0
      this.badSamples = []
      this.scratch = new Uint8Array(maxMessage + 16)
    }
    check(bytes, offset, length, type) {
      const id = this.spsc ? 0 : type
      if (!this.counts.has(id)) return this.fail(`tag ${type} names no producer`)
      const seq = this.counts.get(id)
      this.counts.set(id, seq + 1)
      const h = msgHash(this.seed, id, seq)
      const want = msgLen(h, this.maxMessage)
      let same = length === want && (!this.spsc || type === (seq & 0xffff))
      if (same) msgBody(h, id, seq, this.scratch, length)
      let f = 0x811c9dc5
      for (let i = 0; i < length; i++) {
        const b = bytes[offset + i]
        if (b !== this.scratch[i]) same = false
        f ^= b
        f = Math.imul(f, 0x01000193)
      }
      this.checksums.set(id, fold(this.checksums.get(id), f >>> 0, length, type))
      if (!same) this.fail(`producer ${id} message ${seq}: ${length} bytes (want ${want}), tag ${type}, or other bytes`)
    }
    fail(why) {
      this.bad++
      if (this.badSamples.length < 5) this.badSamples.push(why)
    }
    summary() {
      return { bad: this.bad, badSamples: this.badSamples, counts: Object.fromEntries(this.counts), checksums: Object.fromEntries(this.checksums) }
    }
  }

  // COUNT messages of producer `id`, mixing tryWrite/write, claim + a shorter
  // commit, and claims that are aborted (never delivered).
  async function produce(producer, { count, seed, id, spsc, maxMessage }) {
    const scratch = new Uint8Array(maxMessage + 16)
    let checksum = 0, shorter = 0, aborted = 0
    for (let seq = 0; seq < count; seq++) {
      const h = msgHash(seed, id, seq)
      const len = msgLen(h, maxMessage)
      const tag = spsc ? seq & 0xffff : id
      const action = mix32((h ^ 0x5bd1e995) >>> 0) % 100
      if (action < 3 && maxMessage > 0) {
        const view = await producer.claim(1 + (mix32(h) % Math.min(maxMessage, 2048)))
        view.fill(0xa5)
        producer.abort()
        aborted++
      }
      msgBody(h, id, seq, scratch, len)
      const body = scratch.subarray(0, len)
      if (action >= 3 && action < 13) {
        const claimed = Math.min(len + 1 + ((h >>> 7) % 64), maxMessage)
        const view = await producer.claim(claimed)
        view.set(body)
        producer.commit(len, tag)
        if (((claimed + 15) & ~7) !== ((len + 15) & ~7)) shorter++
      } else if (!producer.tryWrite(body, tag)) {
        await producer.write(body, tag)
      }
      checksum = fold(checksum, fnv1a(body, 0, len), len, tag)
    }
    return { count, checksum, shorter, aborted }
  }

  module.exports = { Verifier, produce }

  if (require.main === module) {
    // node node-peer.cjs mpsc-produce NAME COUNT SEED ID SPIN MAX_MESSAGE
    const { Producer } = require(process.env.CPEER_SHMQ)
    const [mode, name, count, seed, id, spin, maxMessage] = process.argv.slice(2)
    if (mode !== 'mpsc-produce') throw new Error(`unknown mode ${mode}`)
    ;(async () => {
      const producer = Producer.open(name, { timeout: 10_000, spin: Number(spin) })
      const args = { count: Number(count), seed: Number(seed), id: Number(id), spsc: false, maxMessage: Number(maxMessage) }
      const result = await produce(producer, args)
      producer.close()
      process.stdout.write(JSON.stringify({ id: args.id, ...result }) + '\n')
    })().catch((err) => {
      console.error(err)
      process.exit(1)
    })
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-c-peer-'))
const cPeer = path.join(tmp, 'c-peer')
const nodePeerFile = path.join(tmp, 'node-peer.cjs')
let peer
const names = []

beforeAll(() => {
  const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8' })
  if (gcc.error) throw new Error(`gcc is needed to compile test/fixtures/c-peer.c and was not found: ${gcc.error.message}`)
  const cc = spawnSync('gcc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', cPeer,
    path.join(root, 'test/fixtures/c-peer.c')], { encoding: 'utf8' })
  if (cc.status !== 0) throw new Error(`gcc failed on test/fixtures/c-peer.c:\n${cc.stderr}`)
  fs.writeFileSync(nodePeerFile, `'use strict'\n;(${nodePeer.toString()})(module, require, process)\n`)
  peer = require(nodePeerFile)
})

afterAll(() => {
  for (const name of names) {
    try { unlink(name) } catch {}
  }
  fs.rmSync(tmp, { recursive: true, force: true })
})

function segmentName() {
  const name = `cpeer-${process.pid}-${names.length}`
  names.push(name)
  return name
}

// A child process and a promise of how it ended and what it printed.
function start(command, args, env = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CPEER_SHMQ: root, ...env } })
  let stdout = '', stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  const label = `${path.basename(command)} ${args.join(' ')}`
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ label, code, signal, stdout, stderr }))
  })
  return { child, done, label }
}

const startC = (args, env) => start(cPeer, args, env)
const startNodeProducer = (name, count, seed, id, spin, env) =>
  start(process.execPath, [nodePeerFile, 'mpsc-produce', name, String(count), String(seed), String(id), String(spin), String(MAX_MESSAGE)], env)

// Asserts a clean exit (code 0, no signal) and returns the JSON line it printed.
function report(result) {
  const why = `${result.label}: code ${result.code}, signal ${result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  expect(result.signal, why).toBe(null)
  expect(result.code, why).toBe(0)
  const line = result.stdout.trim().split('\n').pop()
  return JSON.parse(line)
}

// Runs the Node side while the children run. A child that fails first, or a
// Node side that throws, fails the test with every child's output (a consumer
// of a 'many' segment is never told that a producer died: it would wait).
async function whileRunning(children, run) {
  const failed = new Promise((resolve) => {
    for (const c of children) c.done.then((r) => { if (r.code !== 0 || r.signal !== null) resolve(r) })
  })
  const running = run()
  running.catch(() => {}) // still pending if a child failed first
  try {
    const child = await Promise.race([running.then(() => null), failed])
    if (child) throw new Error(`${child.label} failed while the Node side was running`)
  } catch (err) {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
    const results = await Promise.all(children.map((c) => c.done))
    err.message += '\n' + results.map((r) => `${r.label}: code ${r.code}, signal ${r.signal}, stderr: ${r.stderr}`).join('\n')
    throw err
  }
  return Promise.all(children.map((c) => c.done))
}

// Reads until done() or the end of the stream: drainRaw batches, then one
// read() (event loop) or readSync() (futex) when nothing is waiting.
async function readAll(consumer, verifier, { sync = false, done = () => false } = {}) {
  const handler = (bytes, offset, length, type) => verifier.check(bytes, offset, length, type)
  const deadline = Date.now() + 90_000
  while (!done()) {
    if (consumer.drainRaw(handler) > 0) continue
    const view = sync ? consumer.readSync(100) : await consumer.read()
    if (view === null) {
      if (!sync || consumer.ended) return
      if (Date.now() > deadline) throw new Error(`readSync: nothing for 90 s; ${JSON.stringify(verifier.summary())}`)
      continue
    }
    verifier.check(view, 0, view.length, consumer.lastType)
  }
}

const sum = (reports, key) => reports.reduce((n, r) => n + r[key], 0)

describe('C SPSC producer -> Node consumer', () => {
  it.each([
    { what: 'both sides spin first (default)', spin: 20, cEnv: {} },
    { what: 'Node parks on the event loop (spin 0): the C producer wakes it through its FIFO', spin: 0, cEnv: { CPEER_PAUSE_EVERY: '2000' }, nodeParks: 'fifo' },
    { what: 'Node parks in readSync (spin 0): the C producer wakes it by futex', spin: 0, sync: true, cEnv: { CPEER_PAUSE_EVERY: '2000' }, nodeParks: 'futex' },
    { what: 'the C producer parks on its futex (spin 0): Node wakes it', spin: 20, cEnv: { CPEER_SPIN_US: '0', CPEER_PARK: 'futex' }, cParks: true },
    { what: 'the C producer parks on its FIFO (spin 0): Node wakes it', spin: 20, cEnv: { CPEER_SPIN_US: '0', CPEER_PARK: 'fifo' }, cParks: true },
  ])('$what', async ({ spin, sync, cEnv, nodeParks, cParks }) => {
    const name = segmentName()
    const seed = 1000 + names.length
    const consumer = Consumer.create(name, { capacity: CAPACITY, maxMessage: MAX_MESSAGE, spin })
    const verifier = new peer.Verifier({ seed, maxMessage: MAX_MESSAGE, spsc: true, ids: [0] })
    const producer = startC(['spsc-produce', name, String(SPSC_COUNT), String(seed)], cEnv)
    const [result] = await whileRunning([producer], () => readAll(consumer, verifier, { sync }))
    expect(consumer.ended).toBe(true)
    consumer.close()
    const c = report(result)
    expect(verifier.summary()).toEqual({ bad: 0, badSamples: [], counts: { 0: SPSC_COUNT }, checksums: { 0: c.checksum } })
    expect(c.count).toBe(SPSC_COUNT)
    expect(c.paddings).toBeGreaterThan(0)
    if (nodeParks === 'fifo') expect(c.wakesFifo).toBeGreaterThan(0)
    if (nodeParks === 'futex') expect(c.wakesFutex).toBeGreaterThan(0)
    if (cParks) {
      expect(c.parks).toBeGreaterThan(0)
      // woken by the peer, not by the 100 ms re-check
      expect(c.woken).toBeGreaterThan(c.timeouts)
    }
  })
})

describe('Node SPSC producer -> C consumer', () => {
  it.each([
    { what: 'both sides spin first (default)', spin: 20, cEnv: {} },
    { what: 'the C consumer parks on its futex (spin 0): Node wakes it', spin: 20, cEnv: { CPEER_SPIN_US: '0', CPEER_PARK: 'futex' }, cParks: true },
    { what: 'the C consumer parks on its FIFO (spin 0): Node wakes it', spin: 20, cEnv: { CPEER_SPIN_US: '0', CPEER_PARK: 'fifo' }, cParks: true },
    { what: 'Node parks on the event loop (spin 0): the C consumer wakes it through its FIFO', spin: 0, cEnv: { CPEER_PAUSE_EVERY: '2000' }, nodeParks: 'fifo' },
  ])('$what', async ({ spin, cEnv, nodeParks, cParks }) => {
    const name = segmentName()
    const seed = 2000 + names.length
    const producer = Producer.create(name, { capacity: CAPACITY, maxMessage: MAX_MESSAGE, spin })
    const consumer = startC(['spsc-consume', name, String(SPSC_COUNT), String(seed)], cEnv)
    let sent
    const [result] = await whileRunning([consumer], async () => {
      sent = await peer.produce(producer, { count: SPSC_COUNT, seed, id: 0, spsc: true, maxMessage: MAX_MESSAGE })
      producer.close() // one producer: the end of the stream
    })
    const c = report(result)
    expect(c).toMatchObject({ count: SPSC_COUNT, checksum: sent.checksum, bad: 0, ended: true })
    expect(sent.shorter).toBeGreaterThan(0)
    expect(sent.aborted).toBeGreaterThan(0)
    expect(c.paddings).toBeGreaterThan(0)
    if (nodeParks === 'fifo') expect(c.wakesFifo).toBeGreaterThan(0)
    if (cParks) {
      expect(c.parks).toBeGreaterThan(0)
      // woken by the peer, not by the 100 ms re-check
      expect(c.woken).toBeGreaterThan(c.timeouts)
    }
  })
})

describe('MPSC: 2 C producers + 1 Node producer -> Node consumer', () => {
  it.each([
    { what: 'every side spins first (default)', spin: 20, cEnv: [{}, {}] },
    { what: 'Node parks on the event loop (spin 0): the C producers\' commits wake it through its FIFO', spin: 0, cEnv: [{ CPEER_PAUSE_EVERY: '1000' }, { CPEER_PAUSE_EVERY: '1000' }], nodeParks: 'fifo' },
    { what: 'Node parks in readSync (spin 0): the C producers wake it by futex', spin: 0, sync: true, cEnv: [{ CPEER_PAUSE_EVERY: '1000' }, { CPEER_PAUSE_EVERY: '1000' }], nodeParks: 'futex' },
    { what: 'the C producers park (spin 0; one on its futex, one on its FIFO): Node\'s releases wake them', spin: 20, cEnv: [{ CPEER_SPIN_US: '0', CPEER_PARK: 'futex' }, { CPEER_SPIN_US: '0', CPEER_PARK: 'fifo' }], cParks: true },
  ])('$what', async ({ spin, sync, cEnv, nodeParks, cParks }) => {
    const name = segmentName()
    const seed = 3000 + names.length
    const consumer = Consumer.create(name, { producers: 'many', capacity: CAPACITY, maxMessage: MAX_MESSAGE, spin })
    const verifier = new peer.Verifier({ seed, maxMessage: MAX_MESSAGE, spsc: false, ids: [1, 2, 3] })
    const children = [
      startC(['mpsc-produce', name, String(MPSC_COUNT), String(seed), '1'], cEnv[0]),
      startC(['mpsc-produce', name, String(MPSC_COUNT), String(seed), '2'], cEnv[1]),
      startNodeProducer(name, MPSC_COUNT, seed, 3, 20),
    ]
    const done = () => [1, 2, 3].every((id) => verifier.counts.get(id) >= MPSC_COUNT)
    const results = await whileRunning(children, () => readAll(consumer, verifier, { sync, done }))
    const reports = results.map(report)
    // every producer has closed; one more ends the stream, and nothing else arrives
    Producer.open(name).end()
    expect(await consumer.read()).toBe(null)
    expect(consumer.ended).toBe(true)
    expect(consumer.losses()).toEqual({ lostUncommitted: 0, lostRevoked: 0 })
    consumer.close()
    expect(verifier.summary()).toEqual({
      bad: 0,
      badSamples: [],
      counts: { 1: MPSC_COUNT, 2: MPSC_COUNT, 3: MPSC_COUNT },
      checksums: { 1: reports[0].checksum, 2: reports[1].checksum, 3: reports[2].checksum },
    })
    for (const r of reports) expect(r.count).toBe(MPSC_COUNT)
    for (const c of reports.slice(0, 2)) {
      expect(c.revoked).toBe(0)
      expect(c.shorter).toBeGreaterThan(0)
      expect(c.aborted).toBeGreaterThan(0)
      expect(c.paddings).toBeGreaterThan(0)
    }
    expect(new Set(reports.slice(0, 2).map((c) => c.slot)).size).toBe(2)
    if (nodeParks === 'fifo') expect(sum(reports.slice(0, 2), 'wakesFifo')).toBeGreaterThan(0)
    if (nodeParks === 'futex') expect(sum(reports.slice(0, 2), 'wakesFutex')).toBeGreaterThan(0)
    if (cParks) {
      for (const c of reports.slice(0, 2)) {
        expect(c.parks).toBeGreaterThan(0)
        expect(c.woken).toBeGreaterThan(c.timeouts)
      }
    }
  })
})

describe('MPSC: 2 Node producers -> C consumer', () => {
  it.each([
    { what: 'every side spins first (default)', spin: 20, cEnv: {} },
    { what: 'the C consumer parks on its futex (spin 0): the Node commits wake it', spin: 20, cEnv: { CPEER_SPIN_US: '0', CPEER_PARK: 'futex' }, cParks: true },
    { what: 'the C consumer parks on its FIFO (spin 0): the Node commits wake it', spin: 20, cEnv: { CPEER_SPIN_US: '0', CPEER_PARK: 'fifo' }, cParks: true },
    { what: 'the Node producers park (spin 0): the C consumer\'s releases wake them through their FIFOs', spin: 0, cEnv: { CPEER_PAUSE_EVERY: '1000' }, nodeParks: 'fifo' },
    { what: 'fenced publishing (SHMQ_FENCED_PUBLISH=1: PLAIN_PUBLISH clear), the C consumer parking', spin: 20, cEnv: { CPEER_SPIN_US: '0' }, fenced: true, cParks: true },
  ])('$what', async ({ spin, cEnv, nodeParks, cParks, fenced }) => {
    const name = segmentName()
    const seed = 4000 + names.length
    const nodeEnv = fenced ? { SHMQ_FENCED_PUBLISH: '1' } : {}
    // a Node consumer creates the segment and detaches, leaving slot 0 to the C consumer
    const made = spawnSync(process.execPath, ['-e',
      `require(${JSON.stringify(root)}).Consumer.create(${JSON.stringify(name)}, { producers: 'many', capacity: ${CAPACITY}, maxMessage: ${MAX_MESSAGE} }).close()`],
    { encoding: 'utf8', env: { ...process.env, ...nodeEnv } })
    expect(made.status, made.stderr).toBe(0)
    const consumer = startC(['mpsc-consume', name, String(MPSC_COUNT), String(seed), '2'], { CPEER_UNTIL_END: '1', ...cEnv })
    const producers = [1, 2].map((id) => startNodeProducer(name, MPSC_COUNT, seed, id, spin, nodeEnv))
    const results = await whileRunning([consumer, ...producers], async () => {
      await Promise.all(producers.map((p) => p.done))
      // both producers have closed; one more ends the stream, which the C consumer must see
      Producer.open(name).end()
    })
    const [c, ...sent] = results.map(report)
    expect(c).toMatchObject({
      producers: { 1: { count: MPSC_COUNT, checksum: sent[0].checksum }, 2: { count: MPSC_COUNT, checksum: sent[1].checksum } },
      total: 2 * MPSC_COUNT,
      bad: 0,
      unknown: 0,
      ended: true,
      lostUncommitted: 0,
      lostRevoked: 0,
    })
    for (const s of sent) {
      expect(s.shorter).toBeGreaterThan(0)
      expect(s.aborted).toBeGreaterThan(0)
    }
    expect(c.paddings).toBeGreaterThan(0)
    if (fenced) expect(c.plainFlag).toBe(false)
    if (nodeParks === 'fifo') expect(c.wakesFifo).toBeGreaterThan(0)
    if (cParks) {
      expect(c.parks).toBeGreaterThan(0)
      // woken by the peer, not by the 100 ms re-check
      expect(c.woken).toBeGreaterThan(c.timeouts)
    }
  })
})
