// Every error code, each triggered for real. Each check: a ShmqError with the code.
import { execFileSync } from 'node:child_process'
import { closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, rmSync, rmdirSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import {
  LAYOUT,
  exitOf,
  killAll,
  peekU32,
  poke,
  rejectionOf,
  removeSegment,
  spawnFixture,
  thrownBy,
  u16,
  u32,
  uniqueName,
} from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Producer, Consumer, ShmqError, unlink } = require('../dist/index.js')

const names = []
const endpoints = []
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
  killAll()
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  for (const n of names.splice(0)) removeSegment(n)
})

function expectCode(error, code) {
  expect(error, String(error && error.stack)).toBeInstanceOf(ShmqError)
  expect(error.code, String(error.stack)).toBe(code)
}
/** `fn` throws a ShmqError with `code`. */
function throwsCode(fn, code) {
  const error = thrownBy(fn)
  expectCode(error, code)
  return error
}
/** `promise` rejects with a ShmqError with `code`. */
async function rejectsCode(promise, code) {
  expect(promise).toBeInstanceOf(Promise)
  expectCode(await rejectionOf(promise), code)
}

describe('ERR_SHMQ_INVALID_NAME', () => {
  const bad = {
    'with /': 'a/b',
    'too long (201 chars)': 'x'.repeat(201),
    empty: '',
    "starting with '.'": '.hidden',
    "starting with '-'": '-dash',
    'not a string': 42,
  }
  for (const [what, badName] of Object.entries(bad)) {
    it(`name ${what}`, () => {
      throwsCode(() => Producer.create(badName, { capacity: 4096 }), 'ERR_SHMQ_INVALID_NAME')
      throwsCode(() => Consumer.create(badName, { capacity: 4096 }), 'ERR_SHMQ_INVALID_NAME')
      throwsCode(() => Producer.open(badName), 'ERR_SHMQ_INVALID_NAME')
      throwsCode(() => Consumer.open(badName), 'ERR_SHMQ_INVALID_NAME')
      throwsCode(() => unlink(badName), 'ERR_SHMQ_INVALID_NAME')
    })
  }

  it('a 200-character name is accepted (the bound itself)', () => {
    const n = `${name('n')}-`.padEnd(200, 'z')
    names.push(n)
    expect(n.length).toBe(200)
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)
    expect(c.tryRead()[0]).toBe(1)
    unlink(n)
    expect(existsSync(`/dev/shm/${n}`)).toBe(false)
  })
})

