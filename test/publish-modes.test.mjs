// The two ways of publishing positions (lib/fence.ts) mixed across processes:
// one side publishes with plain stores and relies on the parker's membarrier,
// the other (SHMQ_FENCED_PUBLISH=1) publishes with Atomics.store. Both
// directions, 1,000,000 messages through a 4 KiB ring that is full or empty
// every few messages, so both sides park and wake each other all the time: a
// lost wake-up is a hang, a torn publish a bad message. Each side reports the
// mode it really ran in, and the test prints it.
import { afterEach, describe, expect, it } from 'vitest'
import { spawnFixture, uniqueName, removeSegment, killAll, exitOf, deadline } from './fixtures/harness.mjs'

const COUNT = 1_000_000
const names = []

afterEach(() => {
  killAll()
  for (const name of names.splice(0)) removeSegment(name)
})

const plainEnv = { ...process.env }
delete plainEnv.SHMQ_FENCED_PUBLISH
const fencedEnv = { ...process.env, SHMQ_FENCED_PUBLISH: '1' }

/** The mode a side must run in: fenced when forced; otherwise plain exactly where the machine allows it. */
function expectedPlain(mode) {
  return !mode.forced && mode.arch === 'x64' && mode.canFence && mode.registered
}

describe('plain and fenced publishing, mixed (4 KiB ring, sizes 0..2040)', () => {
  for (const plainSide of ['producer', 'consumer']) {
    const fencedSide = plainSide === 'producer' ? 'consumer' : 'producer'
    it(`${plainSide} plain, ${fencedSide} fenced: ${COUNT.toLocaleString('en')} messages, every wait parked`, async () => {
      const name = uniqueName('modes')
      names.push(name)
      const seed = plainSide === 'producer' ? 0x6006 : 0x7007
      const base = { name, count: COUNT, seed, spin: 0 }
      const envOf = (side) => (side === plainSide ? plainEnv : fencedEnv)
      const consumer = spawnFixture('publish-mode.cjs', { ...base, side: 'consumer', create: true, capacity: 4096, mode: 'drain' }, { env: envOf('consumer') })
      await consumer.next('ready')
      const producer = spawnFixture('publish-mode.cjs', { ...base, side: 'producer', create: false, mode: 'tryWrite' }, { env: envOf('producer') })
      const modes = { producer: await producer.next('mode'), consumer: await consumer.next('mode') }
      const [sent, received] = await deadline(Promise.all([producer.next('done'), consumer.next('done')]), 180_000, `stream ${name}`).catch((error) => {
        throw new Error(`${error.message}\n${producer.describe()}\n${consumer.describe()}`)
      })
      expect(await exitOf(producer), producer.describe()).toEqual({ code: 0, signal: null })
      expect(await exitOf(consumer), consumer.describe()).toEqual({ code: 0, signal: null })
      const describeMode = (side) => {
        const mode = modes[side]
        return `${side} ${mode.plain ? 'plain' : 'fenced'}${mode.forced ? ' (SHMQ_FENCED_PUBLISH=1)' : mode.plain ? '' : ` (membarrier ${mode.canFence ? 'available' : 'unavailable'}, ${mode.arch})`}`
      }
      console.log(`publish modes: ${describeMode('producer')}, ${describeMode('consumer')}; this machine ${expectedPlain({ ...modes[plainSide], forced: false }) ? 'runs plain publishing by default' : 'cannot run plain publishing: only fenced mode was tested'}`)
      expect(modes[fencedSide]).toMatchObject({ forced: true, plain: false })
      expect(modes[plainSide].forced).toBe(false)
      expect(modes[plainSide].plain).toBe(expectedPlain(modes[plainSide]))
      expect(sent.count).toBe(COUNT)
      expect(received.count).toBe(COUNT)
      expect(received.checksum).toBe(sent.checksum)
      expect(received.endedAfter).toBe(true)
      expect(received.nullAfter).toBe(true)
    }, 200_000)
  }
})
