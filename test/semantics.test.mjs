// claim/commit/abort, the end of the stream, reading after the producer has
// gone, readSync() in a worker thread, and how async iteration ends.
import { statSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import {
  FIXTURES,
  LAYOUT,
  exitOf,
  killAll,
  peekU32,
  removeSegment,
  spawnFixture,
  thrownBy,
  uniqueName,
  waitUntil,
} from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Producer, Consumer, ShmqError, unlink } = require('../dist/index.js')
const { lengths, fold, verify, build } = require('./fixtures/common.cjs')

const names = []
const endpoints = []
const workers = []

function name(tag) {
  const n = uniqueName(tag)
  names.push(n)
  return n
}
function track(endpoint) {
  endpoints.push(endpoint)
  return endpoint
}

afterEach(() => {
  for (const worker of workers.splice(0)) void worker.terminate()
  killAll()
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  for (const n of names.splice(0)) removeSegment(n)
})

const bytes = (view) => Array.from(view)
const pattern = (length, salt) => Uint8Array.from({ length }, (_, i) => (i * 7 + salt) & 0xff)

describe('claim / commit / abort', () => {
  it('nothing is visible before commit(); commit(shorter) publishes only the first bytes', () => {
    const n = name('claim')
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = track(Consumer.open(n))
    const view = p.tryClaim(100)
    expect(view).toBeInstanceOf(Uint8Array)
    expect(view.length).toBe(100)
    view.set(pattern(100, 1))
    expect(c.tryRead()).toBe(null)
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(0)

    p.commit(10)
    // one frame: 8-byte header + 10 bytes, rounded up to 8
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(24)
    const message = c.tryRead()
    expect(bytes(message)).toEqual(bytes(pattern(10, 1)))
    expect(c.tryRead()).toBe(null)

    // the next message starts right after the shortened one
    expect(p.tryWrite(Uint8Array.of(42, 43))).toBe(true)
    expect(bytes(c.tryRead())).toEqual([42, 43])

    // commit(0) publishes an empty message; commit() without length keeps all
    p.tryClaim(30).fill(9)
    p.commit(0)
    p.tryClaim(5).set([1, 2, 3, 4, 5])
    p.commit()
    expect(c.tryRead().length).toBe(0)
    expect(bytes(c.tryRead())).toEqual([1, 2, 3, 4, 5])
    expect(c.tryRead()).toBe(null)
  })

  it('tryClaimRaw() claims without a view: an offset into producer.bytes, -1 when full, the same commit/abort rules', () => {
    const n = name('claimraw')
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = track(Consumer.open(n))
    const offset = p.tryClaimRaw(100)
    expect(offset).toBe(LAYOUT.HEADER_BYTES + LAYOUT.FRAME_HEADER_BYTES)
    p.bytes.set(pattern(100, 3), offset)
    expect(c.tryRead()).toBe(null)
    expect(thrownBy(() => p.tryClaimRaw(8)).code).toBe('ERR_SHMQ_PENDING')
    p.commit(60)
    expect(bytes(c.tryRead())).toEqual(bytes(pattern(100, 3)).slice(0, 60))
    // a second claim lands after the first frame; abort publishes nothing
    const second = p.tryClaimRaw(16)
    expect(second).toBe(offset + 64 + LAYOUT.FRAME_HEADER_BYTES)
    p.abort()
    expect(c.tryRead()).toBe(null)
    // full: -1, nothing claimed
    expect(p.tryWrite(new Uint8Array(504))).toBe(true)
    expect(p.tryClaimRaw(504)).toBe(-1)
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)
    p.close()
    expect(thrownBy(() => p.tryClaimRaw(8)).code).toBe('ERR_SHMQ_CLOSED')
    expect(p.bytes.length).toBe(0)
  })

  it('commit() longer than the claim is refused; commit()/abort() leave no claim behind', () => {
    const n = name('claim')
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = track(Consumer.open(n))
    p.tryClaim(8)
    const tooLong = thrownBy(() => p.commit(9))
    expect(tooLong).toBeInstanceOf(ShmqError)
    expect(tooLong.code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    p.commit(8)
    const noClaim = thrownBy(() => p.commit())
    expect(noClaim).toBeInstanceOf(ShmqError)
    expect(noClaim.code).toBe('ERR_SHMQ_PENDING')
    expect(c.tryRead().length).toBe(8)
  })

  it('abort() publishes nothing, and the next message takes the aborted room', async () => {
    const n = name('abort')
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = track(Consumer.open(n))
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)
    expect(bytes(c.tryRead())).toEqual([1])
    const before = peekU32(n, LAYOUT.PRODUCER_POSITION)

    p.tryClaim(64).fill(0xcc)
    p.abort()
    expect(c.tryRead()).toBe(null)
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(before)
    const after = thrownBy(() => p.commit())
    expect(after).toBeInstanceOf(ShmqError)
    expect(after.code).toBe('ERR_SHMQ_PENDING')

    expect(p.tryWrite(Uint8Array.of(2, 3))).toBe(true)
    const message = c.tryRead()
    expect(bytes(message)).toEqual([2, 3])
    // it sits where the aborted frame would have been
    expect(message.byteOffset).toBe(LAYOUT.HEADER_BYTES + before + LAYOUT.FRAME_HEADER_BYTES)
    expect(c.tryRead()).toBe(null)

    // an aborted claim followed by close(): the stream ends with nothing more
    p.tryClaim(10).fill(0xdd)
    p.abort()
    p.close()
    expect(await c.read()).toBe(null)
    expect(c.ended).toBe(true)
  })

  // 1 KiB ring: two 488-byte messages (496-byte frames) put the producer at
  // index 992, 32 bytes before the end; a 100-byte message (112-byte frame)
  // cannot fit there, so a padding frame covers the rest and it goes at index 0.
  function toWrapPoint(n) {
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = track(Consumer.open(n))
    expect(p.tryWrite(new Uint8Array(488).fill(1))).toBe(true)
    expect(p.tryWrite(new Uint8Array(488).fill(2))).toBe(true)
    const seen = []
    expect(c.drain((m) => seen.push(m.length === 488 && m.every((b) => b === m[0]) ? m[0] : -1))).toBe(2)
    expect(seen).toEqual([1, 2])
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(992)
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(992)
    return { p, c }
  }

  it('a claim at the wrap point is one contiguous view at the start of the ring', () => {
    const n = name('wrap')
    const { p, c } = toWrapPoint(n)
    const view = p.tryClaim(100)
    expect(view.length).toBe(100)
    expect(view.byteOffset).toBe(LAYOUT.HEADER_BYTES + LAYOUT.FRAME_HEADER_BYTES)
    view.set(pattern(100, 3))
    expect(c.tryRead()).toBe(null)
    p.commit()
    // 992 + 32 (padding) + 112
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(1136)
    const message = c.tryRead()
    expect(message.byteOffset).toBe(LAYOUT.HEADER_BYTES + LAYOUT.FRAME_HEADER_BYTES)
    expect(bytes(message)).toEqual(bytes(pattern(100, 3)))
    expect(c.tryRead()).toBe(null)
  })

  it('abort() of a claim at the wrap point leaves no padding behind; commit(shorter) after the wrap', () => {
    const n = name('wrap')
    const { p, c } = toWrapPoint(n)
    p.tryClaim(100).fill(0xee)
    p.abort()
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(992)
    expect(c.tryRead()).toBe(null)
    // 3 bytes fit in the 32 left before the end: the message goes at 992, not after padding
    expect(p.tryWrite(Uint8Array.of(5, 6, 7))).toBe(true)
    const small = c.tryRead()
    expect(bytes(small)).toEqual([5, 6, 7])
    expect(small.byteOffset).toBe(LAYOUT.HEADER_BYTES + 992 + LAYOUT.FRAME_HEADER_BYTES)
    // now at 1008: 16 bytes left, a 20-byte claim wraps; commit only 12 of them
    const view = p.tryClaim(20)
    expect(view.byteOffset).toBe(LAYOUT.HEADER_BYTES + LAYOUT.FRAME_HEADER_BYTES)
    view.set(pattern(20, 4))
    p.commit(12)
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(1008 + 16 + 24)
    expect(bytes(c.tryRead())).toEqual(bytes(pattern(12, 4)))
    expect(c.tryRead()).toBe(null)
  })

  it('await claim() on a full ring resolves once the consumer releases room, across the wrap', async () => {
    const n = name('claimwait')
    const p = track(Producer.create(n, { capacity: 1024, spin: 0 }))
    const c = track(Consumer.open(n, { spin: 0 }))
    // two 504-byte messages (512-byte frames) fill the 1 KiB ring
    expect(p.tryWrite(new Uint8Array(504).fill(1))).toBe(true)
    expect(p.tryWrite(new Uint8Array(504).fill(2))).toBe(true)
    expect(p.tryClaim(8)).toBe(null)
    let resolved = false
    const pending = p.claim(8).then((view) => {
      resolved = true
      return view
    })
    // not a tick but a real wait: the claim is parked (its waiting word says so) and unresolved
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(resolved).toBe(false)
    expect(peekU32(n, LAYOUT.PRODUCER_WAITING)).toBe(2)
    const first = c.tryRead()
    expect(first[0]).toBe(1)
    c.release()
    const view = await pending
    expect(view.length).toBe(8)
    expect(view.byteOffset).toBe(LAYOUT.HEADER_BYTES + LAYOUT.FRAME_HEADER_BYTES)
    view.set([9, 8, 7, 6, 5, 4, 3, 2])
    p.commit()
    const second = c.tryRead()
    expect(second.length).toBe(504)
    expect(second[0]).toBe(2)
    expect(bytes(c.tryRead())).toEqual([9, 8, 7, 6, 5, 4, 3, 2])
  })
})

