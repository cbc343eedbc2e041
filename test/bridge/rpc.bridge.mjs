// Request/response across two bridges and a real nats-server, every side its own process:
//   clients → shm:B → bridge (shm → NATS) → nats-server → bridge (NATS → shm) → shm:A → server
import { afterEach, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { startNats } from './nats-server.mjs'
import { bridgeReport, killAll, nextMessage, ready, spawnChild, startBridge } from './harness.mjs'

const require = createRequire(import.meta.url)
const { inspectSegment, unlink } = require('../../dist/index.js')
const { bridge } = require('../../dist/bridge/index.js')
const cli = path.resolve(__dirname, '../../dist/cli.js')

const THROW = 1
const THROW0 = 2
const SLOW = 3
const CLEAN = { code: 0, signal: null }

let nats = null
const names = []
afterEach(async () => {
  killAll()
  await nats?.dispose()
  nats = null
  for (const name of names.splice(0)) {
    try {
      unlink(name)
    } catch {}
  }
})

let counter = 0
/** Fresh names for one test: the far server's, the near listener's, and the subject. */
function fresh(tag) {
  const id = `${tag}-${process.pid}-${counter++}`
  const far = `rpc-a-${id}`
  const near = `rpc-b-${id}`
  names.push(far, near)
  return { far, near, subject: `rpc.${id}` }
}

const startServer = async (name) => {
  const server = spawnChild('bridge-rpc-server.cjs', [name])
  await ready(server)
  return server
}
const startClient = (cfg) => spawnChild('bridge-rpc-client.cjs', [JSON.stringify(cfg)])
const clientReport = (child, timeoutMs = 120_000) => nextMessage(child, (m) => 'result' in m || 'results' in m || 'fatal' in m, timeoutMs)
const serverReport = (child) => nextMessage(child, (m) => 'stats' in m)

/** The two bridges: NATS → shm:far (a client of the far server) and shm:near → NATS (the near server). */
async function startBridges({ far, near, subject }, farOptions = {}, nearOptions = {}) {
  const farBridge = startBridge({ from: `${nats.url}/${subject}`, to: `shm:${far}`, kind: 'rpc', ...farOptions })
  await ready(farBridge)
  const nearBridge = startBridge({ from: `shm:${near}`, to: `${nats.url}/${subject}`, kind: 'rpc', ...nearOptions })
  await ready(nearBridge)
  return { farBridge, nearBridge }
}

async function stopAll(children) {
  for (const child of children) child.send('stop')
  const reports = []
  for (const child of children) reports.push(await nextMessage(child, (m) => 'stats' in m || 'fatal' in m, 60_000))
  for (const child of children) expect(await child.exited).toEqual(CLEAN)
  return reports
}

describe('rpc bridge', () => {
  it('20,000 requests of 0..64 KiB from 2 clients, 32 outstanding each, through two bridges: every reply checked, type tags carried', async () => {
    nats = await startNats()
    const n = fresh('load')
    const server = await startServer(n.far)
    const { farBridge, nearBridge } = await startBridges(n)
    const COUNT = 10_000
    const clients = [0, 1].map(() => startClient({ mode: 'load', name: n.near, count: COUNT, outstanding: 32, maxSize: 65536 }))
    const results = []
    for (const client of clients) results.push((await clientReport(client, 280_000)).result)
    for (const client of clients) expect(await client.exited).toEqual(CLEAN)
    const [serverFinal, farFinal, nearFinal] = await stopAll([server, farBridge, nearBridge])
    console.log('rpc load', JSON.stringify(results), JSON.stringify(serverFinal.seen), JSON.stringify(nearFinal.stats), JSON.stringify(farFinal.stats))
    for (const result of results) {
      expect(result).toMatchObject({ ok: COUNT, bad: 0, failures: {} })
      // type tags other than 0 travel as Shmq-Type both ways (about one in 65536 is 0)
      expect(result.tags).toBeGreaterThan(COUNT - 10)
    }
    // the far server handled exactly what the clients sent: count, bytes and checksum
    expect(serverFinal.seen.transforms).toBe(2 * COUNT)
    expect(serverFinal.seen.bytes).toBe(results[0].bytes + results[1].bytes)
    expect(serverFinal.seen.fnvSum).toBe((results[0].fnvSum + results[1].fnvSum) >>> 0)
    for (const { stats } of [nearFinal, farFinal]) {
      expect(stats).toMatchObject({ requests: 2 * COUNT, replies: 2 * COUNT, errorReplies: 0, timeouts: 0, busy: 0, inFlight: 0, inFlightBytes: 0, error: null })
    }
    expect(nearFinal.stats).toMatchObject({ direction: 'shm-to-nats', messagesIn: 2 * COUNT, messagesOut: 2 * COUNT, noResponders: 0, cancelled: 0, lateReplies: 0 })
    expect(farFinal.stats).toMatchObject({ direction: 'nats-to-shm', messagesIn: 2 * COUNT, noReply: 0 })
    // the far bridge's outstanding requests stayed within its bound
    expect(farFinal.maxInFlight).toBeLessThanOrEqual(4096)
  })
})
