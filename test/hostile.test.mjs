// Files another user (or another program) can put in /dev/shm, and what they
// can do to a live segment, run for real: sparse files on a full /dev/shm
// (SIGBUS through a mapping), file leases (opens that block for 45 s), holes
// punched into a mapped segment, and gc as an unprivileged user among other
// users' files. The tests run as root; some children run as nobody.
import { execFile, spawn } from 'node:child_process'
import { chownSync, closeSync, constants as fsConstants, existsSync, openSync, readFileSync, rmSync, truncateSync, writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, cleanup, deadline, shmPaths, start, track, uniqueName } from './fixtures/fault-harness.mjs'
import { LAYOUT } from './fixtures/harness.mjs'
import { stage, unstage } from './fixtures/stage.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, ShmqError, listSegments, collectGarbage } = require('../dist/index.js')

const CLI = path.join(ROOT, 'dist', 'cli.js')
const NOBODY = 65534
const NOBODY_ENV = { PATH: process.env.PATH, HOME: '/nonexistent' }

const endpoints = []
const holders = []
afterEach(() => {
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  for (const holder of holders.splice(0)) if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL')
  cleanup()
})

beforeAll(() => {
  expect(process.getuid(), 'these tests run as root').toBe(0)
})

function prefix(tag) {
  const base = uniqueName(tag)
  return (suffix) => track(`${base}-${suffix}`)
}

/** Runs the CLI (`options.cli`, default this checkout's) with `args`. */
function cli(args, { cli: script = CLI, ...options } = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { cwd: ROOT, ...options }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, signal: error ? error.signal : null, stdout, stderr })
    })
  })
}

function thrown(fn) {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('did not throw')
}

/** A ready segment's header over a sparse file of the segment's size: only the header's page exists. */
function plantSparseSegment(name, capacity) {
  const real = `${name}-source`
  track(real)
  Producer.create(real, { capacity }).close()
  const header = readFileSync(`/dev/shm/${real}`).subarray(0, LAYOUT.HEADER_BYTES)
  for (const file of shmPaths(real)) rmSync(file)
  const fd = openSync(`/dev/shm/${name}`, 'w', 0o600)
  writeSync(fd, header, 0, LAYOUT.HEADER_BYTES, 0)
  closeSync(fd)
  truncateSync(`/dev/shm/${name}`, LAYOUT.HEADER_BYTES + capacity)
}

describe('a sparse file on a full /dev/shm', () => {
  it('ls, gc --dry-run and open neither crash nor map it (private tmpfs, filled)', async () => {
    const name = prefix('hsparse')
    const base = name('x').slice(0, -2)
    // unshare must work here (root): if it does not, this fails loudly
    const child = start('hostile-fullshm.cjs', [JSON.stringify({ prefix: base })], {
      command: 'unshare',
      commandArgs: ['-m', 'sh', '-c', 'mount -t tmpfs -o size=256k tmpfs /dev/shm && exec "$@"', 'sh'],
    })
    const result = await deadline(child.closed, 60_000, 'hostile-fullshm')
    expect({ code: result.code, signal: result.signal }, result.stderr).toEqual({ code: 0, signal: null })
    const seen = JSON.parse(result.lines.at(-1))
    expect(seen.shmBytes).toBe(256 * 1024)
    expect(seen.fill).toBe('ENOSPC')
    // the planted files: no page at all; only the header's page
    expect(seen.blocks).toEqual({ blank: 0, header: 8 })
    // the control proves the trap: mapping the planted file and reading it is SIGBUS
    expect(seen.control).toEqual({ status: null, signal: 'SIGBUS' })
    expect(seen.ls.signal).toBe(null)
    expect(seen.ls.status).toBe(0)
    // zeros without FIFOs are nobody's segment; the sparse one is reported, not read
    expect(seen.ls.output).toEqual([expect.objectContaining({ name: `${base}-header`, kind: 'unreadable', error: expect.stringContaining('unallocated pages') })])
    expect(seen.gcDry).toEqual({ status: 0, signal: null, output: { removed: [], orphanFifos: [], staleBridgeFiles: [], skipped: [] } })
    expect(seen.open).toEqual({
      blankConsumer: 'ERR_SHMQ_NOT_READY',
      blankProducer: 'ERR_SHMQ_NOT_READY',
      headerConsumer: 'ERR_SHMQ_CORRUPT',
      headerProducer: 'ERR_SHMQ_CORRUPT',
    })
    expect(seen.mapped).toEqual([])
  }, 90_000)

  it('a sparse file with a valid header is refused before mapping, listed as unreadable, never collected', async () => {
    const name = prefix('hsparse')
    const sparse = name('seg')
    plantSparseSegment(sparse, 64 * 1024)
    const error = thrown(() => Consumer.open(sparse))
    expect(error).toBeInstanceOf(ShmqError)
    expect(error.code).toBe('ERR_SHMQ_CORRUPT')
    expect(error.message).toContain('unallocated pages')
    expect(thrown(() => Producer.open(sparse)).code).toBe('ERR_SHMQ_CORRUPT')
    expect(readFileSync('/proc/self/maps', 'utf8')).not.toContain(sparse)
    expect(listSegments(sparse)).toEqual([expect.objectContaining({ name: sparse, kind: 'unreadable' })])
    expect(collectGarbage({ prefix: sparse, graceMs: 0 })).toEqual({ removed: [], orphanFifos: [], staleBridgeFiles: [], skipped: [] })
    expect(existsSync(`/dev/shm/${sparse}`)).toBe(true)
  })
})

