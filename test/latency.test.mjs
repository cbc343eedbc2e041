// Per-message timestamps and the consumer's latency histogram (docs/LAYOUT.md §16):
// the bucket arithmetic against exact percentiles, stamps written by a producer in
// another process and read here, the histogram seen by `shmq stat` without
// attaching, and what a segment with stamps refuses.
import { execFile } from 'node:child_process'
import { openSync, writeSync, closeSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, exitOf, spawnFixture, testSegments } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, Publisher, ShmqError } = require('../dist/index.js')
const { bucketOf, lowOf, percentiles } = require('../dist/latency.js')
const L = require('../dist/layout.js')
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js')
const { endpoints, segmentName } = testSegments(afterEach)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const HANG_MS = 60_000

function cli(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : error.code, stdout, stderr }))
  })
}

/** A deterministic generator (xorshift32). */
function random(seed) {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 4294967296
  }
}

describe('latency histogram arithmetic', () => {
  it('puts every value in a bucket at most 1/16 of it wide, buckets in order', () => {
    const next = random(7)
    for (let i = 0; i < 200_000; i++) {
      const value = Math.floor(2 ** (next() * 48))
      const bucket = bucketOf(value)
      expect(bucket).toBeGreaterThanOrEqual(0)
      expect(bucket).toBeLessThan(L.LATENCY_BUCKETS)
      const low = lowOf(bucket)
      const high = lowOf(bucket + 1)
      if (low > value || value >= high) throw new Error(`value ${value} in bucket ${bucket} [${low}, ${high})`)
      if (value >= 32 && high - low > value / 16) throw new Error(`bucket ${bucket} is ${high - low} wide for ${value}`)
    }
    // exact powers of two and their neighbours, where log2 rounds
    for (let exponent = 5; exponent < 48; exponent++) {
      for (const value of [2 ** exponent - 1, 2 ** exponent, 2 ** exponent + 1]) {
        const bucket = bucketOf(value)
        expect(lowOf(bucket) <= value && value < lowOf(bucket + 1), `${value}`).toBe(true)
      }
    }
    expect(bucketOf(2 ** 60)).toBe(L.LATENCY_BUCKETS - 1)
    expect(bucketOf(-5)).toBe(0)
  })

  it('gives percentiles never below the exact ones and at most 6.25% above', () => {
    const next = random(11)
    const values = []
    const buckets = new Float64Array(L.LATENCY_BUCKETS)
    let sum = 0
    for (let i = 0; i < 100_000; i++) {
      // a long-tailed mix: most near 2 µs, some near 100 µs, a few near 10 ms
      const base = next() < 0.9 ? 2000 : next() < 0.9 ? 100_000 : 10_000_000
      const value = Math.round(base * (0.5 + next() * 1.5))
      values.push(value)
      buckets[bucketOf(value)]++
      sum += value
    }
    values.sort((a, b) => a - b)
    const stats = percentiles(buckets, values.length, sum, values[0], values.at(-1))
    for (const [key, quantile] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99], ['p999', 0.999]]) {
      const exact = values[Math.ceil(quantile * values.length) - 1]
      expect(stats[key], key).toBeGreaterThanOrEqual(exact)
      expect(stats[key], key).toBeLessThanOrEqual(exact * 1.0625 + 1)
    }
    expect([stats.min, stats.max, stats.count]).toEqual([values[0], values.at(-1), values.length])
    expect(stats.mean).toBeCloseTo(sum / values.length, 6)
  })
})

