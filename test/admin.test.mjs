// Stale-segment housekeeping: `shmq ls` / `shmq gc` (dist/cli.js) and the
// library calls behind them (listSegments, collectGarbage), on segments held
// by real child processes that live, die or never were. Every call is limited
// to a prefix unique to its test: other tests' segments share /dev/shm.
import { execFile, spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ROOT, cleanup, deadline, shmPaths, start, track, uniqueName } from './fixtures/fault-harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer, listSegments, collectGarbage } = require('../dist/index.js')

const CLI = path.join(ROOT, 'dist', 'cli.js')

const endpoints = []
afterEach(() => {
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  cleanup()
})

/** A prefix no other test or run uses; every name made under it is removed after the test. */
function prefix() {
  const base = uniqueName('fadm')
  return (suffix) => track(`${base}-${suffix}`)
}

function cli(...args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      if (error) reject(new Error(`shmq ${args.join(' ')} failed: ${error.message}\n${stderr}`))
      else resolve({ stdout, stderr })
    })
  })
}

async function cliJson(...args) {
  return JSON.parse((await cli(...args, '--json')).stdout)
}

/** A child holding `role` of `name` (creating it when `create`); resolves once it is ready. */
async function holder(options) {
  const child = start('fault-holder.cjs', [JSON.stringify({ capacity: 4096, ...options })])
  await deadline(child.line((line) => line === 'ready'), 30_000, `holder of ${options.name}`)
  return child
}

async function kill(child) {
  child.kill()
  const result = await deadline(child.closed, 30_000, 'killed holder')
  expect(result.signal).toBe('SIGKILL')
}

function allFilesOf(name) {
  return shmPaths(name).map((file) => existsSync(file))
}

describe('shmq ls', () => {
  it('lists each segment with kind, size, fill, and whether each peer is alive', async () => {
    const name = prefix()
    const live = name('seg')
    const child = await holder({ name: live, role: 'producer', create: true, messages: 3, length: 20 })
    const listed = await cliJson('ls', '--prefix', name(''))
    // the file's facts: owner, mode (default 0600), creation time and age (checked in 'shmq ls --json: uid, mode, age')
    for (const report of listed) {
      expect(report).toMatchObject({ uid: process.getuid(), mode: 0o600 })
      expect(report.ageMs).toBeGreaterThanOrEqual(0)
    }
    const withoutAge = (reports) => reports.map(({ ageMs, ...rest }) => rest)
    const before = withoutAge(listed)
    expect(before).toEqual([
      {
        name: live,
        kind: 'spsc',
        size: 640 + 4096, // the SPSC header (two slots), then the ring
        capacity: 4096,
        fill: 3 * 32, // three frames: 8-byte header + 20 bytes, rounded up to 8
        producer: { pid: child.child.pid, alive: true },
        producers: [{ slot: 1, pid: child.child.pid, alive: true }],
        maxProducers: 1,
        consumer: null,
        subscribers: [],
        maxSubscribers: 0,
        ended: false,
        uid: process.getuid(),
        mode: 0o600,
        createdAt: listed[0].createdAt,
      },
    ])
    // the library says the same
    expect(withoutAge(listSegments(name('')))).toEqual(before)
    // a consumer attaches (this process), and the producer is killed
    const consumer = Consumer.open(live)
    endpoints.push(consumer)
    await kill(child)
    const after = withoutAge(await cliJson('ls', '--prefix', name('')))
    expect(after).toEqual([
      { ...before[0], producer: { pid: child.child.pid, alive: false }, producers: [{ slot: 1, pid: child.child.pid, alive: false }], consumer: { pid: process.pid, alive: true } },
    ])
    // the table for people
    const table = (await cli('ls', '--prefix', name(''))).stdout
    expect(table).toContain(live)
    expect(table).toContain(`${child.child.pid} (dead)`)
    expect(table).toContain(`${process.pid} (alive)`)
    expect(table).toContain('96B (2%)')
  })

  it('leaves out files that are not shmq segments', async () => {
    const name = prefix()
    writeFileSync(`/dev/shm/${name('garbage')}`, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)))
    const real = name('real')
    Producer.create(real, { capacity: 1024 }).close()
    expect((await cliJson('ls', '--prefix', name(''))).map((report) => report.name)).toEqual([real])
  })
})

