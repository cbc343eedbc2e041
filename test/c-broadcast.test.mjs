// A C broadcast subscriber written from docs/LAYOUT.md §12 alone
// (test/fixtures/c-broadcast.c) against a shmq Publisher (backpressure): it
// attaches, joins ('next' or 'oldest'), reads every message to the end of the
// stream, parking on its doorbell or FIFO when there is nothing to read, and
// its count, first/last sequence numbers and checksum must match what was
// published.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { Publisher, Subscriber, unlink } = require('../dist/index.js')

const CAPACITY = 1 << 16
const COUNT = 200_000
const TABLE_BYTES = 65536 + 2048

// ---- the message generator (the same functions as c-broadcast.c) ----------

function mix32(x) {
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d)
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b)
  x ^= x >>> 16
  return x >>> 0
}
const msgHash = (seed, seq) => mix32(Math.imul(seed, 0x9e3779b1) ^ mix32((seq + 0x632be5ab) >>> 0))

function makeTable(seed) {
  const t = new Uint8Array(TABLE_BYTES)
  let s = (mix32((seed ^ 0xa5a5a5a5) >>> 0) | 1) >>> 0
  for (let i = 0; i < TABLE_BYTES; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    t[i] = s & 0xff
  }
  return t
}

// message seq: length 0..2000, a tag on about a quarter, bytes from the
// table with the seq (u32 LE) as the first 4 when there are 4
function message(table, seed, seq, scratch) {
  const h = msgHash(seed, seq)
  const len = h % 2001
  const tag = ((h >>> 11) & 3) === 0 ? 1 + ((h >>> 13) % 65535) : 0
  const off = h >>> 16
  scratch.set(table.subarray(off, off + len), 0)
  if (len >= 4) {
    scratch[0] = seq & 0xff
    scratch[1] = (seq >>> 8) & 0xff
    scratch[2] = (seq >>> 16) & 0xff
    scratch[3] = seq >>> 24
  }
  return { body: scratch.subarray(0, len), tag }
}

// FNV-1a over (seq u32 LE, length u32 LE, bytes) of every message, in order
const FNV_START = 0x811c9dc5
function fnvU32(h, v) {
  for (let i = 0; i < 4; i++) {
    h ^= (v >>> (8 * i)) & 0xff
    h = Math.imul(h, 0x01000193)
  }
  return h
}
function fnvMessage(h, seq, bytes) {
  h = fnvU32(fnvU32(h, seq), bytes.length)
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]
    h = Math.imul(h, 0x01000193)
  }
  return h
}
function expectedChecksum(table, seed, first, last) {
  const scratch = new Uint8Array(2048)
  let h = FNV_START
  for (let seq = first; seq <= last; seq++) h = fnvMessage(h, seq, message(table, seed, seq, scratch).body)
  return h >>> 0
}

async function publish(publisher, table, seed, from, to) {
  const scratch = new Uint8Array(2048)
  for (let seq = from; seq < to; seq++) {
    const { body, tag } = message(table, seed, seq, scratch)
    if (tag === 0) await publisher.write(body)
    else await publisher.write(body, tag)
  }
}

// ---- the C subscriber ------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-c-broadcast-'))
const cBroadcast = path.join(tmp, 'c-broadcast')
let current = [] // segment names and children of the running test

beforeAll(() => {
  const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8' })
  if (gcc.error) throw new Error(`gcc is needed to compile test/fixtures/c-broadcast.c and was not found: ${gcc.error.message}`)
  const cc = spawnSync('gcc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', cBroadcast,
    path.join(root, 'test/fixtures/c-broadcast.c')], { encoding: 'utf8' })
  if (cc.status !== 0) throw new Error(`gcc failed on test/fixtures/c-broadcast.c:\n${cc.stderr}`)
})

afterEach(() => {
  for (const item of current) {
    if (typeof item === 'string') {
      try { unlink(item) } catch {}
    } else if (item.exitCode === null && item.signalCode === null) {
      item.kill('SIGKILL')
    }
  }
  current = []
})

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
})

let counter = 0
function segmentName() {
  const name = `cbroadcast-${process.pid}-${counter++}`
  current.push(name)
  return name
}

