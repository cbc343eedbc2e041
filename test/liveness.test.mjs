// Peer liveness: a side that waits learns of its peer's death (ERR_SHMQ_PEER_GONE)
// after everything committed was delivered, a successor takes over with no loss and
// no duplicates, and a dead peer's slot never blocks a new one.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const { Producer, Consumer, ShmqError, unlink } = require('../dist/index.js')
const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'liveness-peer.cjs')

let counter = 0
const names = []
const children = []
function uniqueName() {
  const name = `liveness-${process.pid}-${counter++}`
  names.push(name)
  return name
}
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const name of names.splice(0)) {
    try { unlink(name) } catch {}
  }
})

function peer(options) {
  const child = spawn(process.execPath, [fixture, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })))
  return { child, exited }
}

function seqOf(message) {
  return new DataView(message.buffer, message.byteOffset).getUint32(0, true)
}

async function expectPeerGone(promise) {
  let error
  try { await promise } catch (caught) { error = caught }
  expect(error).toBeInstanceOf(ShmqError)
  expect(error.code).toBe('ERR_SHMQ_PEER_GONE')
}

describe('a producer that dies', () => {
  it('is reported to a parked reader after every committed message, and a successor continues the stream', async () => {
    const name = uniqueName()
    const consumer = Consumer.create(name, { capacity: 1 << 16, spin: 0 })
    const seen = []
    // the first producer writes 0..99, claims #100 without committing, and is killed
    const first = peer({ role: 'producer', name, start: 0, count: 100, die: 'claim' })
    for (;;) {
      let message
      try { message = await consumer.read() } catch (error) {
        expect(error).toBeInstanceOf(ShmqError)
        expect(error.code).toBe('ERR_SHMQ_PEER_GONE')
        break
      }
      seen.push(seqOf(message))
    }
    expect(await first.exited).toMatchObject({ code: null, signal: 'SIGKILL' })
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(consumer.peer).toBeNull() // the dead producer was forgotten once reported
    // a successor takes over; the reader, waiting again, gets 100..199 then the end
    const second = peer({ role: 'producer', name, start: 100, count: 100, die: 'close' })
    for (;;) {
      const message = await consumer.read()
      if (message === null) break
      seen.push(seqOf(message))
    }
    expect(await second.exited).toMatchObject({ code: 0, signal: null })
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(consumer.ended).toBe(true)
    consumer.close()
  })

  it('lets Producer.open take over the slot of a producer that exited without closing', async () => {
    const name = uniqueName()
    const consumer = Consumer.create(name, { capacity: 4096 })
    const first = peer({ role: 'producer', name, start: 0, count: 10, die: 'exit' })
    expect(await first.exited).toMatchObject({ code: 0, signal: null })
    const producer = Producer.open(name)
    expect(consumer.peer).toEqual({ pid: process.pid, alive: true })
    expect(producer.tryWrite(new Uint8Array([1, 0, 0, 0]))).toBe(true)
    const seqs = []
    consumer.drain((message) => seqs.push(seqOf(message)))
    expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1])
    producer.close()
    consumer.close()
  })

  it('ends readSync with ERR_SHMQ_PEER_GONE instead of waiting forever', async () => {
    const name = uniqueName()
    const consumer = Consumer.create(name, { capacity: 4096, spin: 0 })
    const first = peer({ role: 'producer', name, start: 0, count: 3, die: 'kill' })
    expect(await first.exited).toMatchObject({ signal: 'SIGKILL' })
    const seqs = []
    for (let i = 0; i < 3; i++) seqs.push(seqOf(consumer.readSync()))
    expect(seqs).toEqual([0, 1, 2])
    expect(() => consumer.readSync()).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_PEER_GONE' }))
    consumer.close()
  })
})

describe('a consumer that dies', () => {
  it('is reported to a writer waiting for room; a new consumer resumes after the last released message', async () => {
    const name = uniqueName()
    const producer = Producer.create(name, { capacity: 1024, spin: 0 })
    // the consumer reads 5 messages (releasing 0..3, holding 4) and is killed
    const reader = peer({ role: 'consumer', name, count: 5, die: 'kill' })
    let seq = 0
    const message = (n) => {
      const bytes = new Uint8Array(16)
      new DataView(bytes.buffer).setUint32(0, n, true)
      return bytes
    }
    let gone = false
    while (!gone) {
      try {
        await producer.write(message(seq))
        seq++
      } catch (error) {
        expect(error).toBeInstanceOf(ShmqError)
        expect(error.code).toBe('ERR_SHMQ_PEER_GONE')
        gone = true
      }
    }
    const result = await reader.exited
    expect(result.signal).toBe('SIGKILL')
    expect(result.stdout.trim().split('\n').map(Number)).toEqual([0, 1, 2, 3, 4])
    expect(producer.peer).toBeNull()
    // at-least-once at the boundary: #4 was read but not released, so it comes again
    producer.close()
    const successor = peer({ role: 'consumer', name, count: 1000, die: 'close' })
    const after = await successor.exited
    expect(after).toMatchObject({ code: 0, signal: null })
    expect(after.stdout.trim().split('\n').filter((line) => line !== 'done').map(Number)).toEqual(Array.from({ length: seq - 4 }, (_, i) => i + 4))
  })
})
