// A running bridge's counters in `shmq stat` (lib/bridge-stats.ts): read from the
// file the bridge rewrites every second, checked against what was sent through it,
// and gone once the bridge stops.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { bridgeReport, bridgeTestSession, ready, startBridge } from './harness.mjs'

const require = createRequire(import.meta.url)
const { Producer } = require('../../dist/index.js')
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const session = bridgeTestSession(afterEach)
const names = session.names
let nats = null

function stat(name, json = true) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'stat', name, '--interval', '0', ...(json ? ['--json'] : [])], { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : error.code, stdout, stderr })
    })
  })
}

describe('bridge stats in shmq stat', () => {
  it('lists a running bridge with the counts it moved, and drops it once it stopped', async () => {
    nats = await session.startNats()
    const name = `bridge-stat-${process.pid}`
    names.push(name)
    const subject = `stat.${process.pid}`
    const bridge = startBridge({ from: `shm:${name}`, to: `${nats.url}/${subject}`, capacity: 1 << 16 })
    await ready(bridge)
    const producer = Producer.open(name, { timeout: 5000 })
    const count = 5000
    let bytes = 0
    for (let i = 0; i < count; i++) {
      const message = new Uint8Array(i % 100).fill(i & 0xff)
      await producer.write(message)
      bytes += message.length
    }
    // the bridge rewrites its file every second: wait for one that has it all
    let listed = null
    for (let attempt = 0; attempt < 100; attempt++) {
      const result = await stat(name)
      expect(result.code, result.stderr).toBe(0)
      listed = JSON.parse(result.stdout).bridges
      if (listed.length === 1 && listed[0].stats.messagesOut === count) break
      await sleep(100)
    }
    expect(listed).toHaveLength(1)
    expect(listed[0]).toMatchObject({ pid: bridge.pid, from: `shm:${name}`, to: `${nats.url}/${subject}`, stale: false })
    expect(listed[0].stats).toMatchObject({ direction: 'shm-to-nats', delivery: 'at-most-once', messagesIn: count, messagesOut: count, bytesIn: bytes, bytesOut: bytes, dropped: 0 })
    const table = await stat(name, false)
    expect(table.stdout).toMatch(new RegExp(`bridge ${bridge.pid} shm:${name} -> nats://\\S+ at-most-once:  in 5000 msgs`))

    bridge.kill('SIGTERM')
    const { report, exit } = await bridgeReport(bridge)
    expect(exit).toEqual({ code: 0, signal: null })
    expect(report.stats.messagesOut).toBe(count)
    expect(existsSync(`/dev/shm/.shmq-${name}.bridge-${bridge.pid}`)).toBe(false)
    expect(JSON.parse((await stat(name)).stdout).bridges).toEqual([])
    producer.close()
  })
})
