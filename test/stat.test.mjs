// Counters in the segment (docs/LAYOUT.md §15): stats() on the endpoints, and
// `shmq stat` spawned against a live channel in other processes, its numbers
// checked against what was written and read.
import { execFile, spawn, spawnSync } from 'node:child_process'
import { rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { LAYOUT, deadline, exitOf, poke, spawnFixture, testSegments, u32 } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, Publisher, Subscriber } = require('../dist/index.js')
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js')
const { endpoints, segmentName } = testSegments(afterEach)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs the shmq CLI; resolves { code, stdout, stderr }. */
function cli(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : error.code, stdout, stderr })
    })
  })
}

function sum(count) {
  let bytes = 0
  for (let i = 0; i < count; i++) bytes += i % 200
  return bytes
}

describe('counters', () => {
  it('stats() on an SPSC pair: messages, bytes, full rings and padding, per side and per slot', () => {
    const name = segmentName('stats-spsc')
    const consumer = Consumer.create(name, { capacity: 4096 })
    const producer = Producer.open(name)
    endpoints.push(consumer, producer)
    let written = 0
    let bytes = 0
    let full = 0
    for (let i = 0; i < 3000; i++) {
      const message = new Uint8Array(i % 100)
      if (!producer.tryWrite(message)) {
        full++
        consumer.drain(() => {})
        expect(producer.tryWrite(message)).toBe(true)
      }
      written++
      bytes += message.length
    }
    const read = consumer.drain(() => {}) + 0
    const stats = consumer.stats()
    expect(stats.kind).toBe('spsc')
    expect(stats.capacity).toBe(4096)
    expect(stats.read).toMatchObject({ messages: written, bytes, lost: 0 })
    // the producer's own counts reach the segment at its next flush: its stats() stores them
    const producerStats = producer.stats()
    expect(producerStats.written).toMatchObject({ messages: written, bytes, full })
    expect(producerStats.written.padding).toBeGreaterThan(0)
    expect(producerStats.slots.map((slot) => [slot.slot, slot.role, slot.pid, slot.alive])).toEqual([
      [0, 'consumer', process.pid, true],
      [1, 'producer', process.pid, true],
    ])
    expect(read).toBeGreaterThan(0)
  })

  it('counts go on from a slot\'s previous holder: a second producer adds to the first one\'s', () => {
    const name = segmentName('stats-again')
    // one producer slot: the second producer takes the slot the first left
    const consumer = Consumer.create(name, { producers: 'many', maxProducers: 1 })
    endpoints.push(consumer)
    const first = Producer.open(name)
    for (let i = 0; i < 10; i++) first.tryWrite(new Uint8Array(8))
    first.close()
    const second = Producer.open(name)
    endpoints.push(second)
    for (let i = 0; i < 5; i++) second.tryWrite(new Uint8Array(8))
    expect(second.stats().written).toMatchObject({ messages: 15, bytes: 120 })
  })

  it('a corrupt ring refused is counted on the reading side', () => {
    const name = segmentName('stats-corrupt')
    const consumer = Consumer.create(name, { capacity: 4096 })
    endpoints.push(consumer)
    // a producer position that is not 8-byte aligned: no producer wrote it
    poke(name, LAYOUT.PRODUCER_POSITION, u32(13))
    expect(() => consumer.drain(() => {})).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_CORRUPT' }))
    expect(consumer.stats().read.corrupt).toBe(1)
  })

  it('MPSC: each producer its own slot line; broadcast: a lapped subscriber\'s losses counted', () => {
    const name = segmentName('stats-mpsc')
    const consumer = Consumer.create(name, { producers: 'many', maxProducers: 4 })
    const a = Producer.open(name)
    const b = Producer.open(name)
    endpoints.push(consumer, a, b)
    for (let i = 0; i < 7; i++) a.tryWrite(new Uint8Array(10))
    for (let i = 0; i < 3; i++) b.tryWrite(new Uint8Array(20))
    a.stats()
    const stats = b.stats()
    expect(stats.written).toMatchObject({ messages: 10, bytes: 130 })
    expect(stats.slots.filter((slot) => slot.role === 'producer').map((slot) => slot.messages).sort()).toEqual([3, 7])

    const feed = segmentName('stats-bc')
    const publisher = Publisher.create(feed, { capacity: 4096, policy: 'lossy' })
    const subscriber = Subscriber.open(feed)
    endpoints.push(publisher, subscriber)
    for (let i = 0; i < 500; i++) publisher.tryWrite(new Uint8Array(64))
    let got = 0
    while (subscriber.tryRead() !== null) got++
    const broadcast = subscriber.stats()
    expect(subscriber.lost).toBeGreaterThan(0)
    expect(broadcast.read).toMatchObject({ messages: got, lost: subscriber.lost })
    expect(publisher.stats().written.messages).toBe(500)
  })
})