describe('ERR_SHMQ_INVALID_ARGUMENT', () => {
  it('capacity not a power of two, too small, too large, not an integer', () => {
    for (const capacity of [3000, 4095, 512, 1 << 9, 2 ** 31, 2 ** 32, 1500.5, '4096', NaN]) {
      const n = name('cap')
      throwsCode(() => Producer.create(n, { capacity }), 'ERR_SHMQ_INVALID_ARGUMENT')
      throwsCode(() => Consumer.create(n, { capacity }), 'ERR_SHMQ_INVALID_ARGUMENT')
      // nothing was left behind
      expect(existsSync(`/dev/shm/${n}`)).toBe(false)
    }
  })

  it('bad maxMessage', () => {
    // for a 4096-byte ring the bound is 4096 / 2 - 8 = 2040
    for (const maxMessage of [2041, 4096, -1, 1.5, '100', NaN]) {
      const n = name('max')
      throwsCode(() => Producer.create(n, { capacity: 4096, maxMessage }), 'ERR_SHMQ_INVALID_ARGUMENT')
      expect(existsSync(`/dev/shm/${n}`)).toBe(false)
    }
    const n = name('max')
    const p = track(Producer.create(n, { capacity: 4096, maxMessage: 2040 }))
    expect(p.maxMessage).toBe(2040)
  })

  it('a payload that is not a Uint8Array', async () => {
    const n = name('payload')
    const p = track(Producer.create(n, { capacity: 4096 }))
    for (const payload of ['hello', [1, 2, 3], new ArrayBuffer(4), 42, null, undefined, { length: 1 }]) {
      throwsCode(() => p.tryWrite(payload), 'ERR_SHMQ_INVALID_ARGUMENT')
      await rejectsCode(p.write(payload), 'ERR_SHMQ_INVALID_ARGUMENT')
    }
    // nothing was written
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(0)
  })

  it('bad spin', () => {
    for (const spin of [-1, 'fast', NaN, 2_000_000]) {
      const n = name('spin')
      throwsCode(() => Producer.create(n, { capacity: 4096, spin }), 'ERR_SHMQ_INVALID_ARGUMENT')
      throwsCode(() => Consumer.create(n, { capacity: 4096, spin }), 'ERR_SHMQ_INVALID_ARGUMENT')
      expect(existsSync(`/dev/shm/${n}`)).toBe(false)
    }
    const n = name('spin')
    track(Producer.create(n, { capacity: 4096 }))
    throwsCode(() => Consumer.open(n, { spin: -5 }), 'ERR_SHMQ_INVALID_ARGUMENT')
  })

  it('bad timeout (open, readSync)', () => {
    const n = name('timeout')
    track(Producer.create(n, { capacity: 4096 }))
    for (const timeout of [-1, NaN, 'soon']) {
      throwsCode(() => Consumer.open(n, { timeout }), 'ERR_SHMQ_INVALID_ARGUMENT')
    }
    const c = track(Consumer.open(n))
    for (const timeout of [-1, NaN, 'soon']) throwsCode(() => c.readSync(timeout), 'ERR_SHMQ_INVALID_ARGUMENT')
  })

  it('bad claim length, mode, drain limit and handler', () => {
    const n = name('misc')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    for (const length of [-1, 1.5, 'x']) throwsCode(() => p.tryClaim(length), 'ERR_SHMQ_INVALID_ARGUMENT')
    throwsCode(() => Producer.create(name('mode'), { capacity: 4096, mode: 0o1000 }), 'ERR_SHMQ_INVALID_ARGUMENT')
    throwsCode(() => c.drain(() => {}, -1), 'ERR_SHMQ_INVALID_ARGUMENT')
    throwsCode(() => c.drain('not a function'), 'ERR_SHMQ_INVALID_ARGUMENT')
  })
})

describe('ERR_SHMQ_TOO_LARGE', () => {
  it('a message larger than maxMessage (default and explicit)', async () => {
    const n = name('big')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    throwsCode(() => p.tryWrite(new Uint8Array(2041)), 'ERR_SHMQ_TOO_LARGE')
    await rejectsCode(p.write(new Uint8Array(2041)), 'ERR_SHMQ_TOO_LARGE')
    throwsCode(() => p.tryClaim(2041), 'ERR_SHMQ_TOO_LARGE')
    await rejectsCode(p.claim(5000), 'ERR_SHMQ_TOO_LARGE')
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(0)
    expect(p.tryWrite(new Uint8Array(2040).fill(3))).toBe(true)
    expect(c.tryRead().length).toBe(2040)

    const m = name('big')
    const q = track(Producer.create(m, { capacity: 4096, maxMessage: 100 }))
    throwsCode(() => q.tryWrite(new Uint8Array(101)), 'ERR_SHMQ_TOO_LARGE')
    expect(q.tryWrite(new Uint8Array(100))).toBe(true)
  })
})