describe('end of stream and a producer that is gone', () => {
  it('the consumer drains what is left after the producer closed and exited, then read() gives null', async () => {
    const n = name('eos')
    const seed = 77
    const c = track(Consumer.create(n, { capacity: 1 << 16, maxMessage: 500 }))
    const producer = spawnFixture('ctl-producer.cjs', { name: n, create: false, seed })
    await producer.next('ready')
    producer.send({ type: 'write', count: 100 })
    const written = await producer.next('written')
    producer.send({ type: 'exit' })
    expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
    expect(peekU32(n, LAYOUT.END_OF_STREAM)).toBe(1)
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(0)

    const nextLength = lengths(seed, 500)
    let checksum = 0x811c9dc5
    let seq = 0
    const take = (m) => {
      const length = nextLength()
      checksum = fold(checksum, seq, length, verify(m, seq, length))
      seq++
    }
    expect(c.ended).toBe(false)
    for (let i = 0; i < 10; i++) take(await c.read())
    expect(c.ended).toBe(false)
    expect(c.drain(take)).toBe(90)
    expect(seq).toBe(100)
    expect(checksum).toBe(written.checksum)
    expect(c.ended).toBe(true)
    expect(await c.read()).toBe(null)
    expect(c.tryRead()).toBe(null)
    expect(c.readSync(0)).toBe(null)
    expect(c.drain(take)).toBe(0)
    let iterations = 0
    for await (const m of c) iterations += m.length + 1
    expect(iterations).toBe(0)
  })

  it('a consumer that opens after the producer closed and exited reads everything, then its iterator ends', async () => {
    const n = name('eos')
    const seed = 78
    const producer = spawnFixture('ctl-producer.cjs', { name: n, create: true, capacity: 1 << 16, maxMessage: 500, seed })
    await producer.next('ready')
    producer.send({ type: 'write', count: 100 })
    const written = await producer.next('written')
    producer.send({ type: 'exit' })
    expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })

    const c = track(Consumer.open(n))
    const nextLength = lengths(seed, c.maxMessage)
    let checksum = 0x811c9dc5
    let seq = 0
    for await (const m of c) {
      const length = nextLength()
      checksum = fold(checksum, seq, length, verify(m, seq, length))
      seq++
    }
    expect(seq).toBe(100)
    expect(checksum).toBe(written.checksum)
    expect(c.ended).toBe(true)
    expect(await c.read()).toBe(null)
  })

  it('a for-await loop parked in another process ends when the producer closes', async () => {
    const n = name('iterend')
    const seed = 79
    const count = 5000
    const consumer = spawnFixture('stream-consumer.cjs', { name: n, create: true, capacity: 4096, count, seed, mode: 'iterate', notifyAt: count })
    await consumer.next('ready')
    const producer = spawnFixture('ctl-producer.cjs', { name: n, create: false, seed })
    await producer.next('ready')
    producer.send({ type: 'write', count })
    const written = await producer.next('written')
    await consumer.next('progress')
    // the consumer has every message and is parked on the event loop for the next
    await waitUntil(() => peekU32(n, LAYOUT.CONSUMER_WAITING) === 2, 'consumer parked')
    producer.send({ type: 'close' })
    await producer.next('closed')
    producer.send({ type: 'exit' })
    const done = await consumer.next('done')
    expect(done.count).toBe(count)
    expect(done.checksum).toBe(written.checksum)
    expect(done.endedAfter).toBe(true)
    expect(done.nullAfter).toBe(true)
    expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
    expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })
  })
})

