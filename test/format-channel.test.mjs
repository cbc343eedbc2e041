// The channel helpers between two real processes: a producer writes Order
// messages in place (writeMessage, tryWriteMessage), older-version messages,
// messages of another schema and damaged ones through a small ring (so it
// waits for room); the consumer drains with drainMessages and one reused
// flyweight. What it folded from the fields must match the values written;
// other schemas and damaged messages are counted, never delivered.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const fixture = path.join(here, 'fixtures/format-channel.cjs')
const { messageFor, fold } = require(fixture)
const { unlink, Producer, Consumer, messageStats, ShmqError } = require('../dist/index.js')
const { OrderV2, Tick } = require('./fixtures/format-schemas.cjs')

const names = []
afterEach(() => {
  for (const name of names.splice(0)) {
    try {
      unlink(name)
    } catch {}
  }
})

function child(config) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fixture, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('error', reject)
    p.on('exit', (code, signal) => resolve({ code, signal, out, err }))
  })
}

/** The fold the consumer must reach, from the values alone. */
function expected(count) {
  let sum = 0
  const counts = { v2: 0, v1: 0, tick: 0, damaged: 0 }
  for (let i = 0; i < count; i++) {
    const { kind, values } = messageFor(i)
    counts[kind]++
    if (kind !== 'v2' && kind !== 'v1') continue
    const legs = values.legs
    sum = fold(sum, {
      ...values,
      legsLength: legs.length,
      legPx: (k) => legs[k].px,
      legQty: (k) => legs[k].qty,
      note: values.note,
      tif: kind === 'v1' ? 3 : values.tif,
    })
  }
  return { sum, counts }
}

describe('format: channel helpers', () => {
  it('writes in place and drains with one flyweight across processes; counts other schemas and damaged messages', async () => {
    const name = `shmqtest-format-${process.pid}`
    names.push(name)
    const count = 20_000
    const producing = child({ role: 'producer', name, count, capacity: 1 << 14 })
    const consuming = child({ role: 'consumer', name, count })
    const [p, c] = await Promise.all([producing, consuming])
    expect(p.err).toBe('')
    expect(c.err).toBe('')
    expect([p.code, p.signal, c.code, c.signal]).toEqual([0, null, 0, null])
    const written = JSON.parse(p.out)
    const seen = JSON.parse(c.out)
    const want = expected(count)
    expect(written).toMatchObject(want.counts)
    // the ring (16 KiB) filled: writes waited for room
    expect(written.tryFull).toBeGreaterThan(0)
    expect(seen.seen).toBe(want.counts.v2 + want.counts.v1)
    expect(seen.delivered).toBe(seen.seen)
    expect(seen.sum).toBe(want.sum)
    expect(seen.otherSchema).toBe(want.counts.tick)
    expect(seen.invalid).toBe(want.counts.damaged)
    expect(seen.formatErrors).toBe(want.counts.damaged)
    expect(seen.readCounted).toBe(seen.seen + seen.otherSchema + seen.invalid)
    expect(seen.lastError).toMatch(/CRC32C mismatch/)
    expect(seen.readers).toBe(1)
  })

  it('throws instead of skipping or dropping when told to, and aborts a claim whose encoding fails', () => {
    const name = `shmqtest-format-opts-${process.pid}`
    names.push(name)
    const producer = Producer.create(name, { capacity: 1 << 16 })
    const consumer = Consumer.open(name)
    try {
      const order = messageFor(0).values
      expect(producer.tryWriteMessage(Tick, messageFor(3).values)).toBe(true)
      expect(() => consumer.drainMessages(OrderV2, () => {}, { otherSchema: 'throw' })).toThrow(/schema id 11/)
      const damaged = OrderV2.encode(order, { checksum: true })
      damaged[30] ^= 1
      producer.tryWrite(damaged)
      let error
      try {
        consumer.drainMessages(OrderV2, () => {}, { invalid: 'throw' })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ShmqError)
      expect(error.code).toBe('ERR_SHMQ_FORMAT')
      // a failed encoding leaves nothing claimed and nothing visible
      expect(() => producer.tryWriteMessage(OrderV2, { ...order, symbol: 'x'.repeat(40) })).toThrow(/max of 32/)
      expect(producer.tryWriteMessage(OrderV2, order)).toBe(true)
      const got = []
      expect(consumer.drainMessages(OrderV2, (r) => got.push(r.symbol))).toBe(1)
      expect(got).toEqual([order.symbol])
      expect(messageStats(consumer)).toMatchObject({ delivered: 1, otherSchema: 0, invalid: 0 })
      // the schema id rides in the frame's message type tag: dispatch without reading the payload
      expect(producer.tryWriteMessage(Tick, messageFor(3).values)).toBe(true)
      expect(consumer.tryRead()).not.toBeNull()
      expect(consumer.lastType).toBe(Tick.id)
      consumer.release()
      // a tag says another schema even when the bytes carry this one's header: skipped, counted, not parsed
      producer.tryWrite(OrderV2.encode(order), Tick.id)
      expect(consumer.drainMessages(OrderV2, () => {})).toBe(0)
      expect(messageStats(consumer)).toMatchObject({ delivered: 1, otherSchema: 1, invalid: 0 })
      // untagged (plain bytes, tag 0): told by its header
      producer.tryWrite(OrderV2.encode(order))
      expect(consumer.drainMessages(OrderV2, () => {})).toBe(1)
      // a message too large for the channel is the producer's error
      expect(() => producer.tryWriteMessage(OrderV2, { ...order, note: 'x'.repeat(200), legs: new Array(16).fill({ px: 1, qty: 1 }) })).not.toThrow()
    } finally {
      producer.close()
      consumer.close()
    }
  })
})
