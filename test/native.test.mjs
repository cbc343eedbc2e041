// The addon's boundary: every native function refuses bad input with an exception
// (never a crash), futex and FIFO wake-ups work across processes, and unmapping
// leaves no view able to reach the memory.
import { spawn } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const { native, checkPlatform, checkConstants } = require('../dist/native.js')
const { ShmqError } = require('../dist/index.js')

let counter = 0
const made = []
function uniqueName() {
  const name = `native-${process.pid}-${counter++}`
  made.push(name)
  return name
}
afterEach(() => {
  for (const name of made.splice(0)) {
    for (const which of ['consumer', 'producer']) {
      try { native.doorbellUnlink(name, which) } catch {}
    }
    try { native.segmentUnlink(name) } catch {}
  }
})

function run(script, args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

describe('segments', () => {
  it('creates, opens, unmaps and unlinks a segment, with the requested mode', () => {
    const name = uniqueName()
    const created = native.segmentCreate(name, 8192, 0o640)
    expect(created.byteLength).toBe(8192)
    expect(statSync(`/dev/shm/${name}`).mode & 0o777).toBe(0o640)
    new Uint8Array(created)[100] = 42
    const info = native.segmentOpen(name)
    expect(info.size).toBe(8192)
    expect(info.uid).toBe(process.getuid())
    expect(new Uint8Array(info.buffer)[100]).toBe(42)
    expect(native.segmentUnmap(info.buffer)).toBe(true)
    expect(native.segmentUnmap(info.buffer)).toBe(false)
    expect(native.segmentUnmap(created)).toBe(true)
    native.segmentUnlink(name)
    expect(existsSync(`/dev/shm/${name}`)).toBe(false)
  })

  it('detaches the buffer on unmap, so old views are empty', () => {
    const name = uniqueName()
    const buffer = native.segmentCreate(name, 4096, 0o600)
    const view = new Uint8Array(buffer)
    const words = new Int32Array(buffer, 64, 4)
    view[0] = 7
    native.segmentUnmap(buffer)
    expect(buffer.byteLength).toBe(0)
    expect(view.length).toBe(0)
    expect(view[0]).toBeUndefined()
    expect(words.length).toBe(0)
    expect(() => Atomics.load(words, 0)).toThrow(TypeError)
  })

  it('reports OS errors with their errno code and the segment name', () => {
    const name = uniqueName()
    expect(() => native.segmentOpen(name)).toThrow(expect.objectContaining({ code: 'ENOENT', segment: name, syscall: 'shm_open' }))
    native.segmentUnmap(native.segmentCreate(name, 4096, 0o600))
    expect(() => native.segmentCreate(name, 4096, 0o600)).toThrow(expect.objectContaining({ code: 'EEXIST', segment: name }))
    expect(() => native.segmentUnlink(uniqueName())).toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })

  it('returns no buffer for an empty segment (a creator that has not sized it yet)', () => {
    const name = uniqueName()
    // a zero-sized object: create, then truncate it through /dev/shm
    native.segmentUnmap(native.segmentCreate(name, 4096, 0o600))
    require('node:fs').truncateSync(`/dev/shm/${name}`, 0)
    const info = native.segmentOpen(name)
    expect(info.buffer).toBeNull()
    expect(info.size).toBe(0)
  })

  it('reports the current size of a mapped segment, which another process may shrink', () => {
    const name = uniqueName()
    const buffer = native.segmentCreate(name, 8192, 0o600)
    expect(native.segmentSize(buffer)).toBe(8192)
    require('node:fs').truncateSync(`/dev/shm/${name}`, 4096)
    expect(native.segmentSize(buffer)).toBe(4096)
    expect(() => native.segmentSize(new ArrayBuffer(8))).toThrow(TypeError)
    native.segmentUnmap(buffer)
    expect(() => native.segmentSize(buffer)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_CLOSED' }))
  })

  it('tells a parked reader that its segment was shrunk, instead of touching the lost pages', async () => {
    const { Producer, Consumer } = require('../dist/index.js')
    const name = uniqueName()
    const consumer = Consumer.create(name, { capacity: 1 << 16, spin: 0 })
    const producer = Producer.open(name)
    const reading = consumer.read()
    // shrink to one page: the header survives, the ring is gone; closing the producer
    // touches only the header and wakes the reader
    require('node:fs').truncateSync(`/dev/shm/${name}`, 4096)
    producer.close()
    await expect(reading).rejects.toMatchObject({ name: 'ShmqError', code: 'ERR_SHMQ_CORRUPT' })
    consumer.close()
  })

  it('refuses bad arguments with exceptions, not crashes', () => {
    const bad = [
      () => native.segmentCreate(),
      () => native.segmentCreate(42, 4096, 0o600),
      () => native.segmentCreate('', 4096, 0o600),
      () => native.segmentCreate('a/b', 4096, 0o600),
      () => native.segmentCreate('.hidden', 4096, 0o600),
      () => native.segmentCreate('x'.repeat(201), 4096, 0o600),
      () => native.segmentCreate('a\0b', 4096, 0o600),
      () => native.segmentCreate(uniqueName(), 0, 0o600),
      () => native.segmentCreate(uniqueName(), -1, 0o600),
      () => native.segmentCreate(uniqueName(), 2 ** 40, 0o600),
      () => native.segmentCreate(uniqueName(), 1.5, 0o600),
      () => native.segmentCreate(uniqueName(), NaN, 0o600),
      () => native.segmentCreate(uniqueName(), 4096, 0o7777),
      () => native.segmentCreate(uniqueName(), 4096, '600'),
      () => native.segmentOpen({}),
      () => native.segmentUnlink('../etc/passwd'),
      () => native.segmentUnmap(),
      () => native.segmentUnmap(new Uint8Array(8)),
      () => native.futexWait(new ArrayBuffer(8)),
      () => native.futexWake(null, 0, 1),
      // suffixes name a file next to the segment: [a-z0-9-], a letter first, at most 24
      () => native.doorbellCreate('x', 'Consumer', 0o600),
      () => native.doorbellCreate('x', '7-producer', 0o600),
      () => native.doorbellCreate('x', '../consumer', 0o600),
      () => native.doorbellCreate('x', 'producer.1', 0o600),
      () => native.doorbellCreate('x', '', 0o600),
      () => native.doorbellCreate('x', 'p'.repeat(25), 0o600),
      () => new native.Doorbell('x', 'subscriber/1', 0, () => {}),
      () => native.doorbellUnlink('x/y', 'consumer'),
      () => new native.Doorbell('x', 'consumer', 0, 'not a function'),
      () => new native.Doorbell('x', 'consumer', -1, () => {}),
    ]
    for (const call of bad) expect(call).toThrow()
    expect(native.segmentUnmap(new ArrayBuffer(16))).toBe(false)
  })
})

describe('futex', () => {
  it('validates the word: inside the buffer, aligned, buffer not detached', () => {
    const buffer = new ArrayBuffer(64)
    expect(() => native.futexWait(buffer, 64, 0, 0)).toThrow(RangeError)
    expect(() => native.futexWait(buffer, 62, 0, 0)).toThrow(RangeError)
    expect(() => native.futexWait(buffer, 2, 0, 0)).toThrow(RangeError)
    expect(() => native.futexWait(buffer, -4, 0, 0)).toThrow(RangeError)
    expect(() => native.futexWait(buffer, 0, 2 ** 33, 0)).toThrow(RangeError)
    expect(() => native.futexWait(buffer, 0, 0, NaN)).toThrow(RangeError)
    expect(() => native.futexWake(buffer, 0, 0)).toThrow(RangeError)
    const name = uniqueName()
    const mapped = native.segmentCreate(name, 4096, 0o600)
    native.segmentUnmap(mapped)
    expect(() => native.futexWait(mapped, 0, 0, 0)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_CLOSED' }))
    expect(() => native.futexWake(mapped, 0, 1)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_CLOSED' }))
  })

  it('returns "not equal" at once, and times out when nobody wakes it', () => {
    const name = uniqueName()
    const buffer = native.segmentCreate(name, 4096, 0o600)
    const words = new Int32Array(buffer)
    words[16] = 5
    expect(native.futexWait(buffer, 64, 4, 1000)).toBe(2)
    expect(native.futexWait(buffer, 64, 5, 1)).toBe(1)
    expect(native.futexWake(buffer, 64, 1)).toBe(0)
    native.segmentUnmap(buffer)
  })

  it('wakes a waiter in another process (shared futex)', async () => {
    const name = uniqueName()
    const buffer = native.segmentCreate(name, 4096, 0o600)
    const words = new Int32Array(buffer)
    // the child announces itself in word 1, then waits once on word 0, which
    // stays 0: only a futexWake can end that wait before its 30 s timeout
    const child = run(
      `const { native } = require(${JSON.stringify(require.resolve('../dist/native.js'))})
       const info = native.segmentOpen(process.argv[1])
       const words = new Int32Array(info.buffer)
       Atomics.store(words, 1, 1)
       const started = process.hrtime.bigint()
       const result = native.futexWait(info.buffer, 0, 0, 30000)
       const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
       process.stdout.write(JSON.stringify({ result, elapsedMs }))`,
      [name],
    )
    while (Atomics.load(words, 1) === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    // keep waking until the child is gone: it may not have reached futex wait yet
    let exited = false
    let woken = 0
    child.then(() => (exited = true))
    while (!exited) {
      woken += native.futexWake(buffer, 0, 1)
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    const { code, signal, stdout, stderr } = await child
    expect({ code, signal }, stderr).toEqual({ code: 0, signal: null })
    const { result, elapsedMs } = JSON.parse(stdout)
    // woken (0), not timed out (1): and long before the timeout, so by a wake
    expect(result).toBe(0)
    expect(elapsedMs).toBeLessThan(10_000)
    // the waker saw the waiter: exactly one wake reached it
    expect(woken).toBe(1)
    native.segmentUnmap(buffer)
  })
})

describe('doorbells', () => {
  it('creates FIFOs with the mode asked for, and refuses to create one twice', () => {
    const name = uniqueName()
    native.doorbellCreate(name, 'consumer', 0o660)
    const stat = statSync(`/dev/shm/.shmq-${name}.wake-consumer`)
    expect(stat.isFIFO()).toBe(true)
    expect(stat.mode & 0o777).toBe(0o660)
    expect(() => native.doorbellCreate(name, 'consumer', 0o600)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
  })

  it('refuses a FIFO owned by another user, and a path that is not a FIFO', () => {
    const name = uniqueName()
    native.doorbellCreate(name, 'consumer', 0o600)
    expect(() => new native.Doorbell(name, 'consumer', process.getuid() + 1, () => {})).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_NOT_SHMQ' }))
    require('node:fs').writeFileSync(`/dev/shm/.shmq-${name}.wake-producer`, 'x')
    expect(() => new native.Doorbell(name, 'producer', process.getuid(), () => {})).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_NOT_SHMQ' }))
    expect(() => new native.Doorbell(uniqueName(), 'producer', process.getuid(), () => {})).toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })

  it('calls back once per arm when another process rings, and closes idempotently', async () => {
    const name = uniqueName()
    native.doorbellCreate(name, 'consumer', 0o600)
    let rings = 0
    let onRing
    const bell = new native.Doorbell(name, 'consumer', process.getuid(), () => {
      rings++
      onRing()
    })
    const ringer = `const { native } = require(${JSON.stringify(require.resolve('../dist/native.js'))})
      const bell = new native.Doorbell(process.argv[1], 'consumer', process.getuid(), () => {})
      bell.ring(); bell.ring(); bell.close(); bell.close()`
    for (let round = 1; round <= 3; round++) {
      const rung = new Promise((resolve) => (onRing = resolve))
      bell.arm()
      bell.arm() // arming twice is one arm
      const { code, signal } = await run(ringer, [name])
      expect({ code, signal }).toEqual({ code: 0, signal: null })
      await rung
      expect(rings).toBe(round)
    }
    bell.close()
    bell.close()
    expect(() => bell.arm()).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_CLOSED' }))
    bell.ring() // a closed doorbell rings nobody, and does not throw
  })

  it('does not keep the process alive unless armed', async () => {
    const name = uniqueName()
    native.doorbellCreate(name, 'consumer', 0o600)
    const script = `const { native } = require(${JSON.stringify(require.resolve('../dist/native.js'))})
      const bell = new native.Doorbell(process.argv[1], 'consumer', process.getuid(), () => { console.log('rung'); })
      bell.arm(); bell.disarm(); bell.ring()
      // a rung but disarmed doorbell neither calls back nor holds the loop open`
    const { code, signal, stdout } = await run(script, [name])
    expect({ code, signal, stdout }).toEqual({ code: 0, signal: null, stdout: '' })
  })
})

describe('load-time checks', () => {
  it('refuses platforms other than Linux with ERR_SHMQ_UNSUPPORTED', () => {
    expect(() => checkPlatform('linux', 'x64')).not.toThrow()
    for (const platform of ['darwin', 'win32', 'freebsd']) {
      let error
      try { checkPlatform(platform, 'x64') } catch (caught) { error = caught }
      expect(error).toBeInstanceOf(ShmqError)
      expect(error.code).toBe('ERR_SHMQ_UNSUPPORTED')
      expect(error.message).toContain(platform)
    }
  })

  it('fails to load on a simulated non-Linux platform with a ShmqError, not a crash', async () => {
    const script = `Object.defineProperty(process, 'platform', { value: 'darwin' })
      try { require(${JSON.stringify(require.resolve('../dist/index.js'))}); console.log('loaded') }
      catch (error) { console.log(error.name, error.code) }`
    const { code, signal, stdout } = await run(script)
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    expect(stdout.trim()).toBe('ShmqError ERR_SHMQ_UNSUPPORTED')
  })

  it('compares the addon constants with the layout', () => {
    expect(() => checkConstants(native.constants)).not.toThrow()
    expect(() => checkConstants({ ...native.constants, futexWordBytes: 8 })).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_UNSUPPORTED' }))
    expect(() => checkConstants({ ...native.constants, maxNameBytes: 100 })).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_UNSUPPORTED' }))
  })

  it('offers membarrier on this kernel, and the fence runs', () => {
    const { canFence } = native.membarrierRegister()
    expect(typeof canFence).toBe('boolean')
    if (canFence) expect(() => native.membarrierFence()).not.toThrow()
  })
})