describe('shmq ls: owner, mode, age', () => {
  it('--json has uid, mode, createdAt and ageMs; the table has AGE, UID and MODE', async () => {
    const name = prefix()
    const segment = name('mode')
    const t = Date.now()
    Producer.create(segment, { capacity: 1024, mode: 0o640 }).close()
    const [report] = await cliJson('ls', '--prefix', name(''))
    expect(report).toMatchObject({ name: segment, uid: process.getuid(), mode: 0o640 })
    expect(report.ageMs).toBeGreaterThanOrEqual(0)
    expect(report.ageMs).toBeLessThan(30_000)
    // birth time (or ctime): within a few ms of when the test made it, never before
    expect(report.createdAt).toBeGreaterThanOrEqual(t - 1000)
    expect(report.createdAt).toBeLessThanOrEqual(Date.now())
    const [header, row] = (await cli('ls', '--prefix', name(''))).stdout.trimEnd().split('\n')
    expect(header.split(/\s+/)).toEqual(['NAME', 'KIND', 'SIZE', 'FILL', 'PRODUCER', 'CONSUMER', 'AGE', 'UID', 'MODE', 'STATE'])
    expect(row).toMatch(new RegExp(`\\s\\d+s\\s+${process.getuid()}\\s+0640\\s`))
  })
})

describe('shmq --help and usage errors', () => {
  function run(...args) {
    return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' })
  }
  it('--help prints usage and the exit codes on stdout and exits 0; an unknown flag exits 2 with the usage on stderr', () => {
    for (const args of [['--help'], ['ls', '--help'], ['gc', '--help'], ['bench', '--help']]) {
      const result = run(...args)
      expect(result.status, args.join(' ')).toBe(0)
      expect(result.stdout, args.join(' ')).toMatch(/^usage: shmq/)
      expect(result.stdout, args.join(' ')).toMatch(/exit codes: .*0 ok, 1 failure, 2 usage/)
    }
    for (const args of [['ls', '--bogus'], ['gc', '--json', '--nope'], ['ls', '--dry-run'], ['frobnicate'], ['ls', '--prefix']]) {
      const result = run(...args)
      expect(result.status, args.join(' ')).toBe(2)
      expect(result.stderr, args.join(' ')).toContain('usage: shmq')
      expect(result.stdout, args.join(' ')).toBe('')
    }
  })

  it('shmq bench --quick --only heap: the table on stdout, progress as plain lines on a stderr that is no TTY', async () => {
    const result = await new Promise((resolve) => {
      execFile(process.execPath, [CLI, 'bench', '--quick', '--only', 'heap'], { cwd: ROOT, timeout: 120_000 }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr }))
    })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('heap')
    expect(result.stderr).toMatch(/^heap run 1\/1 shmq: /m)
    expect(result.stderr).not.toContain('\r')
  }, 150_000)
})