describe('ERR_SHMQ_CLOSED', () => {
  it('write after close', async () => {
    const n = name('closed')
    const p = Producer.create(n, { capacity: 4096 })
    p.close()
    expect(p.closed).toBe(true)
    throwsCode(() => p.tryWrite(Uint8Array.of(1)), 'ERR_SHMQ_CLOSED')
    await rejectsCode(p.write(Uint8Array.of(1)), 'ERR_SHMQ_CLOSED')
    throwsCode(() => p.tryClaim(1), 'ERR_SHMQ_CLOSED')
    await rejectsCode(p.claim(1), 'ERR_SHMQ_CLOSED')
  })

  it('a write() waiting for room rejects when the producer is closed', async () => {
    const n = name('closed')
    const p = Producer.create(n, { capacity: 1024, spin: 0 })
    track(Consumer.open(n))
    expect(p.tryWrite(new Uint8Array(504))).toBe(true)
    expect(p.tryWrite(new Uint8Array(504))).toBe(true)
    const pending = p.write(new Uint8Array(10))
    p.close()
    await rejectsCode(pending, 'ERR_SHMQ_CLOSED')
  })

  it('read after close', async () => {
    const n = name('closed')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = Consumer.open(n)
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)
    c.close()
    expect(c.closed).toBe(true)
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CLOSED')
    await rejectsCode(c.read(), 'ERR_SHMQ_CLOSED')
    throwsCode(() => c.readSync(0), 'ERR_SHMQ_CLOSED')
    throwsCode(() => c.drain(() => {}), 'ERR_SHMQ_CLOSED')
  })

  it('Producer.open on a stream its producer ended with close()', () => {
    const n = name('closed')
    Producer.create(n, { capacity: 4096 }).close()
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_CLOSED')
    // a consumer may still open it, and sees the end
    const c = track(Consumer.open(n))
    expect(c.ended).toBe(true)
  })
})

describe('ERR_SHMQ_BUSY', () => {
  it('a second producer while the first lives in another process', async () => {
    const n = name('busy')
    const holder = spawnFixture('ctl-producer.cjs', { name: n, create: true, capacity: 4096 })
    const ready = await holder.next('ready')
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(ready.pid)
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_BUSY')
    // the failed attach changed nothing
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(ready.pid)
    holder.send({ type: 'exit' })
    expect(await exitOf(holder), holder.describe()).toEqual({ code: 0, signal: null })
  })

  it('a second producer in another process while this process holds the role', async () => {
    const n = name('busy')
    track(Producer.create(n, { capacity: 4096 }))
    const other = spawnFixture('try-open.cjs', { name: n, role: 'producer' }, { ipc: false })
    expect(await exitOf(other), other.describe()).toEqual({ code: 0, signal: null })
    const result = JSON.parse(other.stdout)
    expect(result.ok).toBe(false)
    expect(result.error.isShmqError).toBe(true)
    expect(result.error.code).toBe('ERR_SHMQ_BUSY')
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(process.pid)
  })

  it('a second consumer (and producer) in the same process', () => {
    const n = name('busy')
    track(Consumer.create(n, { capacity: 4096 }))
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_BUSY')
    track(Producer.open(n))
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_BUSY')
  })

  it("a dead producer's slot is taken over, and what it committed is kept", async () => {
    const n = name('dead')
    const seed = 5
    const dying = spawnFixture('ctl-producer.cjs', { name: n, create: true, capacity: 4096, seed })
    const ready = await dying.next('ready')
    dying.send({ type: 'write', count: 3 })
    await dying.next('written')
    dying.send({ type: 'die' }) // process.exit(0) without close()
    expect(await exitOf(dying), dying.describe()).toEqual({ code: 0, signal: null })
    // the dead process is still recorded as the producer, and the stream was not ended
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(ready.pid)
    expect(peekU32(n, LAYOUT.END_OF_STREAM)).toBe(0)

    const p = track(Producer.open(n))
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(process.pid)
    expect(p.tryWrite(Uint8Array.of(0xab))).toBe(true)
    const c = track(Consumer.open(n))
    const { lengths, verify } = require('./fixtures/common.cjs')
    const nextLength = lengths(seed, c.maxMessage)
    for (let seq = 0; seq < 3; seq++) verify(c.tryRead(), seq, nextLength())
    expect(Array.from(c.tryRead())).toEqual([0xab])
    expect(c.tryRead()).toBe(null)
  })
})

