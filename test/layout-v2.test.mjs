// Layout v2 (lib/layout.ts, docs/LAYOUT.md): every way an opener refuses a
// segment, each triggered on a real segment file (a valid segment whose header
// bytes are patched through /dev/shm, or a file written by hand), the option
// and argument checks of MPSC, 64-bit positions crossing a 2^32 boundary
// between two processes, and what inspectSegment / `shmq ls` say of an MPSC segment.
import { execFileSync } from 'node:child_process'
import { statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, exitOf, peek, poke, rejectionOf, spawnFixture, testSegments, thrownBy, u16, u32 } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, inspectSegment } = require('../dist/index.js')
const { StreamChecker } = require('./fixtures/mpsc-producer.cjs')

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const HANG_MS = 60_000
const SEED = 0x2b2b

// The layout as docs/LAYOUT.md states it, written down here on its own: a
// change of lib/layout.ts that moves a field fails these tests.
const VERSION = 4 // u16 major, u16 minor at 6
const STATE = 8
const KIND = 12
const HEADER_BYTES = 16
const CAPACITY = 20
const MAX_MESSAGE = 24
const SLOT_COUNT = 28
const COMPATIBLE_FLAGS = 32
const INCOMPATIBLE_FLAGS = 36
const WRITE_POSITION = 128
const READ_POSITION = 256
const headerBytesFor = (maxProducers) => 64 * (6 + 2 * (1 + maxProducers))

// removeSegment (harness) finds the FIFOs of every producer slot
const { endpoints, segmentName } = testSegments(afterEach)

/** A valid segment nobody is attached to (created by a consumer that closed at once). */
function closedSegment(tag, options = {}) {
  const name = segmentName(tag)
  Consumer.create(name, { capacity: 4096, ...options }).close()
  return name
}

const u32At = (name, offset) => peek(name, offset, 4).readUInt32LE(0)
const u64At = (name, offset) => peek(name, offset, 8).readBigUInt64LE(0)
function u64(value) {
  const buffer = Buffer.alloc(8)
  buffer.writeBigUInt64LE(value)
  return buffer
}

/** The errors a consumer and a producer get opening `name`, and what inspectSegment says of it. */
function refusals(name) {
  const consumer = thrownBy(() => Consumer.open(name))
  const producer = thrownBy(() => Producer.open(name))
  expect(producer.code).toBe(consumer.code)
  return { error: consumer, report: inspectSegment(name) }
}

function expectUnreadable(report, error) {
  expect(report.kind).toBe('unreadable')
  expect(report.error).toBe(`${error.code}: ${error.message}`)
}

describe('a valid layout v2 segment', () => {
  it('has the documented descriptor, header size and file size, for SPSC and MPSC', () => {
    const spsc = closedSegment('v2spsc', { capacity: 4096 })
    expect(u32At(spsc, 0)).toBe(0x716d6873)
    expect([peek(spsc, VERSION, 2).readUInt16LE(0), peek(spsc, VERSION + 2, 2).readUInt16LE(0)]).toEqual([2, 0])
    expect([u32At(spsc, STATE), u32At(spsc, KIND), u32At(spsc, HEADER_BYTES), u32At(spsc, CAPACITY), u32At(spsc, MAX_MESSAGE), u32At(spsc, SLOT_COUNT)]).toEqual([1, 1, 640, 4096, 2040, 2])
    expect(statSync(`/dev/shm/${spsc}`).size).toBe(640 + 4096)

    const mpsc = closedSegment('v2mpsc', { producers: 'many', capacity: 8192 })
    expect([u32At(mpsc, KIND), u32At(mpsc, HEADER_BYTES), u32At(mpsc, SLOT_COUNT)]).toEqual([2, headerBytesFor(16), 17])
    expect(statSync(`/dev/shm/${mpsc}`).size).toBe(headerBytesFor(16) + 8192)
    const widest = closedSegment('v2mpsc255', { producers: 'many', maxProducers: 255, capacity: 4096 })
    expect([u32At(widest, HEADER_BYTES), u32At(widest, SLOT_COUNT)]).toEqual([headerBytesFor(255), 256])
    const one = closedSegment('v2mpsc1', { producers: 'many', maxProducers: 1, capacity: 4096 })
    expect([u32At(one, HEADER_BYTES), u32At(one, SLOT_COUNT)]).toEqual([headerBytesFor(1), 2])
  })
})