// Starts the C subscriber; `joined` resolves with its first line once it has
// joined, `done` with how it ended and what it printed.
function startC(name, from, seed, env = {}) {
  const child = spawn(cBroadcast, [name, from, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  current.push(child)
  let stdout = '', stderr = ''
  let onJoined, onFailed
  const joined = new Promise((resolve, reject) => { onJoined = resolve; onFailed = reject })
  child.stdout.on('data', (d) => {
    stdout += d
    const nl = stdout.indexOf('\n')
    if (nl >= 0) onJoined(JSON.parse(stdout.slice(0, nl)))
  })
  child.stderr.on('data', (d) => { stderr += d })
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      onFailed(new Error(`c-broadcast ended before joining: code ${code}, signal ${signal}, stderr: ${stderr}`))
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { child, joined, done }
}

// a clean exit (code 0, no signal) and the JSON line it printed last
function report(result) {
  const why = `c-broadcast: code ${result.code}, signal ${result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  expect(result.signal, why).toBe(null)
  expect(result.code, why).toBe(0)
  return JSON.parse(result.stdout.trim().split('\n').pop())
}

// Runs the publishing side; fails at once (with its output) if the C side
// exits early, which would otherwise leave the publisher waiting on a ring
// that nobody releases.
async function whileRunning(c, run) {
  const early = c.done.then((r) => {
    throw new Error(`c-broadcast exited while the publisher was running: code ${r.code}, signal ${r.signal}, stderr: ${r.stderr}`)
  })
  const running = run()
  await Promise.race([running, early])
  early.catch(() => {})
  return c.done
}

const create = (name) => Publisher.create(name, { capacity: CAPACITY, policy: 'backpressure', maxSubscribers: 4 })

// A JS Subscriber that verifies each message against the generator.
async function readAllJs(subscriber, table, seed, firstSeq) {
  const scratch = new Uint8Array(2048)
  let seq = firstSeq, bad = 0, h = FNV_START
  for (;;) {
    const view = await subscriber.read()
    if (view === null) break
    const want = message(table, seed, seq, scratch)
    if (view.length !== want.body.length || subscriber.lastType !== want.tag || Buffer.compare(Buffer.from(view.buffer, view.byteOffset, view.length), Buffer.from(want.body)) !== 0) bad++
    h = fnvMessage(h, seq, view)
    seq++
  }
  return { received: seq - firstSeq, last: seq - 1, bad, checksum: h >>> 0 }
}

describe('JS Publisher (backpressure) -> C subscriber', () => {
  it.each([
    { what: "from 'next', the C side spinning then parking on its futex", env: {}, cParks: true },
    { what: "from 'next', the C side pausing (the publisher parks and is woken by the C releases) and parking on its FIFO",
      env: { CBC_PARK: 'fifo', CBC_PAUSE_EVERY: '2000', CBC_PAUSE_US: '3000' }, wakesPublisher: true },
  ])('$what', async ({ env, cParks, wakesPublisher }) => {
    const name = segmentName()
    const seed = 100 + counter
    const table = makeTable(seed)
    const publisher = create(name)
    const c = startC(name, 'next', seed, env)
    const joined = await c.joined
    expect(joined).toMatchObject({ joined: true, slot: 1, sequence: 0, position: 0 })
    const started = Date.now()
    const result = await whileRunning(c, async () => {
      await publish(publisher, table, seed, 0, COUNT)
      publisher.close() // the end of the stream
    })
    const r = report(result)
    console.log(`c-broadcast ${JSON.stringify(env)}: ${Date.now() - started} ms`, JSON.stringify(r))
    expect(r).toMatchObject({ received: COUNT, first: 0, last: COUNT - 1, bad: 0, gaps: 0, resumes: 0, lost: 0 })
    expect(r.checksum).toBe(expectedChecksum(table, seed, 0, COUNT - 1))
    expect(r.paddings).toBeGreaterThan(0)
    if (cParks) {
      expect(r.parks).toBeGreaterThan(0)
      expect(r.woken).toBeGreaterThan(0)
    }
    if (wakesPublisher) expect(r.wakesPublisher).toBeGreaterThan(0)
  })

  it('a JS Subscriber and the C subscriber side by side both get everything', async () => {
    const name = segmentName()
    const seed = 200 + counter
    const table = makeTable(seed)
    const publisher = create(name)
    const c = startC(name, 'next', seed)
    const js = Subscriber.open(name, { from: 'next', timeout: 5000 })
    expect((await c.joined).sequence).toBe(0)
    const started = Date.now()
    let jsResult
    const result = await whileRunning(c, async () => {
      const reading = readAllJs(js, table, seed, 0)
      await publish(publisher, table, seed, 0, COUNT)
      publisher.close()
      jsResult = await reading
    })
    js.close()
    const r = report(result)
    console.log(`side by side: ${Date.now() - started} ms`, JSON.stringify(r))
    const want = expectedChecksum(table, seed, 0, COUNT - 1)
    expect(jsResult).toEqual({ received: COUNT, last: COUNT - 1, bad: 0, checksum: want })
    expect(r).toMatchObject({ received: COUNT, first: 0, last: COUNT - 1, bad: 0, gaps: 0, resumes: 0, lost: 0, checksum: want })
  })

  it("from 'oldest' after 1,000 messages: the oldest intact one on, contiguous to the end", async () => {
    const name = segmentName()
    const seed = 300 + counter
    const table = makeTable(seed)
    const publisher = create(name)
    await publish(publisher, table, seed, 0, 1000)
    const c = startC(name, 'oldest', seed)
    const joined = await c.joined
    const started = Date.now()
    const result = await whileRunning(c, async () => {
      await publish(publisher, table, seed, 1000, COUNT)
      publisher.close()
    })
    const r = report(result)
    console.log(`oldest: ${Date.now() - started} ms`, JSON.stringify(joined), JSON.stringify(r))
    expect(r.first).toBe(joined.sequence)
    expect(r.first).toBeGreaterThanOrEqual(0)
    expect(r.first).toBeLessThan(1000) // something of the first 1,000 was still in the ring
    expect(r).toMatchObject({ last: COUNT - 1, received: COUNT - r.first, bad: 0, gaps: 0, resumes: 0, lost: 0 })
    expect(r.checksum).toBe(expectedChecksum(table, seed, r.first, COUNT - 1))
  })

  it("from 'next' after 1,000 messages: counting from the checkpoint, its first is exactly 1,000", async () => {
    const name = segmentName()
    const seed = 400 + counter
    const table = makeTable(seed)
    const publisher = create(name)
    await publish(publisher, table, seed, 0, 1000)
    const c = startC(name, 'next', seed)
    const joined = await c.joined
    expect(joined.sequence).toBe(1000)
    const result = await whileRunning(c, async () => {
      await publish(publisher, table, seed, 1000, 20_000)
      publisher.close()
    })
    const r = report(result)
    expect(r).toMatchObject({ first: 1000, last: 19_999, received: 19_000, bad: 0, gaps: 0, resumes: 0, lost: 0 })
    expect(r.checksum).toBe(expectedChecksum(table, seed, 1000, 19_999))
  })

  it("from 'next' while the publisher is writing: contiguous from the sequence it joined at", async () => {
    const name = segmentName()
    const seed = 500 + counter
    const table = makeTable(seed)
    const publisher = create(name)
    const scratch = new Uint8Array(2048)
    let joinedAt = null
    let c = null
    let seq = 0
    // The C side starts once the ring has been filled many times (its 'next'
    // join counts messages from a checkpoint that is not 0) and joins while
    // the publisher keeps writing. A C side that fails before joining fails
    // the test through `joined`; one that dies later is dropped by the
    // publisher (its lock is free), so nothing waits for it.
    let failed = null
    for (; joinedAt === null || seq < joinedAt + 20_000; seq++) {
      if (seq === 5000) {
        c = startC(name, 'next', seed)
        c.joined.then(() => { joinedAt = seq }, (err) => { failed = err })
      }
      if (failed) throw failed
      if (seq > 2_000_000) throw new Error('the C subscriber never joined')
      const { body, tag } = message(table, seed, seq, scratch)
      await publisher.write(body, tag)
      if (seq % 16 === 0) await new Promise((resolve) => setImmediate(resolve)) // let the child's output in
    }
    publisher.close()
    const r = report(await c.done)
    const joined = await c.joined
    console.log(`joined mid-stream at ${joined.sequence} (seen at ${joinedAt})`, JSON.stringify(r))
    expect(joined.sequence).toBeGreaterThanOrEqual(5000) // it joined a running stream
    expect(r).toMatchObject({ first: joined.sequence, last: seq - 1, received: seq - joined.sequence, bad: 0, gaps: 0, resumes: 0, lost: 0 })
    expect(r.checksum).toBe(expectedChecksum(table, seed, joined.sequence, seq - 1))
  })
})