describe('shmq stat', () => {
  it('reads a live channel of other processes without attaching: counts equal what was written and read', async () => {
    const name = segmentName('stat-live')
    const consumer = Consumer.create(name, { capacity: 1 << 14 })
    endpoints.push(consumer)
    const producer = spawnFixture('stat-producer.cjs', { name, count: 5000 })
    let read = 0
    const reading = (async () => {
      while (read < 5000) {
        const message = await consumer.read()
        if (message === null) break
        read++
      }
    })()
    const written = await deadline(producer.next('written'), 60_000, 'producer written')
    await reading
    expect(written.bytes).toBe(sum(5000))
    // this process's consumer stores its counts within 100 ms (or at its next park)
    await sleep(250)
    const { code, stdout, stderr } = await cli(['stat', name, '--json', '--interval', '0'])
    expect(code, stderr).toBe(0)
    const stats = JSON.parse(stdout)
    expect(stats.written).toMatchObject({ messages: 5000, bytes: sum(5000) })
    expect(stats.read).toMatchObject({ messages: 5000, bytes: sum(5000) })
    expect(stats.slots.find((slot) => slot.role === 'producer')).toMatchObject({ pid: producer.child.pid, alive: true })
    expect(stats.slots.find((slot) => slot.role === 'consumer')).toMatchObject({ pid: process.pid, alive: true })
    // looking changed nothing: the consumer reads on where it was
    expect(consumer.tryRead()).toBe(null)
    expect(consumer.stats().read.messages).toBe(5000)
    producer.send({ type: 'exit' })
    expect(await exitOf(producer)).toEqual({ code: 0, signal: null })
  })

  it('rates per second over --interval, and --watch prints plain tables when stdout is no terminal until interrupted', async () => {
    const name = segmentName('stat-rate')
    const consumer = Consumer.create(name, { capacity: 1 << 16 })
    const producer = Producer.open(name)
    endpoints.push(consumer, producer)
    const pump = setInterval(() => {
      for (let i = 0; i < 2000; i++) producer.tryWrite(new Uint8Array(32))
      consumer.drain(() => {})
    }, 5)
    try {
      const { code, stdout } = await cli(['stat', name, '--json', '--interval', '300'])
      expect(code).toBe(0)
      const { rates } = JSON.parse(stdout)
      expect(rates.written).toBeGreaterThan(1000)
      expect(rates.read).toBeGreaterThan(1000)
      const watch = spawn(process.execPath, [CLI, 'stat', name, '--watch', '--interval', '100'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      watch.stdout.on('data', (chunk) => (out += chunk))
      await sleep(800)
      watch.kill('SIGINT')
      const [exitCode] = await new Promise((resolve) => watch.on('exit', (...args) => resolve(args)))
      expect(exitCode).toBe(0)
      const tables = out.split('\n').filter((line) => line.startsWith(name))
      expect(tables.length).toBeGreaterThanOrEqual(3)
      expect(out).not.toContain('\x1b[')
      expect(out).toMatch(/written\s+\S+/)
    } finally {
      clearInterval(pump)
    }
  })

  it('lists bridge stats files: stale when old, when their pid is gone, or when the pid now names another process', async () => {
    const name = segmentName('stat-bridges')
    endpoints.push(Consumer.create(name))
    const { processStartTime } = require('../dist/liveness.js')
    const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    const file = (pid) => `/dev/shm/.shmq-${name}.bridge-${pid}`
    const write = (pid, fields) => writeFileSync(file(pid), JSON.stringify({ pid, from: `shm:${name}`, to: 'nats://h:4222/s', updatedAt: Date.now(), stats: { messagesIn: 3 }, ...fields }))
    const start = processStartTime(process.pid)
    try {
      write(process.pid, { start })
      const listed = async () => JSON.parse((await cli(['stat', name, '--json', '--interval', '0'])).stdout).bridges.map((b) => [b.pid, b.stale, b.stats.messagesIn])
      expect(await listed()).toEqual([[process.pid, false, 3]])
      // this pid, but another process's start time: a bridge that died and whose pid was taken again
      write(process.pid, { start: start + 1 })
      expect(await listed()).toEqual([[process.pid, true, 3]])
      write(process.pid, { start, updatedAt: Date.now() - 60_000 })
      expect(await listed()).toEqual([[process.pid, true, 3]])
      rmSync(file(process.pid))
      write(Number(exited.stdout), {})
      expect(await listed()).toEqual([[Number(exited.stdout), true, 3]])
      // not a bridge file: a symlink is never followed, a file naming another pid is refused
      rmSync(file(Number(exited.stdout)))
      symlinkSync('/etc/passwd', file(1))
      writeFileSync(file(2), JSON.stringify({ pid: 3, updatedAt: 0, stats: {} }))
      expect(await listed()).toEqual([])
    } finally {
      for (const pid of [process.pid, Number(exited.stdout), 1, 2]) rmSync(file(pid), { force: true })
    }
  })

  it('usage errors exit 2, a missing channel 1, --help 0', async () => {
    expect((await cli(['stat'])).code).toBe(2)
    expect((await cli(['stat', 'a', 'b'])).code).toBe(2)
    expect((await cli(['stat', 'x', '--interval', 'soon'])).code).toBe(2)
    const missing = await cli(['stat', 'shmqtest-no-such-channel'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('shmq ls')
    const help = await cli(['stat', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Exit codes')
  })
})
