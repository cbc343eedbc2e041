// Callers that lie: sizes taken from user-visible properties, and reads
// started from inside a drain handler.
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { LAYOUT, peekU32, removeSegment, thrownBy, uniqueName } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Producer, Consumer } = require('../dist/index.js')

const names = []
const endpoints = []
function channel(tag, options = { capacity: 1024 }) {
  const name = uniqueName(tag)
  names.push(name)
  const producer = Producer.create(name, options)
  const consumer = Consumer.open(name)
  endpoints.push(producer, consumer)
  return { name, producer, consumer }
}

afterEach(() => {
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  for (const name of names.splice(0)) removeSegment(name)
})

const filled = (length, salt) => Uint8Array.from({ length }, (_, i) => (i * 13 + salt) & 0xff)

/** Reads every waiting message as [length, first byte, last byte] (copies). */
function readAll(consumer) {
  const seen = []
  for (let m = consumer.tryRead(); m !== null; m = consumer.tryRead()) seen.push(Array.from(m))
  return seen
}

describe('sizes come from the TypedArray itself', () => {
  it('an own `length` property that lies (8 for 300 bytes) neither overwrites unread messages nor corrupts the segment', () => {
    const { producer, consumer } = channel('lying-own')
    const first = filled(400, 1)
    const second = filled(400, 2)
    expect(producer.tryWrite(first)).toBe(true)
    expect(producer.tryWrite(second)).toBe(true)
    const liar = filled(300, 3)
    Object.defineProperty(liar, 'length', { value: 8 })
    // 400 + 400 + 300 bytes do not fit 1024: the liar must wait (with length 8 it would seem to fit)
    expect(producer.tryWrite(liar)).toBe(false)
    expect(readAll(consumer)).toEqual([Array.from(first), Array.from(second)])
    expect(producer.tryWrite(liar)).toBe(true)
    const got = readAll(consumer)
    expect(got).toHaveLength(1)
    expect(got[0]).toHaveLength(300)
    expect(got[0]).toEqual(Array.from(filled(300, 3)))
    // the stream is still sound
    expect(producer.tryWrite(filled(50, 4))).toBe(true)
    expect(readAll(consumer)).toEqual([Array.from(filled(50, 4))])
  })

  it('a subclass whose length getter lies is measured by its real size', async () => {
    const { producer, consumer } = channel('lying-getter')
    class Liar extends Uint8Array {
      get length() {
        return 4
      }
    }
    const liar = new Liar(filled(100, 9))
    expect(producer.tryWrite(liar)).toBe(true)
    await producer.write(liar)
    const got = readAll(consumer)
    expect(got.map((m) => m.length)).toEqual([100, 100])
    expect(got[0]).toEqual(Array.from(filled(100, 9)))
  })

  it('a Proxy of a Uint8Array (whose length is -5) is refused with ERR_SHMQ_INVALID_ARGUMENT; nothing is published', async () => {
    const { name, producer, consumer } = channel('lying-proxy')
    const proxy = new Proxy(filled(64, 5), { get: (target, key) => (key === 'length' ? -5 : Reflect.get(target, key)) })
    expect(proxy instanceof Uint8Array).toBe(true)
    expect(thrownBy(() => producer.tryWrite(proxy))?.code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    await expect(producer.write(proxy)).rejects.toMatchObject({ code: 'ERR_SHMQ_INVALID_ARGUMENT' })
    expect(peekU32(name, LAYOUT.PRODUCER_POSITION)).toBe(0)
    expect(consumer.tryRead()).toBe(null)
    // array-likes and other typed arrays are refused too
    for (const notBytes of [{ length: 3, 0: 1, 1: 2, 2: 3 }, new Uint16Array(4), [1, 2, 3], 'abc']) {
      expect(thrownBy(() => producer.tryWrite(notBytes))?.code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    }
    // a Buffer is a Uint8Array
    expect(producer.tryWrite(Buffer.from('buffer'))).toBe(true)
    expect(Buffer.from(consumer.tryRead()).toString()).toBe('buffer')
  })

  it('a message resized (resizable ArrayBuffer) while write() waits for room is refused, not half written', async () => {
    const { producer, consumer } = channel('resized')
    expect(producer.tryWrite(filled(400, 1))).toBe(true)
    expect(producer.tryWrite(filled(400, 2))).toBe(true)
    const buffer = new ArrayBuffer(300, { maxByteLength: 600 })
    const message = new Uint8Array(buffer) // tracks the buffer's length
    message.set(filled(300, 7))
    const pending = producer.write(message)
    buffer.resize(600)
    expect(readAll(consumer)).toHaveLength(2)
    await expect(pending).rejects.toMatchObject({ code: 'ERR_SHMQ_INVALID_ARGUMENT' })
    expect(consumer.tryRead()).toBe(null)
  })
})

describe('reads are not re-entrant', () => {
  it('every read API called inside a drain or drainRaw handler throws ERR_SHMQ_PENDING; the stream stays exactly once, in order', async () => {
    const { producer, consumer } = channel('reentrant', { capacity: 1 << 16 })
    const count = 74
    for (let i = 0; i < count; i++) expect(producer.tryWrite(Uint8Array.of(i, 255 - i))).toBe(true)
    const delivered = []
    const inside = [
      () => consumer.tryRead(),
      () => consumer.drain(() => {}),
      () => consumer.drainRaw(() => {}),
      () => consumer.readSync(0),
      () => consumer.release(),
    ]
    const codes = []
    const asyncCodes = []
    let call = 0
    const take = (first) => {
      delivered.push(first)
      const attempt = inside[call++ % inside.length]
      codes.push(thrownBy(attempt)?.code)
      asyncCodes.push(consumer.read().catch((error) => error.code))
    }
    const half = consumer.drain((m) => take(m[0]), 37)
    const rest = consumer.drainRaw((bytes, offset) => take(bytes[offset]))
    expect(half + rest).toBe(count)
    expect(delivered).toEqual(Array.from({ length: count }, (_, i) => i))
    expect(codes).toEqual(Array(count).fill('ERR_SHMQ_PENDING'))
    expect(await Promise.all(asyncCodes)).toEqual(Array(count).fill('ERR_SHMQ_PENDING'))
    // after the handlers, reading works again and finds nothing left
    expect(consumer.tryRead()).toBe(null)
    expect(producer.tryWrite(Uint8Array.of(7))).toBe(true)
    expect(Array.from(consumer.tryRead())).toEqual([7])
  })

  it('a second read API beside a waiting read() throws ERR_SHMQ_PENDING; the waiting read gets the message', async () => {
    const { producer, consumer } = channel('beside-read')
    const waiting = consumer.read()
    expect(thrownBy(() => consumer.tryRead())?.code).toBe('ERR_SHMQ_PENDING')
    expect(thrownBy(() => consumer.drain(() => {}))?.code).toBe('ERR_SHMQ_PENDING')
    expect(thrownBy(() => consumer.drainRaw(() => {}))?.code).toBe('ERR_SHMQ_PENDING')
    await expect(consumer.read()).rejects.toMatchObject({ code: 'ERR_SHMQ_PENDING' })
    expect(producer.tryWrite(Uint8Array.of(42))).toBe(true)
    expect(Array.from(await waiting)).toEqual([42])
  })
})