describe('async iteration', () => {
  it('break out of for-await releases the last message; reading goes on after it', async () => {
    const n = name('iterbreak')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    for (const value of [1, 2, 3]) expect(p.tryWrite(Uint8Array.of(value))).toBe(true)
    const seen = []
    for await (const m of c) {
      seen.push(m[0])
      if (m[0] === 2) break
    }
    expect(seen).toEqual([1, 2])
    // two 16-byte frames released
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(32)
    expect(c.ended).toBe(false)
    expect(bytes(c.tryRead())).toEqual([3])
  })

  it('an iterator waiting for a message ends when the consumer is closed', async () => {
    const n = name('iterclose')
    const c = Consumer.create(n, { capacity: 4096, spin: 0 })
    const iterator = c[Symbol.asyncIterator]()
    const next = iterator.next()
    let settled = false
    void next.then(() => (settled = true))
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(settled).toBe(false)
    expect(peekU32(n, LAYOUT.CONSUMER_WAITING)).toBe(2) // parked, not merely unscheduled
    c.close()
    expect(await next).toEqual({ value: undefined, done: true })
    expect(await iterator.next()).toEqual({ value: undefined, done: true })
  })
})

describe('closing from inside a loop', () => {
  // close() while the iterator is parked in read() ends the loop quietly (the
  // test above); close() while the loop body runs (e.g. from a shutdown
  // handler during `await handle(m)`) must end it the same way, not make the
  // for-await throw ERR_SHMQ_CLOSED: which one a program gets would otherwise
  // depend on where the loop happened to be when close() was called.
  it('closing the consumer while a for-await body runs ends the loop without an error', async () => {
    const n = name('iterclose2')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = Consumer.open(n)
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)
    expect(p.tryWrite(Uint8Array.of(2))).toBe(true)
    const seen = []
    let thrown = null
    try {
      for await (const m of c) {
        seen.push(m[0])
        await new Promise(setImmediate) // work in progress when the program shuts the consumer
        c.close()
      }
    } catch (error) {
      thrown = error
    }
    expect(seen).toEqual([1])
    expect(thrown).toBe(null)
    expect(c.ended).toBe(true)
  })

  it('close() from inside a drain handler stops the drain after that message; the next consumer resumes after it', () => {
    const n = name('drainclose')
    const p = track(Producer.create(n, { capacity: 4096 }))
    for (let i = 0; i < 5; i++) expect(p.tryWrite(Uint8Array.of(i))).toBe(true)
    const c = Consumer.open(n)
    const seen = []
    const count = c.drain((m) => {
      seen.push(m[0])
      if (m[0] === 1) c.close()
    })
    expect(count).toBe(2)
    expect(seen).toEqual([0, 1])
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(32)
    const next = track(Consumer.open(n))
    expect(bytes(next.tryRead())).toEqual([2])
  })
})