describe('a file lease on a segment', () => {
  /** python3 takes a write lease on /dev/shm/NAME (its owner, root) and holds it, ignoring the break signal. */
  async function lease(name) {
    const holder = spawn('python3', [path.join(ROOT, 'test', 'fixtures', 'hostile-lease.py'), `/dev/shm/${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    holders.push(holder)
    let stderr = ''
    holder.stderr.on('data', (chunk) => (stderr += chunk))
    const leased = new Promise((resolve, reject) => {
      holder.stdout.on('data', (chunk) => String(chunk).includes('leased') && resolve())
      holder.on('exit', (code, signal) => reject(new Error(`lease holder exited (${code}, ${signal}): ${stderr}`)))
    })
    await deadline(leased, 30_000, 'lease holder')
    return holder
  }

  it('ls and gc skip it as unreadable at once; open fails with EAGAIN at its timeout, not after the lease-break time', async () => {
    const name = prefix('hlease')
    const leased = name('seg')
    Producer.create(leased, { capacity: 4096 }).close()
    const holder = await lease(leased)
    const ls = await cli(['ls', '--json', '--prefix', leased])
    expect(ls.code, ls.stderr).toBe(0)
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ name: leased, kind: 'unreadable', error: expect.stringContaining('EAGAIN') })])
    const gc = await cli(['gc', '--json', '--prefix', leased])
    expect(gc.code, gc.stderr).toBe(0)
    expect(JSON.parse(gc.stdout)).toEqual({ removed: [], orphanFifos: [], staleBridgeFiles: [], skipped: [] })
    expect(shmPaths(leased).map((file) => existsSync(file))).toEqual([true, true, true])
    for (const open of [() => Consumer.open(leased, { timeout: 300 }), () => Producer.open(leased)]) {
      const started = Date.now()
      const error = thrown(open)
      // the lease-break time is 45 s: returning well before it means the open did not block
      expect(Date.now() - started).toBeLessThan(15_000)
      expect(error).toBeInstanceOf(ShmqError)
      expect(error.code).toBe('EAGAIN')
      expect(error.message).toContain('lease')
    }
    const gone = new Promise((resolve) => holder.on('exit', resolve))
    holder.kill('SIGKILL')
    await deadline(gone, 30_000, 'lease holder')
    // the lease gone, the segment opens as before
    endpoints.push(Consumer.open(leased, { timeout: 5000 }))
  }, 60_000)
})

describe('a hole punched into a mapped segment', () => {
  it('a consumer parked in read() gets ERR_SHMQ_CORRUPT on wake-up, as for a shrunk file', async () => {
    const name = prefix('hpunch')
    const n = name('seg')
    const child = start('shrink-consumer.cjs', [JSON.stringify({ name: n, how: 'read' })])
    await deadline(child.line((line) => line === '{"parked":true}'), 30_000, 'parked consumer')
    // the ring's page (1024 + 4096 bytes: the header's page and the ring's second page)
    const punch = await new Promise((resolve) => execFile('fallocate', ['--punch-hole', '--offset', '4096', '--length', '4096', `/dev/shm/${n}`], (error) => resolve(error)))
    expect(punch).toBe(null)
    const fd = openSync(`/dev/shm/.shmq-${n}.wake-consumer`, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK)
    writeSync(fd, Buffer.of(0))
    closeSync(fd)
    const result = await deadline(child.closed, 30_000, 'punched consumer')
    expect({ code: result.code, signal: result.signal }, result.stderr).toEqual({ code: 0, signal: null })
    expect(result.lines.map((line) => JSON.parse(line))).toEqual([{ parked: true }, { code: 'ERR_SHMQ_CORRUPT', isShmqError: true }, { closed: true }])
  }, 60_000)
})

describe('gc as an unprivileged user', () => {
  it("skips other users' abandoned segments and FIFOs (reported), removes its own, and --dry-run lists only what it can remove", async () => {
    const name = prefix('hperm')
    const base = name('x').slice(0, -2)
    // root's: an abandoned segment nobody can read (mode 0644), and orphan FIFOs
    const rootSegment = name('a-root')
    Producer.create(rootSegment, { capacity: 4096, mode: 0o644 }).close()
    const rootOrphan = name('b-root-orphan')
    Producer.create(rootOrphan, { capacity: 4096 }).close()
    rmSync(`/dev/shm/${rootOrphan}`)
    // nobody's: abandoned segments whose three files belong to nobody
    const own = [name('c-own'), name('d-own')]
    for (const segment of own) {
      Producer.create(segment, { capacity: 4096 }).close()
      for (const file of shmPaths(segment)) chownSync(file, NOBODY, NOBODY)
    }
    // nobody runs a staged copy of the CLI: the checkout may be private
    const staged = stage()
    const asNobody = { uid: NOBODY, gid: NOBODY, env: NOBODY_ENV, cwd: staged, cli: path.join(staged, 'dist', 'cli.js') }
    try {
      const dry = await cli(['gc', '--dry-run', '--json', '--prefix', base], asNobody)
      expect(dry.code, dry.stderr).toBe(0)
      const dryResult = JSON.parse(dry.stdout)
      expect(dryResult.removed.map((report) => report.name)).toEqual(own)
      expect(dryResult.orphanFifos).toEqual([])
      expect(dryResult.skipped.map((entry) => entry.name).sort()).toEqual([rootSegment, `.shmq-${rootOrphan}.wake-consumer`, `.shmq-${rootOrphan}.wake-producer`].sort())
      for (const entry of dryResult.skipped) expect(entry.error).toMatch(/^EPERM: /)
      for (const segment of [rootSegment, ...own]) expect(shmPaths(segment).map((file) => existsSync(file)), segment).toEqual([true, true, true])

      const done = await cli(['gc', '--json', '--prefix', base], asNobody)
      expect(done.code, done.stderr).toBe(0)
      const doneResult = JSON.parse(done.stdout)
      expect(doneResult.removed.map((report) => report.name)).toEqual(own)
      expect(doneResult.skipped).toEqual(dryResult.skipped)
      for (const segment of own) expect(shmPaths(segment).map((file) => existsSync(file)), segment).toEqual([false, false, false])
      expect(shmPaths(rootSegment).map((file) => existsSync(file))).toEqual([true, true, true])
      expect(shmPaths(rootOrphan).map((file) => existsSync(file))).toEqual([false, true, true])
      // the table says so too
      const table = await cli(['gc', '--prefix', base], asNobody)
      expect(table.stdout).toContain(`skipped ${rootSegment}: EPERM`)
    } finally {
      unstage(staged)
    }
  }, 60_000)
})
