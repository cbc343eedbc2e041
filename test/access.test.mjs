// Access control between users, run for real: the tests run as root and start
// fixtures as nobody (uid/gid 65534), and one in a private 1 MiB /dev/shm.
// Segments and their FIFOs are 0600 by default, created O_EXCL, never reused
// or overwritten; a mode and a group share them; names are checked; a full
// /dev/shm is ENOSPC at create time with nothing left behind.
// The checkout may be private (a 0700 home, a mktemp -d folder), so what nobody
// runs (the fixture and the package it loads) is staged in a world-readable
// temporary folder first.
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FIXTURES, cleanup, deadline, shmPaths, start, track, uniqueName } from './fixtures/fault-harness.mjs'
import { stage, unstage } from './fixtures/stage.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, ShmqError, unlink } = require('../dist/index.js')
const { build, verify } = require('./fixtures/fault-common.cjs')

const NOBODY = 65534
/** The environment of the nobody child: node run directly (no npm, no cache, no HOME of root's). */
const NOBODY_ENV = { PATH: process.env.PATH, HOME: '/nonexistent' }

const endpoints = []
afterEach(() => {
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  cleanup()
})

/** The world-readable copy of what the nobody child runs (see stage()). */
let staged

beforeAll(() => {
  // the premise of this file: root runs it, and can become nobody
  expect(process.getuid(), 'these tests run as root').toBe(0)
  staged = stage(['fault-access.cjs', 'fault-common.cjs', 'common.cjs'])
  // every folder from / to the staged fixture must be enterable by nobody
  const probe = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', path.join(staged, 'dist', 'index.js')], { uid: NOBODY, gid: NOBODY, env: NOBODY_ENV, cwd: staged, encoding: 'utf8' })
  expect({ status: probe.status, stderr: probe.stderr }, `nobody loads the staged package in ${staged}`).toEqual({ status: 0, stderr: '' })
})

afterAll(() => {
  unstage(staged)
})

/** Runs fault-access.cjs with `order`, as nobody (the staged copy) unless `asRoot`; returns its JSON line. */
async function access(order, { asRoot = false, command, commandArgs } = {}) {
  const options = asRoot ? { command, commandArgs } : { uid: NOBODY, gid: NOBODY, env: NOBODY_ENV }
  // start() runs FIXTURES/<script>; a relative path from there reaches the staged copy
  const script = asRoot ? 'fault-access.cjs' : path.relative(FIXTURES, path.join(staged, 'test', 'fixtures', 'fault-access.cjs'))
  const child = start(script, [JSON.stringify(order)], options)
  const result = await deadline(child.closed, 30_000, `fault-access ${order.action}`)
  const what = `${JSON.stringify(order)}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`
  expect({ code: result.code, signal: result.signal }, what).toEqual({ code: 0, signal: null })
  return JSON.parse(result.lines.at(-1))
}

function modeOf(path) {
  return statSync(path).mode & 0o777
}

