// Who holds a role is what the kernel's role lock says, not what the owner word
// says: forged owner words, a process out of file descriptors and swallowed
// wake-ups never make a live peer look dead, a dead one look alive, or a wait
// last for ever. Every peer is a real process.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { LAYOUT, deadline, exitOf, killAll, peek, peekU32, poke, removeSegment, spawnFixture, thrownBy, u32, uniqueName, waitUntil } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Producer, Consumer } = require('../dist/index.js')
const L = require('./fixtures/spsc-layout.cjs')
const { ownerWord, processStartTime } = require('../dist/liveness.js')

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

function peer(config, options) {
  return spawnFixture('owner-peer.cjs', config, options)
}

async function command(child, cmd, type) {
  child.send(cmd)
  return child.next(type)
}

function word64(value) {
  const bytes = Buffer.alloc(8)
  bytes.writeBigUInt64LE(value)
  return bytes
}

/** The pid of a process that has exited and been reaped. */
function deadPid() {
  const result = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  return Number(result.stdout)
}

const seqOf = (view) => new DataView(view.buffer, view.byteOffset).getUint32(0, true)

describe('forged owner words', () => {
  it('pid 1 written over a live producer: its death is still reported to a parked reader, and a successor takes over', async () => {
    const n = name('forged-init')
    const consumer = track(Consumer.create(n, { capacity: 4096, spin: 0 }))
    const producer = peer({ name: n, role: 'producer' })
    await producer.next('ready')
    await command(producer, { cmd: 'write', start: 0, count: 5 }, 'wrote')
    for (let seq = 0; seq < 5; seq++) expect(seqOf(await consumer.read())).toBe(seq)
    const pending = consumer.read().then(
      (message) => ({ message }),
      (error) => ({ error }),
    )
    await waitUntil(() => peekU32(n, LAYOUT.CONSUMER_WAITING) === L.WAITING_EVENT_LOOP, 'consumer parked')
    // a peer with write access names init (alive, with its real start time) as the producer
    poke(n, L.PRODUCER_OWNER_OFFSET, word64(ownerWord(1, processStartTime(1))))
    producer.child.kill('SIGKILL')
    expect(await exitOf(producer)).toEqual({ code: null, signal: 'SIGKILL' })
    const killedAt = Date.now()
    const { error } = await deadline(pending, 5000, 'the parked read after the producer died')
    expect(error?.code).toBe('ERR_SHMQ_PEER_GONE')
    // the documented bound is one poll interval (100 ms) after the death; allow for a loaded machine
    expect(Date.now() - killedAt).toBeLessThan(2000)
    // the role is free, whatever the word said: a new producer attaches and the stream goes on
    const successor = track(Producer.open(n))
    expect(successor.tryWrite(Uint8Array.of(9, 9, 9, 9))).toBe(true)
    expect(Array.from(await consumer.read())).toEqual([9, 9, 9, 9])
  })

  it('a dead pid written over a live producer: no spurious ERR_SHMQ_PEER_GONE, no second producer, no lost message', async () => {
    const n = name('forged-dead')
    const consumer = track(Consumer.create(n, { capacity: 4096, spin: 0 }))
    const producer = peer({ name: n, role: 'producer' })
    const { pid } = await producer.next('ready')
    const dead = deadPid()
    poke(n, L.PRODUCER_OWNER_OFFSET, word64(ownerWord(dead, 12345)))
    // the reader waits (and times out) instead of reporting a death
    expect(consumer.readSync(300)).toBe(null)
    expect(consumer.peer).toEqual({ pid: dead, alive: true })
    // the live producer's role is not up for grabs, from this process or another
    expect(thrownBy(() => Producer.open(n)).code).toBe('ERR_SHMQ_BUSY')
    const intruder = spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(require.resolve('../dist/index.js'))}).Producer.open(${JSON.stringify(n)}); console.log('ATTACHED') } catch (e) { console.log(e.code) }`], { encoding: 'utf8' })
    expect(intruder.stdout.trim()).toBe('ERR_SHMQ_BUSY')
    await command(producer, { cmd: 'write', start: 0, count: 20 }, 'wrote')
    const seqs = []
    for (let i = 0; i < 20; i++) seqs.push(seqOf(await consumer.read()))
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect(pid).toBeGreaterThan(0)
  })

  it('an owner word zeroed under a live consumer: the producer waits for room instead of reporting a death; the consumer reads on', async () => {
    const n = name('forged-zero')
    const producer = track(Producer.create(n, { capacity: 4096, spin: 0 }))
    const consumer = peer({ name: n, role: 'consumer', spin: 0 })
    await consumer.next('ready')
    poke(n, L.CONSUMER_OWNER_OFFSET, word64(0n))
    expect(thrownBy(() => Consumer.open(n)).code).toBe('ERR_SHMQ_BUSY')
    const message = new Uint8Array(200)
    let written = 0
    while (producer.tryWrite(message)) written++
    const reading = command(consumer, { cmd: 'read', count: written + 1 }, 'read')
    await producer.write(message)
    const { seqs, code } = await reading
    expect(code).toBeUndefined()
    expect(seqs).toHaveLength(written + 1)
  })
})

describe('out of file descriptors', () => {
  it('a process with no fd free never takes a live peer for dead: no takeover, no spurious death, no collected segment', async () => {
    const prefix = name('emfile-owner')
    const n = `${prefix}-shared`
    const own = `${prefix}-own`
    names.push(n, own)
    const producer = track(Producer.create(n, { capacity: 4096 }))
    const consumer = peer({ name: n, role: 'consumer', spin: 0 })
    const { pid: consumerPid } = await consumer.next('ready')
    const ownProducer = track(Producer.create(own, { capacity: 4096 }))
    const consumerOwner = peek(n, L.CONSUMER_OWNER_OFFSET, 8)
    const child = spawnFixture('emfile-owner.cjs', { name: n, own, prefix }, { ipc: false, fdLimit: 40 })
    expect(await exitOf(child), child.describe()).toEqual({ code: 0, signal: null })
    const { steps, ownRead, ownPeer } = JSON.parse(child.stdout)
    expect(ownRead, 'a consumer out of fds reading from a live producer').toEqual({ message: null })
    expect(ownPeer).toEqual({ pid: process.pid, alive: true })
    expect(steps.length).toBeGreaterThan(4)
    for (const step of steps) {
      // each step fails for want of an fd or because the role is held: never by taking it
      expect(['EMFILE', 'ENFILE', 'ERR_SHMQ_BUSY'], JSON.stringify(step)).toContain(step.consumer)
      expect(['EMFILE', 'ENFILE', 'ERR_SHMQ_BUSY'], JSON.stringify(step)).toContain(step.producer)
      expect(step.removed, JSON.stringify(step)).toEqual([])
    }
    // the walk reached the role check itself for both roles
    expect(steps.some((step) => step.consumer === 'ERR_SHMQ_BUSY' && step.producer === 'ERR_SHMQ_BUSY')).toBe(true)
    expect(existsSync(`/dev/shm/${n}`) && existsSync(`/dev/shm/${own}`)).toBe(true)
    // the live consumer still holds its role, word and all, and reads on
    expect(peek(n, L.CONSUMER_OWNER_OFFSET, 8)).toEqual(consumerOwner)
    expect(consumerOwner.readUInt32LE(0)).toBe(consumerPid)
    const reading = command(consumer, { cmd: 'read', count: 3 }, 'read')
    for (let seq = 0; seq < 3; seq++) {
      const message = new Uint8Array(16)
      new DataView(message.buffer).setUint32(0, seq, true)
      message.fill(seq, 4)
      await producer.write(message)
    }
    expect(await reading).toEqual({ type: 'read', seqs: [0, 1, 2] })
  })
})

describe('a swallowed wake-up', () => {
  it('a parked reader whose waiting word a peer zeroed still gets the message (bounded re-check)', async () => {
    const n = name('swallowed-read')
    const consumer = track(Consumer.create(n, { capacity: 4096, spin: 0 }))
    const producer = peer({ name: n, role: 'producer', spin: 0 })
    await producer.next('ready')
    const pending = consumer.read()
    await waitUntil(() => peekU32(n, LAYOUT.CONSUMER_WAITING) === L.WAITING_EVENT_LOOP, 'consumer parked')
    poke(n, LAYOUT.CONSUMER_WAITING, u32(0)) // the producer will not ring
    await command(producer, { cmd: 'write', start: 7, count: 1 }, 'wrote')
    expect(seqOf(await deadline(pending, 5000, 'the parked read'))).toBe(7)
  })

  it('a writer parked on a full ring whose waiting word a peer zeroed still gets its room', async () => {
    const n = name('swallowed-write')
    const producer = track(Producer.create(n, { capacity: 4096, spin: 0 }))
    const consumer = peer({ name: n, role: 'consumer', spin: 0 })
    await consumer.next('ready')
    const message = new Uint8Array(16)
    let written = 0
    for (;; written++) {
      new DataView(message.buffer).setUint32(0, written, true)
      message.fill(written & 255, 4)
      if (!producer.tryWrite(message)) break
    }
    // `message` now carries seq `written`, which did not fit
    const pending = producer.write(message)
    await waitUntil(() => peekU32(n, LAYOUT.PRODUCER_WAITING) === L.WAITING_EVENT_LOOP, 'producer parked')
    poke(n, LAYOUT.PRODUCER_WAITING, u32(0)) // the consumer will not ring
    const { seqs, code } = await command(consumer, { cmd: 'read', count: written + 1 }, 'read')
    expect(code).toBeUndefined()
    expect(seqs).toEqual(Array.from({ length: written + 1 }, (_, i) => i))
    await deadline(pending, 5000, 'the parked write')
  })
})