describe('segments an opener refuses', () => {
  it('an unknown kind: ERR_SHMQ_KIND naming the kind (and what a later shmq calls it), not telling to unlink', () => {
    // kinds 1 to 5 are this version's (SPSC, MPSC, broadcast, work queue, server); 6 and up a later one's
    for (const kind of [6, 9]) {
      const name = closedSegment('kind', { producers: 'many' })
      poke(name, KIND, u32(kind))
      const { error, report } = refusals(name)
      expect(error.code).toBe('ERR_SHMQ_KIND')
      expect(error.message).toContain(`kind ${kind}`)
      expect(error.message).not.toMatch(/\((spsc|mpsc|broadcast|work queue)\)/i)
      expect(error.message).not.toMatch(/unlink/i)
      expectUnreadable(report, error)
    }
  })

  it('an unknown incompatible flag bit: ERR_SHMQ_VERSION naming the bit', () => {
    for (const [bits, named] of [[1 << 5, 'bit 5'], [(1 << 3) | 2 ** 31, 'bits 3, 31']]) {
      const name = closedSegment('flags', { producers: 'many' })
      const flags = u32At(name, INCOMPATIBLE_FLAGS)
      poke(name, INCOMPATIBLE_FLAGS, u32(flags | bits))
      const { error, report } = refusals(name)
      expect(error.code).toBe('ERR_SHMQ_VERSION')
      expect(error.message).toContain(`incompatible flag ${named}`)
      expectUnreadable(report, error)
    }
  })

  it('an unknown compatible flag bit is ignored: the segment opens and streams', async () => {
    const name = closedSegment('compat', { producers: 'many' })
    poke(name, COMPATIBLE_FLAGS, u32(0x8000_0011))
    const consumer = Consumer.open(name)
    endpoints.push(consumer)
    const producer = Producer.open(name)
    endpoints.push(producer)
    expect(producer.tryWrite(Buffer.from('still readable'), 7)).toBe(true)
    expect(Buffer.from(consumer.tryRead()).toString()).toBe('still readable')
    expect(consumer.lastType).toBe(7)
    expect(inspectSegment(name).kind).toBe('mpsc')
  })

  it('a layout v1 segment (shmq 0.1, 1024-byte header): ERR_SHMQ_VERSION saying so, not telling to unlink', () => {
    const name = segmentName('v1')
    // the v1 header: magic, version 1.0, ready, kind 1 (SPSC), header bytes 1024, capacity, max message
    const file = Buffer.alloc(1024 + 4096)
    file.writeUInt32LE(0x716d6873, 0)
    file.writeUInt16LE(1, VERSION)
    file.writeUInt16LE(0, VERSION + 2)
    file.writeUInt32LE(1, STATE)
    file.writeUInt32LE(1, KIND)
    file.writeUInt32LE(1024, HEADER_BYTES)
    file.writeUInt32LE(4096, CAPACITY)
    file.writeUInt32LE(2040, MAX_MESSAGE)
    writeFileSync(`/dev/shm/${name}`, file, { mode: 0o600 })
    const { error, report } = refusals(name)
    expect(error.code).toBe('ERR_SHMQ_VERSION')
    expect(error.message).toContain('shmq 0.1')
    expect(error.message).toContain('layout version 1.0')
    expect(error.message).not.toMatch(/unlink/i)
    expectUnreadable(report, error)
  })

  it('a later major version: ERR_SHMQ_VERSION', () => {
    const name = closedSegment('v3')
    poke(name, VERSION, u16(3))
    const { error, report } = refusals(name)
    expect(error.code).toBe('ERR_SHMQ_VERSION')
    expect(error.message).toContain('layout version 3.0')
    expectUnreadable(report, error)
  })

  it('a header size that does not fit the slot count: ERR_SHMQ_CORRUPT', () => {
    const name = closedSegment('hdr', { producers: 'many', maxProducers: 4 })
    poke(name, HEADER_BYTES, u32(headerBytesFor(3)))
    const { error, report } = refusals(name)
    expect(error.code).toBe('ERR_SHMQ_CORRUPT')
    expect(error.message).toContain(`header size ${headerBytesFor(3)}, expected ${headerBytesFor(4)} for 5 slots`)
    expectUnreadable(report, error)

    // the slot count changed instead: the header size no longer fits it
    const other = closedSegment('hdr', { producers: 'many', maxProducers: 4 })
    poke(other, SLOT_COUNT, u32(4))
    const changed = refusals(other).error
    expect(changed.code).toBe('ERR_SHMQ_CORRUPT')
    expect(changed.message).toContain(`header size ${headerBytesFor(4)}, expected ${headerBytesFor(3)} for 4 slots`)
  })

  it('a slot count no ring of its kind has (MPSC 1 or 257, SPSC 3): ERR_SHMQ_CORRUPT', () => {
    for (const [options, slots, says] of [
      [{ producers: 'many' }, 1, 'an MPSC segment has 2 to 256 slots, this one says 1'],
      [{ producers: 'many' }, 257, 'an MPSC segment has 2 to 256 slots, this one says 257'],
      [{}, 3, 'an SPSC segment has 2 slots, this one says 3'],
    ]) {
      const name = closedSegment('slots', options)
      poke(name, SLOT_COUNT, u32(slots))
      const { error, report } = refusals(name)
      expect(error.code).toBe('ERR_SHMQ_CORRUPT')
      expect(error.message).toContain(says)
      expectUnreadable(report, error)
    }
  })
})