describe('another user', () => {
  it('cannot open a segment created with the default mode (0600): EACCES', async () => {
    const name = uniqueName('acc')
    endpoints.push(Producer.create(name, { capacity: 4096 }))
    for (const path of shmPaths(name)) {
      expect(modeOf(path), path).toBe(0o600)
      expect(statSync(path).uid, path).toBe(0)
    }
    expect(await access({ action: 'open', name, role: 'consumer' })).toEqual({ uid: NOBODY, ok: false, code: 'EACCES' })
    expect(await access({ action: 'open', name, role: 'producer' })).toEqual({ uid: NOBODY, ok: false, code: 'EACCES' })
  })

  it('can share a segment made with { mode: 0o660 } whose files were given to its group: a round trip', async () => {
    const requests = uniqueName('accq')
    const replies = uniqueName('accr')
    const producer = Producer.create(requests, { capacity: 4096, mode: 0o660, spin: 0 })
    const consumer = Consumer.create(replies, { capacity: 4096, mode: 0o660, spin: 0 })
    endpoints.push(producer, consumer)
    for (const path of [...shmPaths(requests), ...shmPaths(replies)]) {
      expect(modeOf(path), path).toBe(0o660)
      chownSync(path, 0, NOBODY) // the group only: the FIFOs must keep the segment's owner
    }
    const count = 60
    const echo = access({ action: 'echo', requests, replies, count })
    // a child that fails fails the reads at once, instead of after their deadline
    const echoFailed = echo.then(() => new Promise(() => {}))
    const sent = []
    const writing = (async () => {
      for (let seq = 0; seq < count; seq++) {
        const length = 12 + ((seq * 977) % 1500)
        sent.push(length)
        await producer.write(build(seq, length))
      }
    })()
    let checksum = 0
    for (let seq = 0; seq < count; seq++) {
      const reply = await deadline(Promise.race([consumer.read(), echoFailed]), 30_000, `reply ${seq}`)
      expect(reply, `reply ${seq}`).not.toBeNull()
      expect(verify(reply)).toBe(seq)
      expect(reply.length).toBe(sent[seq])
      checksum = (Math.imul(checksum ^ seq, 0x01000193) ^ reply.length) >>> 0
    }
    await writing
    expect(await echo).toEqual({ uid: NOBODY, echoed: count, checksum })
    // the nobody side closed its producer: the reply stream ended
    expect(await consumer.read()).toBeNull()
  })

  it("holds a name: creating it gives EEXIST and never touches the other user's file", async () => {
    const name = uniqueName('accs')
    const garbage = Buffer.from('not a shmq segment, and not yours'.repeat(40))
    expect(await access({ action: 'squat', path: `/dev/shm/${name}`, bytes: garbage.toString('base64') })).toEqual({ uid: NOBODY, ok: true })
    for (const create of [() => Producer.create(name, { capacity: 4096 }), () => Consumer.create(name, { capacity: 4096 })]) {
      let error
      try {
        create()
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(ShmqError)
      expect(error.code).toBe('EEXIST')
    }
    // opening it as a segment is refused too, and changes nothing
    expect(() => Consumer.open(name)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_NOT_SHMQ' }))
    const after = statSync(`/dev/shm/${name}`)
    expect({ uid: after.uid, mode: after.mode & 0o777, size: after.size }).toEqual({ uid: NOBODY, mode: 0o644, size: garbage.length })
    expect(readFileSync(`/dev/shm/${name}`).equals(garbage)).toBe(true)
    // no FIFOs were made for it
    expect(existsSync(`/dev/shm/.shmq-${name}.wake-consumer`)).toBe(false)
    expect(existsSync(`/dev/shm/.shmq-${name}.wake-producer`)).toBe(false)
  })

  it("holds a FIFO's name: creating the segment gives EEXIST, leaves nothing, keeps the other user's file", async () => {
    const name = uniqueName('accf')
    const fifo = `/dev/shm/.shmq-${name}.wake-producer`
    const bytes = Buffer.from('squatter')
    expect(await access({ action: 'squat', path: fifo, bytes: bytes.toString('base64') })).toEqual({ uid: NOBODY, ok: true })
    expect(() => Producer.create(name, { capacity: 4096 })).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    expect(existsSync(`/dev/shm/${name}`)).toBe(false)
    expect(existsSync(`/dev/shm/.shmq-${name}.wake-consumer`)).toBe(false)
    expect(statSync(fifo).uid).toBe(NOBODY)
    expect(readFileSync(fifo).equals(bytes)).toBe(true)
  })

  it("cannot plant a wake-up FIFO in someone else's segment: a FIFO of another owner is refused", async () => {
    const name = uniqueName('acco')
    Producer.create(name, { capacity: 4096, mode: 0o666 }).close()
    // root's FIFO is replaced by one that nobody made (as if nobody got there first)
    const fifo = `/dev/shm/.shmq-${name}.wake-consumer`
    rmSync(fifo)
    const made = spawnSync('mkfifo', ['-m', '0666', fifo], { uid: NOBODY, gid: NOBODY, env: NOBODY_ENV, cwd: staged })
    expect(made.status, String(made.stderr)).toBe(0)
    expect(statSync(fifo).uid).toBe(NOBODY)
    expect(() => Consumer.open(name)).toThrow(expect.objectContaining({ code: 'ERR_SHMQ_NOT_SHMQ' }))
  })
})

describe('names', () => {
  const id = process.pid
  const invalid = ['', `a/${id}`, `../acc${id}`, `/acc${id}`, `.acc${id}`, `-acc${id}`, `acc ${id}`, 'x'.repeat(201), `acc${id}\0x`, `acc${id}\t`, `accé${id}`]
  for (const bad of invalid) {
    it(`${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 10)}…(${bad.length})` : bad)} is refused everywhere, before touching /dev/shm`, () => {
      for (const call of [
        () => Producer.create(bad, { capacity: 4096 }),
        () => Consumer.create(bad, { capacity: 4096 }),
        () => Producer.open(bad),
        () => Consumer.open(bad),
        () => unlink(bad),
      ]) {
        expect(call).toThrow(expect.objectContaining({ name: 'ShmqError', code: 'ERR_SHMQ_INVALID_NAME' }))
      }
      // nothing was made under that name, nor where a path in it leads
      if (bad === '') return
      const first = bad.split('/')[0]
      const paths = [...shmPaths(bad), ...(first !== '' && first !== '..' ? [`/dev/shm/${first}`] : [])]
      for (const path of paths) expect(existsSync(path), path).toBe(false)
    })
  }
})

describe('a full /dev/shm', () => {
  it('is ENOSPC at create time (pages reserved), with no segment or FIFO left behind', async () => {
    const name = track(uniqueName('accn'))
    // a private mount namespace with a 1 MiB tmpfs on /dev/shm; if unshare or
    // mount fail, the child fails and so does this test
    const result = await access(
      { action: 'enospc', name, capacity: 4 << 20 },
      { asRoot: true, command: 'unshare', commandArgs: ['-m', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$@"', 'sh'] },
    )
    expect(result).toEqual({ uid: 0, control: 'created', code: 'ENOSPC', left: [] })
    // the private tmpfs never reached the real /dev/shm
    expect(existsSync(`/dev/shm/${name}`)).toBe(false)
    expect(existsSync(`/dev/shm/${name}-small`)).toBe(false)
  })
})