describe('ERR_SHMQ_PENDING', () => {
  it('writing while a claim is pending', async () => {
    const n = name('pending')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    p.tryClaim(10).fill(1)
    throwsCode(() => p.tryWrite(Uint8Array.of(2)), 'ERR_SHMQ_PENDING')
    await rejectsCode(p.write(Uint8Array.of(2)), 'ERR_SHMQ_PENDING')
    throwsCode(() => p.tryClaim(4), 'ERR_SHMQ_PENDING')
    await rejectsCode(p.claim(4), 'ERR_SHMQ_PENDING')
    p.commit()
    expect(Array.from(c.tryRead())).toEqual(new Array(10).fill(1))
    expect(c.tryRead()).toBe(null)
  })

  it('two concurrent read() calls', async () => {
    const n = name('pending')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n, { spin: 0 }))
    const first = c.read()
    await rejectsCode(c.read(), 'ERR_SHMQ_PENDING')
    throwsCode(() => c.readSync(0), 'ERR_SHMQ_PENDING')
    expect(p.tryWrite(Uint8Array.of(7))).toBe(true)
    expect(Array.from(await first)).toEqual([7])
    // once it settled, read() works again
    expect(p.tryWrite(Uint8Array.of(8))).toBe(true)
    expect(Array.from(await c.read())).toEqual([8])
  })
})

