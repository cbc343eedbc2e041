// Hostile input: segments whose header, positions and frames were corrupted
// (or whose file was truncated or extended) before opening. Every case must
// end as a ShmqError with an expected code or as valid reads: never another
// exception, never a hang, never a view outside the ring, never a signal.
// The engine is test/fixtures/fault-fuzz.cjs. SHMQ_FUZZ_CASES sets the number
// of in-process cases (default 10000); SHMQ_FUZZ_SEED replays a run (the seed
// is in every failure message).
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, deadline, seedFrom, start, track, uniqueName } from './fixtures/fault-harness.mjs'

const require = createRequire(import.meta.url)
const { prepare, runCase, newStats } = require('./fixtures/fault-fuzz.cjs')
const { Producer } = require('../dist/index.js')

const CASES = Number(process.env.SHMQ_FUZZ_CASES ?? 10_000)
const CHILD_CASES = 300
const SEED = seedFrom('SHMQ_FUZZ_SEED')

afterEach(cleanup)

function fuzzName() {
  const name = uniqueName('fuzz')
  track(`${name}-t`) // the templates are made under this name
  return name
}

describe('hostile segments', () => {
  it(`${CASES} corrupted or truncated segments end as ShmqErrors or valid reads, with every view inside the ring`, () => {
    const name = fuzzName()
    const templates = prepare(name, SEED)
    const stats = newStats()
    for (let index = 0; index < CASES; index++) {
      try {
        runCase(name, templates, SEED, index, stats)
      } catch (error) {
        throw new Error(`${error.message}\nreplay: SHMQ_FUZZ_SEED=${SEED} npx vitest run test/fuzz.test.mjs`, { cause: error })
      }
    }
    console.log(`fuzz: seed ${SEED}, ${stats.cases} cases (${stats.controls} intact), ${stats.views} views checked, outcomes ${JSON.stringify(stats.outcomes)}`)
    expect(stats.cases).toBe(CASES)
    // the corruptions reach every layer: opening, reading, and intact cases read exactly
    if (CASES >= 2000) {
      for (const outcome of ['read', 'read:ERR_SHMQ_CORRUPT', 'open:ERR_SHMQ_CORRUPT', 'open:ERR_SHMQ_NOT_SHMQ', 'open:ERR_SHMQ_VERSION']) {
        expect(stats.outcomes[outcome] ?? 0, `outcome ${outcome} (seed ${SEED}): ${JSON.stringify(stats.outcomes)}`).toBeGreaterThan(0)
      }
      expect(stats.controls, `seed ${SEED}`).toBeGreaterThan(0)
    }
  })

  it(`${CHILD_CASES} cases in a child process: none kills it by a signal`, async () => {
    const name = fuzzName()
    const seed = (SEED + 1) >>> 0
    const child = start('fault-fuzz.cjs', [JSON.stringify({ name, seed, first: 0, cases: CHILD_CASES })])
    const result = await deadline(child.closed, 60_000, `fuzz child (seed ${seed})`)
    expect({ code: result.code, signal: result.signal }, `seed ${seed}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toEqual({ code: 0, signal: null })
    const stats = JSON.parse(result.lines.at(-1))
    expect(stats.cases).toBe(CHILD_CASES)
    expect(stats.views).toBeGreaterThan(0)
  })
})

describe('a hostile owner word', () => {
  // An owner word is pid (low 32 bits) and start time (high 32 bits). A peer
  // with write access can store pid 0 (or one above INT_MAX) there. Reading
  // such a segment must not change how this process watches its other peers:
  // the pidfd watch (async resource 'shmq:process-watch') must still be used.
  async function watchesAfter(poison) {
    const name = uniqueName('fuzzo')
    track(name)
    track(`${name}-hostile`)
    // this process is the live producer the child follows
    const producer = Producer.create(name, { capacity: 1024 })
    const child = start('fault-owner.cjs', [JSON.stringify({ name, poison })])
    const result = await deadline(child.closed, 30_000, 'owner fixture').finally(() => producer.close())
    expect({ code: result.code, signal: result.signal }, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toEqual({ code: 0, signal: null })
    return JSON.parse(result.lines.at(-1))
  }

  it('a live peer is followed through a pidfd (control)', async () => {
    const report = await watchesAfter(false)
    expect(report.peer).toEqual({ pid: process.pid, alive: true })
    expect(report.watches).toBe(1)
  })

  it('after reading a segment whose producer owner says pid 0, a live peer is still followed through a pidfd', async () => {
    const report = await watchesAfter(true)
    // the hostile segment's producer is reported gone, as it should be
    expect(report.first).toEqual({ code: 'ERR_SHMQ_PEER_GONE' })
    expect(report.peer).toEqual({ pid: process.pid, alive: true })
    expect(report.watches, 'pidfd watches made for a live peer after meeting pid 0 in an owner word (0: liveness fell back to /proc polling for the whole process)').toBe(1)
  })
})
