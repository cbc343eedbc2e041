// Views into the ring kept past close() are detached (length 0): reading or
// writing them touches no unmapped memory.
import { createRequire } from 'node:module'
import { afterEach, expect, it } from 'vitest'
import { exitOf, killAll, removeSegment, spawnFixture, uniqueName } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Producer, Consumer } = require('../dist/index.js')

const names = []
const endpoints = []
afterEach(() => {
  killAll()
  for (const endpoint of endpoints.splice(0)) endpoint.close()
  for (const n of names.splice(0)) removeSegment(n)
})
function name(tag) {
  const n = uniqueName(tag)
  names.push(n)
  return n
}

function expectDetached(view) {
  expect(view.length).toBe(0)
  expect(view.byteLength).toBe(0)
  expect(view.buffer.byteLength).toBe(0)
  expect(view[0]).toBe(undefined)
  expect(view[view.length]).toBe(undefined)
  expect(Buffer.from(view).length).toBe(0)
  let sum = 0
  for (let i = 0; i < 100; i++) sum += view[i] ?? 0
  expect(sum).toBe(0)
  view[0] = 1 // a write to a detached view is dropped
  expect(view[0]).toBe(undefined)
}

it('views from tryRead, drain, read() and for-await have length 0 after c.close()', async () => {
  const n = name('views')
  const p = Producer.create(n, { capacity: 4096 })
  endpoints.push(p)
  const c = Consumer.open(n)
  for (let i = 1; i <= 4; i++) expect(p.tryWrite(new Uint8Array(100).fill(i))).toBe(true)
  const fromTryRead = c.tryRead()
  let fromDrain = null
  expect(c.drain((m) => (fromDrain = m), 1)).toBe(1)
  const fromRead = await c.read()
  let fromIterator = null
  for await (const m of c) {
    fromIterator = m
    break
  }
  // before close they are live views of the ring
  for (const [view, value] of [[fromTryRead, 1], [fromDrain, 2], [fromRead, 3], [fromIterator, 4]]) {
    expect(view.length).toBe(100)
    expect(view[0]).toBe(value)
  }
  c.close()
  for (const view of [fromTryRead, fromDrain, fromRead, fromIterator]) expectDetached(view)
  // the producer has its own mapping: it is untouched
  expect(p.tryWrite(Uint8Array.of(5))).toBe(true)
})

it("a producer's claimed view has length 0 after p.close(); the consumer's views are not affected", () => {
  const n = name('views')
  const p = Producer.create(n, { capacity: 4096 })
  const c = Consumer.open(n)
  endpoints.push(c)
  expect(p.tryWrite(Uint8Array.of(1, 2, 3))).toBe(true)
  const read = c.tryRead()
  const claimed = p.tryClaim(64)
  claimed.fill(7)
  expect(claimed.length).toBe(64)
  p.close()
  expectDetached(claimed)
  // the consumer's mapping is its own
  expect(Array.from(read)).toEqual([1, 2, 3])
  // the uncommitted claim was dropped by close(): the stream just ends
  expect(c.tryRead()).toBe(null)
  expect(c.ended).toBe(true)
})

it('stale views stay empty across gc() and new mappings that may reuse the address (separate process)', async () => {
  const prefix = uniqueName('stale')
  const rounds = 300
  const child = spawnFixture('stale-views.cjs', { prefix, rounds }, { ipc: false, execArgv: ['--expose-gc'] })
  const exit = await exitOf(child, 60_000)
  for (let i = 0; i < rounds; i++) removeSegment(`${prefix}-${i}`)
  expect(exit, child.describe()).toEqual({ code: 0, signal: null })
  const report = JSON.parse(child.stdout)
  expect(report).toEqual({ rounds, staleLengths: 0, staleReads: 0, fresh: rounds })
})