describe('readSync()', () => {
  it('returns null after a short timeout on an empty ring', () => {
    const n = name('rs')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    expect(c.readSync(10)).toBe(null)
    expect(c.ended).toBe(false)
    expect(p.tryWrite(Uint8Array.of(4))).toBe(true)
    expect(bytes(c.readSync(10))).toEqual([4])
  })

  /** Starts readsync-worker.cjs; returns { next(type), exit } for its messages and exit code. */
  function startWorker(workerData) {
    const worker = new Worker(path.join(FIXTURES, 'readsync-worker.cjs'), { workerData })
    workers.push(worker)
    const inbox = []
    let notify = () => {}
    let failure = null
    worker.on('message', (m) => {
      inbox.push(m)
      notify()
    })
    worker.on('error', (error) => {
      failure = error
      notify()
    })
    const exit = new Promise((resolve) => worker.on('exit', resolve))
    const next = async (type) => {
      for (;;) {
        if (failure) throw failure
        const found = inbox.findIndex((m) => m.type === type || m.type === 'error')
        if (found !== -1) {
          const m = inbox.splice(found, 1)[0]
          if (m.type === 'error') throw new Error(`worker: ${m.code} ${m.message}`)
          return m
        }
        await new Promise((resolve) => (notify = resolve))
      }
    }
    return { next, exit }
  }

  it('in a worker thread that opens the Consumer itself, gets what a producer in another process writes', async () => {
    const n = name('rsworker')
    const seed = 80
    const count = 20_000
    const producer = spawnFixture('ctl-producer.cjs', { name: n, create: true, capacity: 16384, seed })
    await producer.next('ready')
    const { next, exit: workerExit } = startWorker({ name: n, count, seed })

    const empty = await next('empty')
    expect(empty).toEqual({ type: 'empty', isNull: true, ended: false })
    producer.send({ type: 'write', count })
    const written = await producer.next('written')
    producer.send({ type: 'close' })
    await producer.next('closed')
    producer.send({ type: 'exit' })

    const done = await next('done')
    expect(done.count).toBe(count)
    expect(done.checksum).toBe(written.checksum)
    expect(done.nullAtEnd).toBe(true)
    expect(done.endedAfter).toBe(true)
    expect(await workerExit).toBe(0)
    expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
  })
})

