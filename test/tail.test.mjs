// `shmq tail`: prints messages as they pass without consuming them. Spawned
// against a live channel written by another process and read by this one:
// what tail printed is in order and intact, and the consumer's view of the
// stream is unchanged (every message, in order, none taken by tail).
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import { deadline, exitOf, spawnFixture, testSegments } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Consumer, Producer } = require('../dist/index.js')
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js')
const { endpoints, segmentName } = testSegments(afterEach)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function startTail(args) {
  const child = spawn(process.execPath, [CLI, 'tail', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  return { child, exited, output: () => ({ stdout, stderr }) }
}

for (const [producers, timestamps] of [['one', false], ['many', false], ['one', true]]) {
  it(`follows a live ${producers === 'one' ? 'SPSC' : 'MPSC'} channel${timestamps ? ' with timestamps (printed without them)' : ''} without taking anything from its consumer`, async () => {
    const name = segmentName(`tail-${producers}${timestamps ? '-ts' : ''}`)
    const consumer = Consumer.create(name, { capacity: 1 << 16, producers, timestamps })
    endpoints.push(consumer)
    const tail = startTail([name, '--format', 'utf8', '-n', '0', '--interval', '2'])
    await sleep(300) // tail has started following
    const count = 3000
    const producer = spawnFixture('stat-producer.cjs', { name, count, text: true, pauseEvery: 20, pauseMs: 2 })
    const got = []
    const started = Date.now()
    while (got.length < count) {
      if (producers === 'one') {
        // SPSC: a consumer that reads each message at once; tail still sees what it released (until overwritten)
        const message = await deadline(consumer.read(), 30_000, 'consumer read')
        got.push(Buffer.from(message).toString())
        expect(consumer.lastType).toBe(7)
      } else {
        // MPSC: the consumer zeroes what it releases, so tail sees what waits in the ring: a consumer reading every 10 ms
        await sleep(10)
        consumer.drain((message) => got.push(Buffer.from(message).toString()))
        expect(Date.now() - started).toBeLessThan(60_000)
      }
    }
    // the consumer saw the whole stream, in order: tail took nothing from it
    expect(got).toEqual(Array.from({ length: count }, (_, i) => `msg ${i}`))
    await deadline(producer.next('written'), 30_000, 'producer written')
    await sleep(100)
    tail.child.kill('SIGINT')
    expect(await tail.exited).toEqual({ code: 0, signal: null })
    const { stdout, stderr } = tail.output()
    const seen = stdout.split('\n').filter((line) => line !== '').map((line) => {
      const match = /^type=7 length=(\d+) "msg (\d+)"$/.exec(line)
      expect(match, line).not.toBe(null)
      expect(Number(match[1])).toBe(`msg ${match[2]}`.length)
      return Number(match[2])
    })
    // what it printed is intact and in stream order; it says how many it missed
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1])
    expect(seen.length).toBeGreaterThan(count / 10)
    expect(stderr).toMatch(new RegExp(`${seen.length} messages shown`))
    if (seen.length < count) expect(stderr).toContain('missed at least')
    producer.send({ type: 'exit' })
    expect(await exitOf(producer)).toEqual({ code: 0, signal: null })
  })
}

it('-n prints the last messages the ring holds, --format hex and json, and usage errors exit 2', async () => {
  const name = segmentName('tail-last')
  const consumer = Consumer.create(name, { capacity: 1 << 14 })
  const producer = Producer.open(name)
  endpoints.push(consumer, producer)
  for (let i = 0; i < 20; i++) producer.tryWrite(Buffer.from(JSON.stringify({ i })), 3)
  const json = startTail([name, '--format', 'json', '-n', '5'])
  await sleep(500)
  json.child.kill('SIGINT')
  expect(await json.exited).toEqual({ code: 0, signal: null })
  expect(json.output().stdout.trim().split('\n')).toEqual([15, 16, 17, 18, 19].map((i) => `type=3 length=${JSON.stringify({ i }).length} {"i":${i}}`))
  const hex = startTail([name, '-n', '1'])
  await sleep(500)
  hex.child.kill('SIGINT')
  await hex.exited
  expect(hex.output().stdout.trim()).toBe(`type=3 length=8 ${Buffer.from('{"i":19}').toString('hex')}`)
  // nothing was consumed
  expect(Buffer.from(consumer.tryRead()).toString()).toBe('{"i":0}')
  for (const args of [[], ['a', 'b'], [name, '--format', 'xml'], [name, '-n', '-1']]) {
    const bad = startTail(args)
    expect((await bad.exited).code).toBe(2)
  }
  const missing = startTail(['shmqtest-no-such-channel'])
  expect((await missing.exited).code).toBe(1)
})