describe('slots taken', () => {
  it('more producers than maxProducers: ERR_SHMQ_BUSY; a second consumer: ERR_SHMQ_BUSY', () => {
    const name = segmentName('busy')
    const consumer = Consumer.create(name, { producers: 'many', maxProducers: 1, capacity: 4096 })
    endpoints.push(consumer)
    const producer = Producer.open(name)
    endpoints.push(producer)
    const tooMany = thrownBy(() => Producer.open(name))
    expect(tooMany.code).toBe('ERR_SHMQ_BUSY')
    expect(tooMany.message).toContain('all its 1 producer slots taken')
    const second = thrownBy(() => Consumer.open(name))
    expect(second.code).toBe('ERR_SHMQ_BUSY')
    expect(second.message).toContain(`already has a consumer (pid ${process.pid}, this process)`)
    producer.close()
    const successor = Producer.open(name)
    endpoints.push(successor)
    expect(successor.shared).toBe(true)

    // SPSC: one of each
    const spsc = segmentName('busy')
    endpoints.push(Consumer.create(spsc, { capacity: 4096 }))
    endpoints.push(Producer.open(spsc))
    expect(thrownBy(() => Producer.open(spsc)).code).toBe('ERR_SHMQ_BUSY')
    expect(thrownBy(() => Consumer.open(spsc)).code).toBe('ERR_SHMQ_BUSY')
  })
})