describe('foreign and damaged segments', () => {
  it('ERR_SHMQ_NOT_SHMQ: a file of the right size full of garbage', () => {
    const n = name('garbage')
    writeFileSync(`/dev/shm/${n}`, Buffer.alloc(LAYOUT.HEADER_BYTES + 4096, 0xa5), { mode: 0o600 })
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_NOT_SHMQ')
    throwsCode(() => Producer.open(n, { timeout: 100 }), 'ERR_SHMQ_NOT_SHMQ')
    // and one too small to hold a header
    const m = name('garbage')
    writeFileSync(`/dev/shm/${m}`, Buffer.alloc(100, 0x5a), { mode: 0o600 })
    throwsCode(() => Consumer.open(m), 'ERR_SHMQ_NOT_SHMQ')
  })

  it('ERR_SHMQ_VERSION: major version field rewritten', () => {
    const n = name('version')
    Consumer.create(n, { capacity: 4096 }).close()
    poke(n, LAYOUT.VERSION, u16(3))
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_VERSION')
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_VERSION')
    poke(n, LAYOUT.VERSION, u16(0xffff))
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_VERSION')
    // a segment of shmq 0.1 (major 1) is refused for what it is, never as corrupt
    poke(n, LAYOUT.VERSION, u16(1))
    const error = throwsCode(() => Consumer.open(n), 'ERR_SHMQ_VERSION')
    expect(error.message).toMatch(/shmq 0\.1/)
    expect(error.message).not.toMatch(/unlink/)
    poke(n, LAYOUT.VERSION, u16(2))
    track(Consumer.open(n))
  })

  it('ERR_SHMQ_CORRUPT: header capacity disagrees with the segment size', () => {
    const n = name('corrupt')
    Consumer.create(n, { capacity: 4096 }).close()
    poke(n, LAYOUT.CAPACITY, u32(2048))
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_CORRUPT')
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_CORRUPT')
    poke(n, LAYOUT.CAPACITY, u32(3000)) // not a power of two
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_CORRUPT')
  })

  it('ERR_SHMQ_CORRUPT: producer position beyond the capacity, seen by an open consumer and by a new one', async () => {
    const n = name('corrupt')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    poke(n, LAYOUT.PRODUCER_POSITION, u32(4096 + 64))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
    await rejectsCode(c.read(), 'ERR_SHMQ_CORRUPT')
    throwsCode(() => c.drain(() => {}), 'ERR_SHMQ_CORRUPT')
    throwsCode(() => c.readSync(0), 'ERR_SHMQ_CORRUPT')
    p.close()
    c.close()
    // a new opener checks the distance once attached (its own position then stands still)
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_CORRUPT')
    poke(n, LAYOUT.END_OF_STREAM, u32(0))
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_CORRUPT')
    // and leaves both roles free
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(0)
    expect(peekU32(n, LAYOUT.CONSUMER_PID)).toBe(0)
    // a misaligned position is refused at open
    poke(n, LAYOUT.PRODUCER_POSITION, u32(12))
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_CORRUPT')
  })

  it('ERR_SHMQ_CORRUPT at open: a producer position behind the consumer position (the producer would overwrite unread room)', () => {
    const n = name('behind')
    const c = track(Consumer.create(n, { capacity: 4096 }))
    c.close()
    // the consumer has released 64 bytes that the producer never published
    poke(n, LAYOUT.CONSUMER_POSITION, u32(64))
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_CORRUPT')
    throwsCode(() => Consumer.open(n), 'ERR_SHMQ_CORRUPT')
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(0)
    expect(peekU32(n, LAYOUT.CONSUMER_PID)).toBe(0)
    // the same distance across the 2^32 wrap is fine: producer 8 bytes ahead of 2^32 - 8
    poke(n, LAYOUT.CONSUMER_POSITION, u32(-8))
    poke(n, LAYOUT.PRODUCER_POSITION, u32(0))
    const p = track(Producer.open(n))
    expect(p.tryWrite(Uint8Array.of(1))).toBe(true)
  })

  it('ERR_SHMQ_CORRUPT: a frame length larger than the ring', async () => {
    const n = name('corrupt')
    const p = track(Producer.create(n, { capacity: 4096 }))
    const c = track(Consumer.open(n))
    expect(p.tryWrite(new Uint8Array(16).fill(1))).toBe(true)
    // the frame at ring index 0: its length word
    expect(peekU32(n, LAYOUT.HEADER_BYTES)).toBe(16)
    poke(n, LAYOUT.HEADER_BYTES, u32(4096 * 2))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
    await rejectsCode(c.read(), 'ERR_SHMQ_CORRUPT')
    throwsCode(() => c.drain(() => {}), 'ERR_SHMQ_CORRUPT')
    // a length within maxMessage but past the published data
    poke(n, LAYOUT.HEADER_BYTES, u32(2000))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
    // an unknown frame type
    poke(n, LAYOUT.HEADER_BYTES, u32(16))
    poke(n, LAYOUT.HEADER_BYTES + 4, u32(7))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
  })

  it('ERR_SHMQ_CORRUPT: a negative frame length, a misaligned producer position, a padding frame of the wrong length', () => {
    const n = name('corrupt')
    const p = track(Producer.create(n, { capacity: 1024 }))
    const c = track(Consumer.open(n))
    expect(p.tryWrite(new Uint8Array(16))).toBe(true)
    // (the consumer has not loaded the producer position yet)
    poke(n, LAYOUT.PRODUCER_POSITION, u32(20))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
    poke(n, LAYOUT.PRODUCER_POSITION, u32(24))
    poke(n, LAYOUT.HEADER_BYTES, u32(-8))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
    poke(n, LAYOUT.HEADER_BYTES, u32(16))
    expect(c.tryRead().length).toBe(16)

    // to index 992 (24 + 496 + 472), then a frame that cannot fit before the end
    expect(p.tryWrite(new Uint8Array(488))).toBe(true)
    expect(p.tryWrite(new Uint8Array(464))).toBe(true)
    expect(c.drain(() => {})).toBe(2)
    expect(peekU32(n, LAYOUT.PRODUCER_POSITION)).toBe(992)
    expect(p.tryWrite(new Uint8Array(100).fill(3))).toBe(true)
    // the padding frame at 992 covers the 32 - 8 bytes to the ring's end
    expect(peekU32(n, LAYOUT.HEADER_BYTES + 992)).toBe(24)
    expect(peekU32(n, LAYOUT.HEADER_BYTES + 992 + 4)).toBe(LAYOUT.PADDING_TYPE_WORD)
    poke(n, LAYOUT.HEADER_BYTES + 992, u32(16))
    throwsCode(() => c.tryRead(), 'ERR_SHMQ_CORRUPT')
    poke(n, LAYOUT.HEADER_BYTES + 992, u32(24))
    const wrapped = c.tryRead()
    expect(wrapped.length).toBe(100)
    expect(wrapped[99]).toBe(3)
  })

  it('ERR_SHMQ_CORRUPT: consumer position ahead of the producer, seen by a producer that finds the ring full', () => {
    const n = name('corrupt')
    const p = track(Producer.create(n, { capacity: 1024 }))
    track(Consumer.open(n))
    expect(p.tryWrite(new Uint8Array(504))).toBe(true)
    expect(p.tryWrite(new Uint8Array(504))).toBe(true)
    poke(n, LAYOUT.CONSUMER_POSITION, u32(1024 + 64))
    throwsCode(() => p.tryWrite(new Uint8Array(8)), 'ERR_SHMQ_CORRUPT')
  })

  it('a symlink is not followed (ELOOP); a wake-up "FIFO" that is a regular file is ERR_SHMQ_NOT_SHMQ', () => {
    const n = name('links')
    const link = name('links')
    Consumer.create(n, { capacity: 4096 }).close()
    symlinkSync(`/dev/shm/${n}`, `/dev/shm/${link}`)
    throwsCode(() => Consumer.open(link), 'ELOOP')
    const fifo = `/dev/shm/.shmq-${n}.wake-producer`
    rmSync(fifo)
    writeFileSync(fifo, 'not a fifo', { mode: 0o600 })
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_NOT_SHMQ')
    rmSync(fifo)
    symlinkSync(`/dev/shm/.shmq-${n}.wake-consumer`, fifo)
    throwsCode(() => Producer.open(n), 'ELOOP')
    // the refused opens left the role free
    expect(peekU32(n, LAYOUT.PRODUCER_PID)).toBe(0)
  })

  it('every errno keeps its own name: a wake-up FIFO replaced by a directory is EISDIR, not a generic EIO', () => {
    const n = name('isdir')
    Consumer.create(n, { capacity: 4096 }).close()
    const fifo = `/dev/shm/.shmq-${n}.wake-consumer`
    rmSync(fifo)
    mkdirSync(fifo, { mode: 0o700 })
    try {
      const error = thrownBy(() => Consumer.open(n))
      expect(error).toBeInstanceOf(ShmqError)
      expect(error.code).toBe('EISDIR')
      expect(error.errno).toBe(21)
      // the refused open left the role free
      expect(peekU32(n, LAYOUT.CONSUMER_PID)).toBe(0)
    } finally {
      rmSync(fifo, { recursive: true, force: true })
    }
  })

  it('a FIFO named like the segment is ERR_SHMQ_NOT_SHMQ (not "initialising"); a directory is EINVAL', () => {
    const n = name('fifo')
    execFileSync('mkfifo', ['-m', '600', `/dev/shm/${n}`])
    throwsCode(() => Consumer.open(n, { timeout: 20 }), 'ERR_SHMQ_NOT_SHMQ')
    throwsCode(() => Producer.open(n), 'ERR_SHMQ_NOT_SHMQ')
    const d = name('dir')
    mkdirSync(`/dev/shm/${d}`)
    try {
      // glibc's shm_open reports a directory as EINVAL
      throwsCode(() => Consumer.open(d), 'EINVAL')
    } finally {
      rmdirSync(`/dev/shm/${d}`)
    }
  })

  it('ERR_SHMQ_NOT_READY: the right size, but state word 0 and magic 0', () => {
    const n = name('notready')
    writeFileSync(`/dev/shm/${n}`, Buffer.alloc(LAYOUT.HEADER_BYTES + 4096), { mode: 0o600 })
    throwsCode(() => Consumer.open(n, { timeout: 20 }), 'ERR_SHMQ_NOT_READY')
    throwsCode(() => Producer.open(n, { timeout: 20 }), 'ERR_SHMQ_NOT_READY')
    // an empty file: created, not yet sized
    const m = name('notready')
    writeFileSync(`/dev/shm/${m}`, Buffer.alloc(0), { mode: 0o600 })
    throwsCode(() => Consumer.open(m, { timeout: 20 }), 'ERR_SHMQ_NOT_READY')
  })
})