describe('writes in flight', () => {
  it('write() calls not awaited (64 in flight) complete in call order, across processes', async () => {
    const n = name('pipeline')
    const count = 50_000
    const seed = 81
    const consumer = spawnFixture('stream-consumer.cjs', { name: n, create: true, capacity: 4096, count, seed, mode: 'drain' })
    await consumer.next('ready')
    const producer = spawnFixture('stream-producer.cjs', { name: n, create: false, count, seed, mode: 'pipelined' })
    const [sent, received] = await Promise.all([producer.next('done'), consumer.next('done')])
    expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
    expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })
    expect(received.count).toBe(count)
    expect(received.checksum).toBe(sent.checksum)
    expect(received.endedAfter).toBe(true)
  })

  it('tryWrite() does not overtake write() calls still waiting for room', async () => {
    const n = name('overtake')
    const p = track(Producer.create(n, { capacity: 1024, spin: 0 }))
    const c = track(Consumer.open(n, { spin: 0 }))
    expect(p.tryWrite(new Uint8Array(504).fill(1))).toBe(true)
    expect(p.tryWrite(new Uint8Array(504).fill(2))).toBe(true)
    const waiting = p.write(Uint8Array.of(3))
    // room appears, but a write is queued: tryWrite must not jump ahead of it
    expect(c.tryRead()[0]).toBe(1)
    c.release()
    expect(p.tryWrite(Uint8Array.of(4))).toBe(false)
    await waiting
    expect(p.tryWrite(Uint8Array.of(4))).toBe(true)
    expect(c.tryRead()[0]).toBe(2)
    expect(bytes(c.tryRead())).toEqual([3])
    expect(bytes(c.tryRead())).toEqual([4])
  })
})