describe('timestamps: true', () => {
  it('stamps messages in producer processes (MPSC); the consumer gets them intact, and latency of each', async () => {
    const name = segmentName('lat-procs')
    // MPSC: a second producer process may follow the first (an SPSC producer's close ends the stream)
    const consumer = Consumer.create(name, { producers: 'many', capacity: 1 << 20, timestamps: true })
    endpoints.push(consumer)
    expect(consumer.maxMessage).toBe((1 << 19) - 16)
    // phase 1: 2,000 messages written at once, read only after a pause: each waited at least that long
    const child = spawnFixture('stat-producer.cjs', { name, count: 2000 })
    const written = await deadline(child.next('written'), HANG_MS, 'producer writes')
    const pausedAt = performance.now()
    await sleep(150)
    let read = 0
    let bad = 0
    const check = (bytes, offset, length) => {
      const i = read++
      if (length !== i % 200) bad++
      for (let j = 0; j < length; j++) if (bytes[offset + j] !== (i & 0xff)) bad++
    }
    while (read < 2000) consumer.drainRaw(check)
    const waited = performance.now() - pausedAt
    expect(bad).toBe(0)
    const first = consumer.stats().latency
    expect(first.count).toBe(2000)
    expect(first.min).toBeGreaterThanOrEqual(150e6)
    // none waited longer than from before the child started writing to the end of the drain
    expect(first.max).toBeLessThan((waited + 60_000) * 1e6)
    expect(first.p50).toBeGreaterThanOrEqual(first.min)
    expect(first.p90).toBeGreaterThanOrEqual(first.p50)
    expect(first.p99).toBeGreaterThanOrEqual(first.p90)
    expect(first.max).toBeGreaterThanOrEqual(first.p999)
    expect(consumer.stats().read).toMatchObject({ messages: 2000, bytes: written.bytes })
    child.send({ type: 'exit' })
    expect(await exitOf(child)).toEqual({ code: 0, signal: null })

    // phase 2: a stream read as it comes (for await): fresh stamps, a second producer continues
    const second = spawnFixture('stat-producer.cjs', { name, count: 20_000, pauseEvery: 1000, pauseMs: 2 })
    let count = 0
    for await (const message of consumer) {
      const i = count++
      if (message.length !== i % 200 || message.some((byte) => byte !== (i & 0xff))) bad++
      if (count === 20_000) break
    }
    expect(bad).toBe(0)
    const both = consumer.stats().latency
    expect(both.count).toBe(22_000)
    // the streamed messages were read long before 150 ms: most of the histogram lies below phase 1
    expect(both.p50).toBeLessThan(150e6)
    expect(both.min).toBeLessThan(first.min)
    await deadline(second.next('written'), HANG_MS, 'second producer')

    // `shmq stat` reads the same histogram from the segment without attaching
    const stat = await cli(['stat', name, '--json'])
    expect(stat.code, stat.stderr).toBe(0)
    expect(JSON.parse(stat.stdout).latency).toEqual(consumer.stats().latency)
    const table = await cli(['stat', name])
    expect(table.stdout).toMatch(/latency \(commit -> read, 22\.0k msgs\): p50 [\d.]+ (ns|µs|ms|s) {2}p90 /)
    second.send({ type: 'exit' })
    expect(await exitOf(second)).toEqual({ code: 0, signal: null })
  })

  it('SPSC: a for-await loop over a stamped stream ends when the producer process closes', async () => {
    const name = segmentName('lat-spsc')
    const consumer = Consumer.create(name, { capacity: 1 << 14, timestamps: true })
    endpoints.push(consumer)
    // a ring smaller than the stream: the loop reads while the producer waits for room
    const child = spawnFixture('stat-producer.cjs', { name, count: 5000 })
    let count = 0
    let bad = 0
    const loop = (async () => {
      for await (const message of consumer) {
        const i = count++
        if (message.length !== i % 200 || message.some((byte) => byte !== (i & 0xff))) bad++
      }
    })()
    const written = await deadline(child.next('written'), HANG_MS, 'producer writes')
    child.send({ type: 'exit' })
    await deadline(loop, HANG_MS, 'the loop ends at the end of the stream')
    expect([count, bad, consumer.ended]).toEqual([5000, 0, true])
    expect(consumer.stats().latency.count).toBe(5000)
    expect(consumer.stats().read.bytes).toBe(written.bytes)
    expect(await exitOf(child)).toEqual({ code: 0, signal: null })
  })

  it('an MPSC channel with stamps: claims and tryWrite from two producers, each message stripped', () => {
    const name = segmentName('lat-mpsc')
    const consumer = Consumer.create(name, { producers: 'many', timestamps: true, capacity: 1 << 14 })
    const producers = [Producer.open(name), Producer.open(name)]
    endpoints.push(consumer, ...producers)
    const seen = []
    for (let i = 0; i < 300; i++) {
      const producer = producers[i % 2]
      if (i % 3 === 0) {
        const view = producer.tryClaim(12)
        view.fill(i & 0xff)
        producer.commit(i % 12, 5)
      } else expect(producer.tryWrite(new Uint8Array(i % 50).fill(i & 0xff), 6)).toBe(true)
      consumer.drainRaw((bytes, offset, length, type) => seen.push([length, type, bytes.subarray(offset, offset + length).every((b) => b === (i & 0xff))]))
    }
    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => [i % 3 === 0 ? i % 12 : i % 50, i % 3 === 0 ? 5 : 6, true]))
    expect(consumer.stats().latency.count).toBe(300)
    expect(consumer.stats().read.bytes).toBe(seen.reduce((total, [length]) => total + length, 0))
    expect(producers[0].maxMessage).toBe(consumer.maxMessage)
    expect(() => producers[0].tryWrite(new Uint8Array(consumer.maxMessage + 1))).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_TOO_LARGE' }))
    expect(producers[0].tryWrite(new Uint8Array(consumer.maxMessage))).toBe(true)
    // end(): the consumer ends once every producer closed and it read everything
    producers[0].end()
    producers[1].close()
    expect(consumer.ended).toBe(false)
    expect(consumer.drain(() => {})).toBe(1)
    expect(consumer.ended).toBe(true)
  })

  it('a message too short to hold a stamp is ERR_SHMQ_CORRUPT, counted; a forged future stamp counts as 0 ns', () => {
    const name = segmentName('lat-forged')
    const consumer = Consumer.create(name, { capacity: 4096, timestamps: true })
    endpoints.push(consumer)
    const headerBytes = L.headerBytesFor(2)
    const fd = openSync(`/dev/shm/${name}`, 'r+')
    try {
      // frame 0: a message of 16 bytes whose stamp lies far in the future; frame 1: 4 bytes, no room for a stamp
      const frames = Buffer.alloc(48)
      frames.writeUInt32LE(16, 0)
      frames.writeUInt32LE((L.FRAME_MESSAGE << 16) | (1 << 24), 4)
      frames.writeBigUInt64LE(2n ** 62n, 8)
      frames.fill(0x5a, 16, 24)
      frames.writeUInt32LE(4, 24)
      frames.writeUInt32LE((L.FRAME_MESSAGE << 16) | (1 << 24), 28)
      writeSync(fd, frames, 0, frames.length, headerBytes)
      const position = Buffer.alloc(4)
      position.writeUInt32LE(40, 0)
      writeSync(fd, position, 0, 4, L.WRITE_POSITION_OFFSET)
    } finally {
      closeSync(fd)
    }
    const first = consumer.tryRead()
    expect([...first]).toEqual(new Array(8).fill(0x5a))
    expect(consumer.stats().latency).toMatchObject({ count: 1, min: 0, max: 0 })
    let error = null
    try {
      consumer.drain(() => {})
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ShmqError)
    expect(error.code).toBe('ERR_SHMQ_CORRUPT')
    expect(error.message).toMatch(/8-byte timestamp/)
    expect(consumer.stats().read.corrupt).toBe(1)
  })

  it('is refused where no consumer keeps a histogram, and must be a boolean', () => {
    const refused = (fn) => {
      try {
        fn()
      } catch (error) {
        return error.code
      }
      return 'no error'
    }
    expect(refused(() => Publisher.create(segmentName('lat-pub'), { timestamps: true }))).toBe('ERR_SHMQ_UNSUPPORTED')
    expect(refused(() => Producer.create(segmentName('lat-wq'), { consumers: 'many', timestamps: true }))).toBe('ERR_SHMQ_UNSUPPORTED')
    expect(refused(() => Consumer.create(segmentName('lat-bad'), { timestamps: 'yes' }))).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    // a segment without the flag has no histogram
    const plain = Consumer.create(segmentName('lat-none'))
    endpoints.push(plain)
    expect(plain.stats().latency).toBeNull()
  })
})