describe('operating-system errors', () => {
  it('ENOENT: open of a missing name', () => {
    const n = name('missing')
    throwsCode(() => Consumer.open(n), 'ENOENT')
    throwsCode(() => Producer.open(n), 'ENOENT')
    throwsCode(() => Consumer.open(n, { timeout: 10 }), 'ENOENT')
    throwsCode(() => unlink(n), 'ENOENT')
  })

  it('EMFILE: out of file descriptors at any step of create/open leaves nothing behind', async () => {
    const prefix = uniqueName('emfile')
    const shifts = 8
    // 64 fds: room for a handful of channels; each shift moves the failure to another step
    const child = spawnFixture('emfile.cjs', { prefix, shifts }, { ipc: false, fdLimit: 64 })
    const exit = await exitOf(child)
    for (let i = 0; i < 2000; i++) removeSegment(`${prefix}-${i}`)
    removeSegment(`${prefix}-final`)
    expect(exit, child.describe()).toEqual({ code: 0, signal: null })
    const { results, final } = JSON.parse(child.stdout)
    expect(results).toHaveLength(shifts)
    for (const result of results) {
      expect(result.isShmqError, result.message).toBe(true)
      expect(result.code, result.message).toBe('EMFILE')
      expect(result.opened).toBeGreaterThan(0)
      // closing every channel gave back every fd, and the failed call left no files
      expect(result.fdsAfter).toBe(result.fdsBefore)
      expect(result.leftovers).toEqual([])
    }
    // the failure hit both the creating and the opening side
    expect(new Set(results.map((r) => r.failedAt))).toEqual(new Set(['Producer.create', 'Consumer.open']))
    expect(final).toBe(true)
  })

  it('EEXIST: create twice', () => {
    const n = name('twice')
    track(Producer.create(n, { capacity: 4096 }))
    throwsCode(() => Producer.create(n, { capacity: 4096 }), 'EEXIST')
    throwsCode(() => Consumer.create(n, { capacity: 4096 }), 'EEXIST')
    // the failed creates did not remove the existing segment
    expect(existsSync(`/dev/shm/${n}`)).toBe(true)
    track(Consumer.open(n))
  })
})