describe('shmq gc', () => {
  it('reports with --dry-run, then removes only segments whose peers are all dead or absent, and orphan FIFOs', async () => {
    const name = prefix()
    // alive: a live producer; a live consumer; a dead producer with a live consumer (this process)
    const liveProducer = name('live-producer')
    const liveConsumer = name('live-consumer')
    const mixed = name('mixed')
    const holders = [
      await holder({ name: liveProducer, role: 'producer', create: true, messages: 2 }),
      await holder({ name: liveConsumer, role: 'consumer', create: true }),
    ]
    endpoints.push(Consumer.create(mixed, { capacity: 4096 }))
    await kill(await holder({ name: mixed, role: 'producer', create: false, messages: 1 }))
    // abandoned: a killed producer with unread messages; both sides killed; a stream closed cleanly;
    // a creator that died before publishing the header (zeroed file of a segment's size, with its FIFOs)
    const dead = name('dead')
    await kill(await holder({ name: dead, role: 'producer', create: true, messages: 5 }))
    const deadBoth = name('dead-both')
    const consumerOfDeadBoth = await holder({ name: deadBoth, role: 'consumer', create: true })
    await kill(await holder({ name: deadBoth, role: 'producer', create: false, messages: 1 }))
    await kill(consumerOfDeadBoth)
    const closed = name('closed')
    Producer.create(closed, { capacity: 4096 }).close()
    const uninitialised = name('uninitialised')
    Producer.create(uninitialised, { capacity: 4096 }).close()
    writeFileSync(`/dev/shm/${uninitialised}`, Buffer.alloc(1024 + 4096))
    // not shmq's: garbage under a shmq-like name
    const garbage = name('garbage')
    writeFileSync(`/dev/shm/${garbage}`, Buffer.from(Array.from({ length: 5120 }, (_, i) => (i * 131 + 7) & 0xff)))
    // orphan FIFOs: their segment file is gone
    const orphan = name('orphan')
    Producer.create(orphan, { capacity: 4096 }).close()
    rmSync(`/dev/shm/${orphan}`)

    // stats files of bridges (lib/bridge-stats.ts): one of a process that exited, one of this live one
    const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    const deadBridge = `.shmq-${liveConsumer}.bridge-${exited.stdout}`
    const liveBridge = `.shmq-${liveConsumer}.bridge-${process.pid}`
    for (const file of [deadBridge, liveBridge]) writeFileSync(`/dev/shm/${file}`, '{}')

    const abandoned = [closed, dead, deadBoth, uninitialised].sort()
    const orphanFifos = [`.shmq-${orphan}.wake-consumer`, `.shmq-${orphan}.wake-producer`]
    const kept = [liveConsumer, liveProducer, mixed]

    const dry = await cliJson('gc', '--dry-run', '--prefix', name(''))
    expect(dry.removed.map((report) => report.name).sort()).toEqual(abandoned)
    expect(dry.orphanFifos.sort()).toEqual(orphanFifos)
    expect(dry.staleBridgeFiles).toEqual([deadBridge])
    const deadReport = dry.removed.find((report) => report.name === dead)
    expect(deadReport).toMatchObject({ kind: 'spsc', fill: 5 * 24, consumer: null, producer: { alive: false } })
    // nothing was removed
    for (const segment of [...abandoned, ...kept]) expect(allFilesOf(segment), segment).toEqual([true, true, true])
    expect(existsSync(`/dev/shm/${garbage}`)).toBe(true)
    expect(allFilesOf(orphan)).toEqual([false, true, true])
    expect((await cli('gc', '--dry-run', '--prefix', name(''))).stdout).toContain(`would remove ${dead} (4.6K, 120B unread)`)

    const done = await cliJson('gc', '--prefix', name(''))
    expect(done.removed.map((report) => report.name).sort()).toEqual(abandoned)
    expect(done.orphanFifos.sort()).toEqual(orphanFifos)
    expect(done.staleBridgeFiles).toEqual([deadBridge])
    expect([existsSync(`/dev/shm/${deadBridge}`), existsSync(`/dev/shm/${liveBridge}`)]).toEqual([false, true])
    rmSync(`/dev/shm/${liveBridge}`)
    for (const segment of abandoned) expect(allFilesOf(segment), segment).toEqual([false, false, false])
    for (const segment of kept) expect(allFilesOf(segment), segment).toEqual([true, true, true])
    expect(existsSync(`/dev/shm/${garbage}`)).toBe(true)
    expect(allFilesOf(orphan)).toEqual([false, false, false])
    expect(listSegments(name('')).map((report) => report.name)).toEqual(kept)
    // the survivors still work: the live producer's messages are there for a consumer
    const consumer = Consumer.open(liveProducer)
    endpoints.push(consumer)
    expect(consumer.drain(() => {})).toBe(2)
    // a second run has nothing to do
    expect(await cliJson('gc', '--prefix', name(''))).toEqual({ removed: [], orphanFifos: [], staleBridgeFiles: [], skipped: [] })
    for (const child of holders) child.kill()
  })

  it('never removes a file that cannot be a shmq segment: zero-filled, of no segment size, without FIFOs', async () => {
    // 4096 bytes: a segment is 1024 + a power of two >= 1024 bytes, and has two FIFOs; this
    // could be any program's fresh shared memory (shm_open + ftruncate) under a shmq-like name
    const name = prefix()
    const zeros = name('zeros')
    writeFileSync(`/dev/shm/${zeros}`, Buffer.alloc(4096))
    const dry = await cliJson('gc', '--dry-run', '--prefix', name(''))
    await cli('gc', '--prefix', name(''))
    expect(existsSync(`/dev/shm/${zeros}`), 'shmq gc removed a zero-filled file that is not a shmq segment').toBe(true)
    expect(dry.removed).toEqual([])
    expect(await cliJson('ls', '--prefix', name(''))).toEqual([])
  })

  it('never removes what only looks like shmq: a 0-byte file held open, zeros of a segment size without FIFOs, non-FIFO "FIFOs"', async () => {
    const name = prefix()
    // a 0-byte file a live process holds open (any program's fresh shm_open)
    const empty = name('empty')
    const holderFd = openSync(`/dev/shm/${empty}`, 'w', 0o600)
    // zeros of a segment's size (1024 + 4096), no FIFOs
    const zeros = name('zeros')
    writeFileSync(`/dev/shm/${zeros}`, Buffer.alloc(1024 + 4096))
    // zeros of a segment's size whose "FIFOs" are regular files
    const fakeFifos = name('fake-fifos')
    writeFileSync(`/dev/shm/${fakeFifos}`, Buffer.alloc(1024 + 4096))
    for (const file of shmPaths(fakeFifos).slice(1)) writeFileSync(file, '')
    // a regular file named like the wake-up FIFO of a segment that does not exist
    const lonely = `/dev/shm/.shmq-${name('lonely')}.wake-consumer`
    writeFileSync(lonely, 'not a fifo')
    try {
      const dry = await cliJson('gc', '--dry-run', '--prefix', name(''))
      const done = await cliJson('gc', '--prefix', name(''))
      for (const result of [dry, done]) expect(result).toEqual({ removed: [], orphanFifos: [], staleBridgeFiles: [], skipped: [] })
      for (const file of [`/dev/shm/${empty}`, `/dev/shm/${zeros}`, ...shmPaths(fakeFifos), lonely]) expect(existsSync(file), file).toBe(true)
      expect(await cliJson('ls', '--prefix', name(''))).toEqual([])
    } finally {
      closeSync(holderFd)
    }
  })
})