describe('arguments', () => {
  it('maxProducers without producers: many, or out of range, and an unknown producers value: ERR_SHMQ_INVALID_ARGUMENT, nothing created', () => {
    const cases = [
      { maxProducers: 4 },
      { producers: 'one', maxProducers: 1 },
      { producers: 'many', maxProducers: 0 },
      { producers: 'many', maxProducers: 256 },
      { producers: 'many', maxProducers: -1 },
      { producers: 'many', maxProducers: 2.5 },
      { producers: 'many', maxProducers: '4' },
      { producers: 'many', maxProducers: Number.NaN },
      { producers: 'two' },
    ]
    for (const options of cases) {
      for (const Endpoint of [Consumer, Producer]) {
        const name = segmentName('args')
        const error = thrownBy(() => Endpoint.create(name, { capacity: 4096, ...options }))
        expect(error.code, `${Endpoint.name}.create(${JSON.stringify(options)})`).toBe('ERR_SHMQ_INVALID_ARGUMENT')
        expect(() => statSync(`/dev/shm/${name}`)).toThrow(/ENOENT/)
      }
    }
    expect(thrownBy(() => Consumer.create(segmentName('args'), { maxProducers: 4 })).message).toContain("maxProducers needs producers: 'many'")
    expect(thrownBy(() => Consumer.create(segmentName('args'), { producers: 'many', maxProducers: 256 })).message).toContain('maxProducers must be an integer from 1 to 255 (got 256)')
  })

  for (const producers of ['one', 'many']) {
    it(`a message type out of 0..65535: ERR_SHMQ_INVALID_ARGUMENT, nothing written (producers: '${producers}')`, async () => {
      const name = segmentName('types')
      const consumer = Consumer.create(name, { producers, capacity: 4096 })
      endpoints.push(consumer)
      const producer = Producer.open(name)
      endpoints.push(producer)
      const bytes = Buffer.from('typed')
      for (const type of [70000, 65536, -1, 1.5, Number.NaN, '7']) {
        expect(thrownBy(() => producer.tryWrite(bytes, type)).code, `tryWrite type ${type}`).toBe('ERR_SHMQ_INVALID_ARGUMENT')
        expect((await rejectionOf(producer.write(bytes, type))).code, `write type ${type}`).toBe('ERR_SHMQ_INVALID_ARGUMENT')
      }
      expect(consumer.tryRead()).toBeNull()
      const view = producer.tryClaim(8)
      view.set(Buffer.from('claimed!'))
      for (const type of [-1, 70000]) {
        const error = thrownBy(() => producer.commit(5, type))
        expect(error.code, `commit type ${type}`).toBe('ERR_SHMQ_INVALID_ARGUMENT')
        expect(error.message).toContain('message type must be an integer from 0 to 65535')
      }
      // the claim is still open: a valid commit publishes it
      expect(consumer.tryRead()).toBeNull()
      producer.commit(5, 65535)
      expect(producer.tryWrite(bytes, 0)).toBe(true)
      const first = consumer.tryRead()
      expect([Buffer.from(first).toString(), consumer.lastType]).toEqual(['claim', 65535])
      const second = consumer.tryRead()
      expect([Buffer.from(second).toString(), consumer.lastType]).toEqual(['typed', 0])
      expect(consumer.tryRead()).toBeNull()
    })
  }
})

describe('64-bit positions', () => {
  for (const producers of ['one', 'many']) {
    it(`cross a 2^32 boundary between two processes, high word 5 -> 6 (producers: '${producers}')`, async () => {
      const capacity = 1 << 16
      const name = closedSegment('pos64', { producers, capacity })
      // as if 5 * 2^32 + 0xfffff000 bytes had been streamed: both positions, before any endpoint attaches
      const start = 5n * 2n ** 32n + 0xfffff000n
      poke(name, WRITE_POSITION, u64(start))
      poke(name, READ_POSITION, u64(start))
      // 1016-byte messages fill 1024-byte frames, and the start is 1024-aligned in the ring: no padding, so the byte count is exact
      const count = 2048
      const frame = 1024n
      const stream = { seed: SEED, fixedLength: 1016 }
      const consumer = spawnFixture('mpsc-consumer.cjs', { name, create: false, mode: 'drainRaw', ...stream })
      await deadline(consumer.next('ready'), HANG_MS, 'consumer open')
      const producer = spawnFixture('mpsc-producer.cjs', { role: 'stream', name, id: 1, count, exactFrames: true, finish: 'end', ...stream })
      const [received, sent] = await deadline(Promise.all([consumer.next('done'), producer.next('done')]), HANG_MS, 'stream across 2^32').catch((error) => {
        throw new Error(`${error.message}\n${consumer.describe()}\n${producer.describe()}`)
      })
      expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
      expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })
      expect(received.producers).toEqual({ 1: { count, checksum: sent.checksum } })
      expect(received.endedAfter).toBe(true)

      const streamed = BigInt(count) * frame
      expect(streamed).toBeGreaterThan(1n << 20n)
      const read = u64At(name, READ_POSITION)
      expect(read >> 32n).toBe(6n)
      expect(read).toBe(start + streamed)
      const write = u64At(name, WRITE_POSITION)
      if (producers === 'one') {
        // one writer: it keeps the high word too
        expect(write).toBe(start + streamed)
      } else {
        // the MPSC tail keeps only its low word (its full value comes from the head's)
        expect(write & 0xffff_ffffn).toBe(read & 0xffff_ffffn)
      }
    })
  }
})