describe('a segment shrunk by another process while mapped', () => {
  // The segment is 1024 + 4096 bytes (two pages). Shrinking it below the
  // header's page makes every access to the mapping fault (SIGBUS); shmq checks
  // the size on every wake-up and must report ERR_SHMQ_CORRUPT instead.
  //
  // readSync() is tested with a shrink that keeps the header's page: the test
  // cannot know when the child's thread has entered its futex wait, and a shrink
  // below the header that lands between two of the thread's own checks is the
  // window no check can close (docs/GUARANTEES.md, trust model). read() parks on
  // the event loop, where the child reports that it is parked, so the 0-byte
  // shrink is tested there.
  const cases = [
    ['read()', 'read', 1024],
    ['read()', 'read', 0],
    ['readSync()', 'readSync', 1024],
  ]
  for (const [what, how, size] of cases) {
    it(`a consumer parked in ${what} when the file is truncated to ${size} bytes gets ERR_SHMQ_CORRUPT, not a crash`, async () => {
      const n = name('shrink')
      const child = spawnFixture('shrink-consumer.cjs', { name: n, how }, { ipc: false })
      await child.line((l) => l.parked === true)
      truncateSync(`/dev/shm/${n}`, size)
      if (how === 'read') {
        // wake it the way a producer would: a byte into its wake-up FIFO
        const fd = openSync(`/dev/shm/.shmq-${n}.wake-consumer`, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK)
        writeSync(fd, Buffer.of(0))
        closeSync(fd)
      }
      // readSync(2000) looks again by itself when its wait ends
      const exit = await exitOf(child, 60_000)
      expect(exit, child.describe()).toEqual({ code: 0, signal: null })
      const lines = child.stdout.trim().split('\n').map((l) => JSON.parse(l))
      expect(lines).toEqual([{ parked: true }, { code: 'ERR_SHMQ_CORRUPT', isShmqError: true }, { closed: true }])
    })
  }
})