describe('the library calls', () => {
  it('listSegments(prefix) and collectGarbage({ prefix }) see and remove only what is theirs to remove', async () => {
    const name = prefix()
    const live = name('live')
    const dead = name('dead')
    const child = await holder({ name: live, role: 'producer', create: true })
    await kill(await holder({ name: dead, role: 'consumer', create: true }))
    const reports = listSegments(name(''))
    expect(reports.map((report) => [report.name, report.producer?.alive ?? null, report.consumer?.alive ?? null])).toEqual([
      [dead, null, false],
      [live, true, null],
    ])
    // another prefix sees none of them
    expect(listSegments(`${name('')}nothing`)).toEqual([])
    const dry = collectGarbage({ prefix: name(''), dryRun: true })
    expect(dry.removed.map((report) => report.name)).toEqual([dead])
    expect(allFilesOf(dead)).toEqual([true, true, true])
    const result = collectGarbage({ prefix: name('') })
    expect(result.removed.map((report) => report.name)).toEqual([dead])
    expect(result.orphanFifos).toEqual([])
    expect(allFilesOf(dead)).toEqual([false, false, false])
    expect(allFilesOf(live)).toEqual([true, true, true])
    // a live peer is never collected, however long it idles
    expect(collectGarbage({ prefix: name(''), graceMs: 0 }).removed).toEqual([])
    child.kill()
  })
})