describe('drain and release', () => {
  function filled(n, count) {
    const p = track(Producer.create(n, { capacity: 4096 }))
    for (let i = 0; i < count; i++) expect(p.tryWrite(Uint8Array.of(i, i + 100))).toBe(true)
    return p
  }

  it('drain(..., { hold: true }) keeps batches unreleased and their bytes valid until release(); a consumer killed meanwhile leaves them to the next one', async () => {
    const n = name('hold')
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = Consumer.open(n)
    const views = []
    for (let i = 0; i < 3; i++) expect(p.tryWrite(new Uint8Array(200).fill(i + 1))).toBe(true)
    expect(c.drain((m) => views.push(m), 2, { hold: true })).toBe(2)
    expect(c.drainRaw((bytes, offset, length) => views.push(bytes.subarray(offset, offset + length)), Infinity, { hold: true })).toBe(1)
    // nothing was released: the ring is still full for the producer, and every held view intact
    expect(p.tryWrite(new Uint8Array(400))).toBe(false)
    expect(views.map((v) => [v.length, v[0], v[199]])).toEqual([[200, 1, 1], [200, 2, 2], [200, 3, 3]])
    expect(thrownBy(() => c.drain(() => {}, 1, { hold: 'yes' })).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    // a consumer in another process drains with hold and is killed before releasing
    expect(p.tryWrite(Uint8Array.of(9))).toBe(true)
    c.release()
    expect(p.tryWrite(new Uint8Array(300).fill(7))).toBe(true)
    c.close()
    const holder = spawnFixture('hold-consumer.cjs', { name: n })
    expect(await holder.next('held')).toEqual({ type: 'held', lengths: [1, 300] })
    holder.child.kill('SIGKILL')
    expect(await exitOf(holder)).toEqual({ code: null, signal: 'SIGKILL' })
    // the successor gets the held messages again, first
    const next = track(Consumer.open(n))
    expect(Array.from(next.tryRead() ?? [])).toEqual([9])
    expect(Array.from(next.tryRead() ?? []).slice(0, 2)).toEqual([7, 7])
    expect(next.tryRead()).toBe(null)
  })

  it('drain(handler, limit) takes at most `limit`; drainRaw gives (bytes, offset, length)', () => {
    const n = name('drain')
    filled(n, 10)
    const c = track(Consumer.open(n))
    const seen = []
    expect(c.drain((m) => seen.push(bytes(m)), 3)).toBe(3)
    expect(seen).toEqual([[0, 100], [1, 101], [2, 102]])
    const raw = []
    expect(c.drainRaw((all, offset, length) => raw.push(bytes(all.subarray(offset, offset + length))), 4)).toBe(4)
    expect(raw).toEqual([[3, 103], [4, 104], [5, 105], [6, 106]])
    expect(c.drain((m) => seen.push(bytes(m)))).toBe(3)
    expect(seen.slice(3)).toEqual([[7, 107], [8, 108], [9, 109]])
    expect(c.drain(() => {})).toBe(0)
  })

  it('a drain handler that throws: the message it threw on counts as read, the rest stay', () => {
    const n = name('drainthrow')
    filled(n, 5)
    const c = track(Consumer.open(n))
    const boom = new Error('boom')
    const seen = []
    expect(() =>
      c.drain((m) => {
        seen.push(m[0])
        if (m[0] === 2) throw boom
      }),
    ).toThrow(boom)
    expect(seen).toEqual([0, 1, 2])
    // three 16-byte frames released
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(48)
    expect(bytes(c.tryRead())).toEqual([3, 103])
  })

  it('release() gives the room back at once; a new consumer resumes after what the last one released', () => {
    const n = name('resume')
    filled(n, 5)
    const first = Consumer.open(n)
    expect(first.tryRead()[0]).toBe(0)
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(0)
    first.release()
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(16)
    expect(first.tryRead()[0]).toBe(1)
    expect(first.tryRead()[0]).toBe(2)
    // close() releases the message it was reading: it is not delivered again
    first.close()
    expect(peekU32(n, LAYOUT.CONSUMER_POSITION)).toBe(48)
    const second = track(Consumer.open(n))
    expect(bytes(second.tryRead())).toEqual([3, 103])
    expect(bytes(second.tryRead())).toEqual([4, 104])
    expect(second.tryRead()).toBe(null)
  })
})

describe('segment files', () => {
  it('create makes /dev/shm/NAME and two FIFOs, mode 0600 by default (or as asked); unlink removes all three', () => {
    const n = name('files')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const files = [`/dev/shm/${n}`, `/dev/shm/.shmq-${n}.wake-consumer`, `/dev/shm/.shmq-${n}.wake-producer`]
    expect(statSync(files[0]).isFile()).toBe(true)
    expect(statSync(files[0]).size).toBe(LAYOUT.HEADER_BYTES + 4096)
    expect(statSync(files[1]).isFIFO()).toBe(true)
    expect(statSync(files[2]).isFIFO()).toBe(true)
    for (const file of files) expect(statSync(file).mode & 0o777).toBe(0o600)
    unlink(n)
    for (const file of files) expect(existsSync(file)).toBe(false)
    // the open producer still works on its mapping
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)

    const m = name('files')
    track(Consumer.create(m, { capacity: 4096, mode: 0o640 }))
    for (const file of [`/dev/shm/${m}`, `/dev/shm/.shmq-${m}.wake-consumer`, `/dev/shm/.shmq-${m}.wake-producer`]) {
      expect(statSync(file).mode & 0o777).toBe(0o640)
    }
  })

  it('after unlink, attached endpoints keep working (parked reads too), and the name can be created anew independently', async () => {
    const n = name('reuse')
    const oldP = track(Producer.create(n, { capacity: 4096, spin: 0 }))
    const oldC = track(Consumer.open(n, { spin: 0 }))
    unlink(n)
    const newP = track(Producer.create(n, { capacity: 8192, spin: 0 }))
    const newC = track(Consumer.open(n, { spin: 0 }))
    expect(newC.capacity).toBe(8192)
    expect(oldC.capacity).toBe(4096)

    // a parked read on the unlinked segment is woken through its (unlinked) FIFO
    const oldRead = oldC.read()
    const newRead = newC.read()
    expect(oldP.tryWrite(Uint8Array.of(1))).toBe(true)
    expect(bytes(await oldRead)).toEqual([1])
    expect(newP.tryWrite(Uint8Array.of(2))).toBe(true)
    expect(bytes(await newRead)).toEqual([2])
    // nothing crossed over
    expect(oldC.tryRead()).toBe(null)
    expect(newC.tryRead()).toBe(null)
    oldP.close()
    expect(await oldC.read()).toBe(null)
    expect(newC.ended).toBe(false)
  })

  it('open({ timeout }) in another process waits for the segment to be created', async () => {
    const n = name('later')
    const seed = 82
    // the consumer starts first: its open() waits (up to 60 s) for the producer to create the segment
    const consumer = spawnFixture('stream-consumer.cjs', { name: n, create: false, openTimeout: 60_000, count: 1000, seed, mode: 'read', announceOpen: true })
    await consumer.line((l) => l.opening === true)
    expect(existsSync(`/dev/shm/${n}`)).toBe(false)
    const producer = spawnFixture('stream-producer.cjs', { name: n, create: true, capacity: 4096, count: 1000, seed, mode: 'write' })
    await producer.next('ready')
    const [sent, received] = await Promise.all([producer.next('done'), consumer.next('done')])
    expect(received.count).toBe(1000)
    expect(received.checksum).toBe(sent.checksum)
    expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
    expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })
  })
})

