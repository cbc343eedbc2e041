// The bridge's bounds and its errors, against a real nats-server.
import { afterEach, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { freePort } from './nats-server.mjs'
import { bridgeReport, bridgeTestSession, nextMessage, ready, spawnChild, startBridge } from './harness.mjs'

const require = createRequire(import.meta.url)
const { bridge } = require('../../dist/bridge/index.js')
const cli = path.resolve(__dirname, '../../dist/cli.js')

const session = bridgeTestSession(afterEach)
const names = session.names
let nats = null

describe('bridge limits', () => {
  it('a slow local consumer: JetStream holds the backlog, the bridge waits on the ring and its memory stays bounded', async () => {
    nats = await session.startNats({ jetstream: true })
    const [a, b] = [`bridge-slow-a-${process.pid}`, `bridge-slow-b-${process.pid}`]
    names.push(a, b)
    const subject = `slow.${process.pid}`
    const COUNT = 4000
    const SIZE = 32 * 1024 // 128 MB through a 256 KiB ring
    const bridgeB = startBridge({ from: `${nats.url}/${subject}`, to: `shm:${b}`, delivery: 'at-least-once', stream: 'SLOW', capacity: 1 << 18, maxInFlightBytes: 1 << 20 })
    await ready(bridgeB)
    // the consumer reads nothing for 4 s, then naps every 200 messages
    const consumer = spawnChild('bridge-consumer.cjs', [b, 'dedup', JSON.stringify({ pauseMs: 4000, sleepEvery: 200, sleepMs: 30 })])
    await ready(consumer)
    const bridgeA = startBridge({ from: `shm:${a}`, to: `${nats.url}/${subject}`, delivery: 'at-least-once', stream: 'SLOW' })
    await ready(bridgeA)
    const producer = spawnChild('bridge-producer.cjs', [a, String(COUNT), String(SIZE), '5'])
    const { result } = await nextMessage(consumer, (m) => 'result' in m || 'error' in m, 280_000)
    const finalB = await bridgeReport(bridgeB)
    const finalA = await bridgeReport(bridgeA)
    for (const child of [producer, consumer]) expect(await child.exited).toEqual({ code: 0, signal: null })
    expect(finalA.exit).toEqual({ code: 0, signal: null })
    expect(finalB.exit).toEqual({ code: 0, signal: null })
    const { stats, memory, maxInFlightBytes } = finalB.report
    console.log('slow consumer', JSON.stringify(result), JSON.stringify(stats), JSON.stringify(memory), maxInFlightBytes)
    expect(result.expected).toBe(COUNT)
    expect(result.outOfOrder + result.corrupt).toBe(0)
    // flow control engaged: the bridge spent most of the consumer's pause waiting for room, one message at a time
    expect(stats.backpressureMs).toBeGreaterThan(2000)
    expect(maxInFlightBytes).toBeLessThanOrEqual(SIZE)
    // ~64 MB passed through while the bridge's heap and rss grew by far less
    expect(memory.peak.heapUsed - memory.before.heapUsed).toBeLessThan(24 << 20)
    expect(memory.peak.rss - memory.before.rss).toBeLessThan(64 << 20)
  })

  it('bad endpoints are ERR_SHMQ_INVALID_ARGUMENT before anything connects', async () => {
    const cases = [
      { from: 'shm:a', to: 'http://127.0.0.1/x' },
      { from: 'shm:a', to: 'nats://127.0.0.1:4222' },
      { from: 'shm:a', to: 'nats://127.0.0.1:4222/a.*' },
      { from: 'shm:a', to: 'nats://127.0.0.1:4222/a..b' },
      { from: 'shm:', to: 'nats://127.0.0.1:4222/x' },
      { from: 'shm:a/b', to: 'nats://127.0.0.1:4222/x' },
      { from: 'shm:a', to: 'shm:b' },
      { from: 'nats://127.0.0.1:4222/x', to: 'nats://127.0.0.1:4222/y' },
      { from: 'shm:a', to: 'nats://127.0.0.1:4222/x', delivery: 'exactly-once' },
      { from: 'shm:a', to: 'nats://127.0.0.1:4222/x', batch: 0 },
    ]
    for (const options of cases) {
      await expect(bridge(options), JSON.stringify(options)).rejects.toMatchObject({ code: 'ERR_SHMQ_INVALID_ARGUMENT' })
    }
  })

  it('a missing server is ERR_SHMQ_NATS naming it, quickly; the CLI exits 1 with it and 2 on bad arguments', async () => {
    const port = await freePort()
    const started = Date.now()
    await expect(bridge({ from: 'shm:bridge-missing', to: `nats://127.0.0.1:${port}/x`, connectTimeout: 2000 })).rejects.toMatchObject({
      code: 'ERR_SHMQ_NATS',
      message: expect.stringContaining(`127.0.0.1:${port}`),
    })
    expect(Date.now() - started).toBeLessThan(10_000)
    const run = (...args) => spawnSync(process.execPath, [cli, 'bridge', ...args], { encoding: 'utf8', timeout: 20_000 })
    const refused = run('--from', 'shm:bridge-missing', '--to', `nats://127.0.0.1:${port}/x`)
    expect([refused.status, refused.signal]).toEqual([1, null])
    expect(refused.stderr).toContain('cannot connect to NATS')
    const bad = run('--from', 'shm:x', '--to', 'nats://127.0.0.1/x y')
    expect([bad.status, bad.signal]).toEqual([2, null])
    expect(bad.stderr).toContain('usage:')
    const help = run('--help')
    expect([help.status, help.signal]).toEqual([0, null])
  })

  it('at-least-once without JetStream on the server is a clear ERR_SHMQ_NATS', async () => {
    nats = await session.startNats()
    await expect(bridge({ from: 'shm:bridge-nojs', to: `${nats.url}/x`, delivery: 'at-least-once' })).rejects.toMatchObject({
      code: 'ERR_SHMQ_NATS',
      message: expect.stringContaining('JetStream'),
    })
  })

  it('the CLI prints its stats and exits 0 on SIGTERM', async () => {
    nats = await session.startNats()
    const name = `bridge-cli-${process.pid}`
    names.push(name)
    const { spawn } = await import('node:child_process')
    const child = spawn(process.execPath, [cli, 'bridge', '--from', `${nats.url}/cli.x`, '--to', `shm:${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    // the channel exists once the bridge is attached
    const deadline = Date.now() + 10_000
    const { inspectSegment } = require('../../dist/index.js')
    while (Date.now() < deadline) {
      try {
        if (inspectSegment(name).producer !== null) break
      } catch {}
      await new Promise((r) => setTimeout(r, 50))
    }
    child.kill('SIGTERM')
    expect(await exited).toEqual({ code: 0, signal: null })
    expect(JSON.parse(out)).toMatchObject({ direction: 'nats-to-shm', messagesIn: 0 })
  })
})
