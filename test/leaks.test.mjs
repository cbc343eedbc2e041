// Nothing outlives close(): file descriptors, mappings, and the event-loop
// handles that would keep a process alive.
import { afterEach, describe, expect, it } from 'vitest'
import { LAYOUT, exitOf, killAll, peekU32, removeSegment, spawnFixture, uniqueName } from './fixtures/harness.mjs'

const names = []
afterEach(() => {
  killAll()
  for (const n of names.splice(0)) removeSegment(n)
})

it('10,000 create/open/close/unlink cycles (and 1,000 with a parked read) leave no fds or mappings behind', async () => {
  const prefix = uniqueName('cycle')
  const cycles = 10_000
  const parkedCycles = 1_000
  const warmup = 100
  const child = spawnFixture('cycles.cjs', { prefix, cycles, parkedCycles, warmup }, { ipc: false })
  const exit = await exitOf(child, 110_000)
  // each cycle unlinks its own segment; remove any a failed run left behind
  for (let i = 0; i < cycles + parkedCycles; i++) removeSegment(`${prefix}-${i}`)
  expect(exit, child.describe()).toEqual({ code: 0, signal: null })
  const { before, after, cycles: done } = JSON.parse(child.stdout)
  expect(done).toBe(cycles + parkedCycles)

  // file descriptors: exactly as many as before, and none on /dev/shm (segments, FIFOs)
  expect(after.fds).toBe(before.fds)
  expect(before.shmFds).toBe(0)
  expect(after.shmFds).toBe(0)
  // mappings of files (segments are files in /dev/shm): exactly as many as before, none of /dev/shm
  expect(before.shmMaps).toBe(0)
  expect(after.shmMaps).toBe(0)
  expect(after.fileMaps).toBe(before.fileMaps)
  // all mappings: shmq maps nothing anonymous, but V8 grows its heap in
  // 256 KiB pages, each its own mapping, and keeps them after a loop that
  // allocated a lot; glibc malloc arenas also split and grow. Measured on this
  // machine: +11 lines after these cycles, +29 after 5,000 parked cycles, +34
  // after 20,000, with heapUsed flat (heapTotal 5.7 -> 12.5 MB, i.e. ~27 V8
  // pages). 64 lines bounds that; one leaked mapping per cycle would be 11,000,
  // and the file-backed count above (where shmq's mappings live) is exact.
  expect(after.maps - before.maps).toBeLessThanOrEqual(64)
})

it('500 cycles with the producer in another process and the consumer parked on it leave no fds behind', async () => {
  const prefix = uniqueName('rcycle')
  const cycles = 500
  const child = spawnFixture('remote-cycles.cjs', { prefix, cycles, warmup: 20 }, { ipc: false })
  const exit = await exitOf(child, 110_000)
  for (let i = 0; i < cycles; i++) removeSegment(`${prefix}-${i}`)
  expect(exit, child.describe()).toEqual({ code: 0, signal: null })
  const { before, after, parked, cycles: done } = JSON.parse(child.stdout)
  expect(done).toBe(cycles)
  // while parked the consumer holds more (its wake-up FIFOs, the watch on its peer) ...
  expect(parked.count).toBeGreaterThan(before.count)
  // ... and after 480 more cycles, exactly what it held before them, kind by kind
  expect(after).toEqual(before)
  expect(after.kinds.shm).toBe(undefined)
})

it('failed opens and creates (every refusal, 1,000 times each) release what they took', async () => {
  const prefix = uniqueName('failopen')
  const child = spawnFixture('failed-opens.cjs', { prefix, rounds: 1000 }, { ipc: false })
  const exit = await exitOf(child, 110_000)
  for (const what of ['busy', 'ended', 'garbage', 'notready', 'version', 'nofifo']) removeSegment(`${prefix}-${what}`)
  expect(exit, child.describe()).toEqual({ code: 0, signal: null })
  const { before, after, codes } = JSON.parse(child.stdout)
  expect(codes).toEqual({
    ERR_SHMQ_BUSY: 1000,
    ERR_SHMQ_CLOSED: 1000,
    ERR_SHMQ_NOT_SHMQ: 1000,
    ERR_SHMQ_VERSION: 1000,
    ENOENT: 2000,
    EEXIST: 1000,
    ERR_SHMQ_NOT_READY: 4,
  })
  expect(after).toEqual(before)
  // the one mapping of /dev/shm is the producer kept open on the 'busy' segment
  expect(after.shmMaps).toBe(1)
})

describe('a process whose channels are all closed exits by itself', () => {
  for (const scenario of ['read', 'write', 'close-parked', 'iterate']) {
    const what = {
      read: 'a read() that parked and was then satisfied',
      write: 'a write() that parked on a full ring and was then satisfied',
      'close-parked': 'a parked read() ended by close()',
      iterate: 'a for-await loop that parked, got a message and the end',
    }[scenario]
    it(`after ${what}`, async () => {
      const name = uniqueName('alone')
      names.push(name)
      const child = spawnFixture('exit-alone.cjs', { name, scenario }, { ipc: false })
      // a hang (a handle left ref'd) is the failure: 60 s is far beyond the ~100 ms it takes
      const exit = await exitOf(child, 60_000)
      expect(exit, child.describe()).toEqual({ code: 0, signal: null })
      const report = JSON.parse(child.stdout)
      const expected = { read: [1, 2, 3], write: [1, 2, 3], 'close-parked': null, iterate: [9] }[scenario]
      expect(report).toEqual({ done: true, scenario, got: expected })
    })
  }
})

it('a consumer parked in await read() keeps its process alive until a message comes from another process', async () => {
  const name = uniqueName('keepalive')
  names.push(name)
  const consumer = spawnFixture('park-consumer.cjs', { name }, { ipc: false })
  await consumer.line((l) => l.parked === true)
  // parked on the event loop (waiting word 2), and nothing but that park holds the process
  expect(peekU32(name, LAYOUT.CONSUMER_WAITING)).toBe(2)
  expect(consumer.child.exitCode).toBe(null)
  expect(consumer.child.signalCode).toBe(null)

  const message = 'c0ffee0123'
  const producer = spawnFixture('send-one.cjs', { name, message }, { ipc: false })
  expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
  expect(JSON.parse(producer.stdout)).toEqual({ sent: true })
  const got = await consumer.line((l) => 'got' in l)
  expect(got.got).toBe(message)
  expect(await exitOf(consumer, 60_000), consumer.describe()).toEqual({ code: 0, signal: null })
})