describe('inspectSegment and shmq ls', () => {
  it("report kind 'mpsc', maxProducers, and every producer slot with its pid and liveness", async () => {
    const capacity = 1 << 16
    const name = segmentName('lsmpsc')
    const consumer = Consumer.create(name, { producers: 'many', maxProducers: 3, capacity })
    endpoints.push(consumer)
    const children = []
    for (const id of [1, 2]) {
      const handle = spawnFixture('mpsc-producer.cjs', { role: 'control', name, id, seed: SEED })
      const opened = await deadline(handle.next('opened'), HANG_MS, `producer ${id} open`)
      expect(opened.ok, handle.describe()).toBe(true)
      children.push({ handle, pid: opened.pid })
    }
    children[0].handle.send({ type: 'cmd', cmd: 'write', count: 3 })
    await deadline(children[0].handle.next('written'), HANG_MS, 'write')
    const fill = (u32At(name, WRITE_POSITION) - u32At(name, READ_POSITION)) >>> 0
    expect(fill).toBeGreaterThan(0)

    const expected = {
      name,
      kind: 'mpsc',
      size: headerBytesFor(3) + capacity,
      capacity,
      fill,
      producer: { pid: children[0].pid, alive: true },
      producers: [
        { slot: 1, pid: children[0].pid, alive: true },
        { slot: 2, pid: children[1].pid, alive: true },
      ],
      maxProducers: 3,
      consumer: { pid: process.pid, alive: true },
      subscribers: [],
      maxSubscribers: 0,
      ended: false,
      // the file's facts: created by this process with the default mode
      uid: process.getuid(),
      mode: 0o600,
      createdAt: expect.any(Number),
      ageMs: expect.any(Number),
    }
    expect(inspectSegment(name)).toEqual(expected)
    expect(Math.abs(inspectSegment(name).createdAt - Date.now())).toBeLessThan(60_000)
    const listed = () => JSON.parse(execFileSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'ls', '--json', '--prefix', name], { encoding: 'utf8' }))
    expect(listed()).toEqual([expected])
    const table = execFileSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'ls', '--prefix', name], { encoding: 'utf8' })
    expect(table).toMatch(new RegExp(`${name}\\s+mpsc\\s`))

    // a SIGKILLed producer: its slot stays listed, dead, until reused
    children[0].handle.child.kill('SIGKILL')
    expect(await exitOf(children[0].handle)).toEqual({ code: null, signal: 'SIGKILL' })
    const afterKill = {
      ...expected,
      producer: { pid: children[1].pid, alive: true },
      producers: [
        { slot: 1, pid: children[0].pid, alive: false },
        { slot: 2, pid: children[1].pid, alive: true },
      ],
    }
    expect(inspectSegment(name)).toEqual(afterKill)
    expect(listed()).toEqual([afterKill])

    // the consumer reads the dead producer's messages; the other ends the stream
    const checker = new StreamChecker({ seed: SEED, maxLength: 4096 })
    expect(consumer.drainRaw((bytes, offset, length, type) => checker.check(bytes, offset, length, type))).toBe(3)
    children[1].handle.send({ type: 'cmd', cmd: 'end' })
    await deadline(children[1].handle.next('closed'), HANG_MS, 'end')
    expect(await exitOf(children[1].handle)).toEqual({ code: 0, signal: null })
    const ended = inspectSegment(name)
    expect([ended.ended, ended.fill, ended.producers]).toEqual([true, 0, [{ slot: 1, pid: children[0].pid, alive: false }]])
  })
})