describe('threads of one process', () => {
  it('a worker reading with readSync() and a main-thread producer parked in await write() wake each other', async () => {
    const n = name('threads')
    const seed = 83
    const count = 20_000
    const p = track(Producer.create(n, { capacity: 4096 }))
    const worker = new Worker(path.join(FIXTURES, 'readsync-worker.cjs'), { workerData: { name: n, count, seed } })
    workers.push(worker)
    const messages = []
    let notify = () => {}
    worker.on('message', (m) => {
      messages.push(m)
      notify()
    })
    worker.on('error', (error) => {
      messages.push({ type: 'error', message: String(error && error.stack) })
      notify()
    })
    const exit = new Promise((resolve) => worker.on('exit', resolve))
    const next = async () => {
      while (messages.length === 0) await new Promise((resolve) => (notify = resolve))
      return messages.shift()
    }
    expect(await next()).toEqual({ type: 'empty', isNull: true, ended: false })

    // ~1 KiB messages into 4 KiB: the main thread keeps parking for room the worker frees
    const nextLength = lengths(seed, p.maxMessage)
    const scratch = new Uint8Array(p.maxMessage + 16)
    let checksum = 0x811c9dc5
    for (let seq = 0; seq < count; seq++) {
      const length = nextLength()
      checksum = fold(checksum, seq, length, build(scratch, seed, seq, length))
      await p.write(scratch.subarray(0, length))
    }
    p.close()
    const done = await next()
    expect(done).toEqual({ type: 'done', count, checksum, nullAtEnd: true, endedAfter: true })
    expect(await exit).toBe(0)
  })
})
