// Request/response across two bridges and a real nats-server, every side its own process:
//   clients → shm:B → bridge (shm → NATS) → nats-server → bridge (NATS → shm) → shm:A → server
import { afterEach, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { bridgeReport, bridgeTestSession, nextMessage, ready, spawnChild, startBridge } from './harness.mjs'

const require = createRequire(import.meta.url)
const { inspectSegment } = require('../../dist/index.js')
const { bridge } = require('../../dist/bridge/index.js')
const cli = path.resolve(__dirname, '../../dist/cli.js')

const THROW = 1
const THROW0 = 2
const SLOW = 3
const CLEAN = { code: 0, signal: null }

const session = bridgeTestSession(afterEach)
const names = session.names
let nats = null
/** CLI processes (not harness children), killed if a test fails. */
const spawned = []
afterEach(() => {
  for (const child of spawned.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
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

/** Sends `request` to `child` and resolves with the first message with `key` that came after it. */
function askFresh(child, request, key) {
  const from = child.messages.length
  child.send(request)
  return nextMessage(child, (m) => key in m && child.messages.indexOf(m) >= from, 10_000)
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
    nats = await session.startNats()
    const n = fresh('load')
    const server = await startServer(n.far)
    // two far bridges in the default queue group share the subject's requests
    const farBridge2 = startBridge({ from: `${nats.url}/${n.subject}`, to: `shm:${n.far}`, kind: 'rpc' })
    await ready(farBridge2)
    const { farBridge, nearBridge } = await startBridges(n)
    const COUNT = 10_000
    const clients = [0, 1].map(() => startClient({ mode: 'load', name: n.near, count: COUNT, outstanding: 32, maxSize: 65536 }))
    const results = []
    for (const client of clients) results.push((await clientReport(client, 280_000)).result)
    for (const client of clients) expect(await client.exited).toEqual(CLEAN)
    const [serverFinal, farFinal, farFinal2, nearFinal] = await stopAll([server, farBridge, farBridge2, nearBridge])
    console.log('rpc load', JSON.stringify(results), JSON.stringify(serverFinal.seen), JSON.stringify(nearFinal.stats), JSON.stringify(farFinal.stats), JSON.stringify(farFinal2.stats))
    for (const result of results) {
      expect(result).toMatchObject({ ok: COUNT, bad: 0, failures: {} })
      // type tags other than 0 travel as Shmq-Type both ways (about one in 65536 is 0)
      expect(result.tags).toBeGreaterThan(COUNT - 10)
    }
    // the far server handled exactly what the clients sent: count, bytes and checksum
    expect(serverFinal.seen.transforms).toBe(2 * COUNT)
    expect(serverFinal.seen.bytes).toBe(results[0].bytes + results[1].bytes)
    expect(serverFinal.seen.fnvSum).toBe((results[0].fnvSum + results[1].fnvSum) >>> 0)
    const clean = { errorReplies: 0, timeouts: 0, busy: 0, inFlight: 0, inFlightBytes: 0, error: null }
    expect(nearFinal.stats).toMatchObject({ ...clean, direction: 'shm-to-nats', requests: 2 * COUNT, replies: 2 * COUNT, messagesIn: 2 * COUNT, messagesOut: 2 * COUNT, noResponders: 0, cancelled: 0, lateReplies: 0 })
    for (const { stats, maxInFlight } of [farFinal, farFinal2]) {
      expect(stats).toMatchObject({ ...clean, direction: 'nats-to-shm', noReply: 0 })
      expect(stats.replies).toBe(stats.requests)
      // both members of the queue group served a share, within their bound
      expect(stats.requests).toBeGreaterThan(0)
      expect(maxInFlight).toBeLessThanOrEqual(4096)
    }
    expect(farFinal.stats.requests + farFinal2.stats.requests).toBe(2 * COUNT)
  })

  it('a handler error arrives as ERR_SHMQ_REMOTE with its code and message; a slow handler times the client out and the next request works; the requester\'s deadline stops the far side', async () => {
    nats = await session.startNats()
    const n = fresh('errors')
    const server = await startServer(n.far)
    const { farBridge, nearBridge } = await startBridges(n)
    // a second near listener whose bridge gives up after 400 ms, on the same subject
    const near2 = `${n.near}-short`
    names.push(near2)
    const shortBridge = startBridge({ from: `shm:${near2}`, to: `${nats.url}/${n.subject}`, kind: 'rpc', requestTimeout: 400 })
    await ready(shortBridge)
    const client = startClient({
      mode: 'script',
      name: n.near,
      steps: [
        { type: THROW, text: 'one' },
        { type: THROW0, text: 'two' },
        { type: SLOW, slowMs: 1500, timeout: 300 },
        { type: 7, size: 1000 },
        { type: 0, size: 0 },
      ],
    })
    const { results } = await clientReport(client)
    expect(await client.exited).toEqual(CLEAN)
    console.log('rpc errors', JSON.stringify(results))
    expect(results[0]).toMatchObject({ ok: false, code: 'ERR_SHMQ_REMOTE', remoteCode: 'E_BRIDGE_TEST', message: expect.stringContaining('boom one') })
    // the far handler's message, not the far bridge's wording around it
    expect(results[0].message).not.toContain(n.far)
    expect(results[1]).toMatchObject({ ok: false, code: 'ERR_SHMQ_REMOTE', remoteCode: null, message: expect.stringContaining('plain two') })
    // the client's own timeout: ERR_SHMQ_TIMEOUT, long before the handler's 1500 ms
    expect(results[2]).toMatchObject({ ok: false, code: 'ERR_SHMQ_TIMEOUT' })
    expect(results[2].ms).toBeLessThan(1200)
    expect(results[3]).toMatchObject({ ok: true, verified: true, replyType: 65535 - 7 })
    expect(results[4]).toMatchObject({ ok: true, verified: true, replyType: 65535 })

    // the short bridge's deadline (Shmq-Timeout: 400) travels: the far side stops waiting for its server at 400 ms
    const short = startClient({ mode: 'script', name: near2, steps: [{ type: SLOW, slowMs: 3000, timeout: 10_000 }, { type: 9, size: 100 }] })
    const shortResults = (await clientReport(short)).results
    expect(await short.exited).toEqual(CLEAN)
    console.log('rpc bridge timeout', JSON.stringify(shortResults))
    expect(shortResults[0]).toMatchObject({ ok: false, code: 'ERR_SHMQ_REMOTE', remoteCode: 'ERR_SHMQ_TIMEOUT' })
    expect(shortResults[0].ms).toBeLessThan(2500)
    expect(shortResults[1]).toMatchObject({ ok: true, verified: true, replyType: 65535 - 9 })

    // the first slow handler finishes at 1500 ms: its reply reaches the near bridge after the client gave up
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const [serverFinal, farFinal, nearFinal, shortFinal] = await stopAll([server, farBridge, nearBridge, shortBridge])
    console.log('rpc errors stats', JSON.stringify(serverFinal.seen), JSON.stringify(nearFinal.stats), JSON.stringify(farFinal.stats), JSON.stringify(shortFinal.stats))
    // both slow handlers were stopped: the client's own 300 ms travelled (plus 100 ms of slack), and so did the short bridge's 400 ms
    expect(serverFinal.seen).toMatchObject({ thrown: 2, slow: 2, slowAborted: 2 })
    expect(nearFinal.stats).toMatchObject({ requests: 5, replies: 2, remoteErrors: 2, cancelled: 1, lateReplies: 1, timeouts: 0, inFlight: 0 })
    expect(shortFinal.stats).toMatchObject({ requests: 2, replies: 1, inFlight: 0 })
    expect(farFinal.stats).toMatchObject({ requests: 7, remoteErrors: 2, timeouts: 2, inFlight: 0 })
  })

  it('nothing behind the subject is ERR_SHMQ_NO_RESPONDERS at once (CLI bridge, exits 0 on SIGTERM with its stats); a far bridge without a server answers ERR_SHMQ_PEER_GONE, then serves once one listens', async () => {
    nats = await session.startNats()
    const n = fresh('absent')
    const near = spawn(process.execPath, [cli, 'bridge', '--kind', 'rpc', '--from', `shm:${n.near}`, '--to', `${nats.url}/${n.subject}`], { stdio: ['ignore', 'pipe', 'inherit'] })
    spawned.push(near)
    let out = ''
    near.stdout.on('data', (chunk) => (out += chunk))
    const nearExited = new Promise((resolve) => near.once('exit', (code, signal) => resolve({ code, signal })))
    const deadline = Date.now() + 10_000
    while (inspectSegment(n.near)?.kind !== 'server' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    const steps = [{ type: 9, size: 10, timeout: 10_000 }]
    const first = startClient({ mode: 'script', name: n.near, steps })
    const [noResponders] = (await clientReport(first)).results
    expect(noResponders).toMatchObject({ ok: false, code: 'ERR_SHMQ_REMOTE', remoteCode: 'ERR_SHMQ_NO_RESPONDERS', message: expect.stringContaining(n.subject) })
    expect(noResponders.ms).toBeLessThan(2000)

    // a far bridge, and no server behind it yet
    const farBridge = startBridge({ from: `${nats.url}/${n.subject}`, to: `shm:${n.far}`, kind: 'rpc', openTimeout: 300 })
    await ready(farBridge)
    const second = startClient({ mode: 'script', name: n.near, steps })
    const [noServer] = (await clientReport(second)).results
    expect(noServer).toMatchObject({ ok: false, code: 'ERR_SHMQ_REMOTE', remoteCode: 'ERR_SHMQ_PEER_GONE', message: expect.stringContaining(`no server listens on '${n.far}'`) })
    expect(noServer.ms).toBeLessThan(2000)

    // once a server listens, the far bridge connects on its own (backoff up to 1 s)
    const server = await startServer(n.far)
    let served = null
    for (let attempt = 0; attempt < 40 && served === null; attempt++) {
      const probe = startClient({ mode: 'script', name: n.near, steps })
      const [result] = (await clientReport(probe)).results
      expect(await probe.exited).toEqual(CLEAN)
      if (result.ok) served = result
      else {
        expect(result).toMatchObject({ code: 'ERR_SHMQ_REMOTE', remoteCode: 'ERR_SHMQ_PEER_GONE' })
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
    expect(served).toMatchObject({ ok: true, verified: true, replyType: 65535 - 9 })
    for (const child of [first, second]) expect(await child.exited).toEqual(CLEAN)
    const [, farFinal] = await stopAll([server, farBridge])
    expect(farFinal.stats.replies).toBe(1)
    near.kill('SIGTERM')
    expect(await nearExited).toEqual(CLEAN)
    const stats = JSON.parse(out)
    expect(stats).toMatchObject({ direction: 'shm-to-nats', noResponders: 1, replies: 1, error: null })
    expect(stats.requests).toBeGreaterThanOrEqual(3)
  })

  it('the far server killed mid-run: every pending request rejects at once, and requests succeed again once a new server listens', async () => {
    nats = await session.startNats()
    const n = fresh('kill')
    let server = await startServer(n.far)
    const { farBridge, nearBridge } = await startBridges(n)
    const client = startClient({ mode: 'steady', name: n.near, outstanding: 16, timeout: 15_000 })
    await ready(client)
    const waitFor = async (test, what) => {
      const deadline = Date.now() + 60_000
      for (;;) {
        const progress = (await askFresh(client, 'progress', 'progress')).progress
        if (test(progress)) return progress
        if (Date.now() > deadline) throw new Error(`the client never got to: ${what}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    const before = await waitFor((p) => p.ok >= 300, '300 replies')
    server.kill('SIGKILL')
    expect(await server.exited).toEqual({ code: null, signal: 'SIGKILL' })
    const failing = await waitFor((p) => Object.keys(p.failures).length > 0, 'a failure after the kill')
    server = await startServer(n.far)
    const after = await waitFor((p) => p.ok >= failing.ok + 300, '300 replies from the new server')
    client.send('stop')
    const { result } = await clientReport(client)
    expect(await client.exited).toEqual(CLEAN)
    const [, farFinal, nearFinal] = await stopAll([server, farBridge, nearBridge])
    console.log('rpc kill', JSON.stringify({ before: before.ok, failing: failing.failures, after: after.ok }), JSON.stringify(result), JSON.stringify(farFinal.stats), JSON.stringify(nearFinal.stats))
    expect(result.bad).toBe(0)
    // every request settled (none hangs), each well within the client's 15 s timeout
    expect(result.settled).toBe(result.sent)
    expect(result.maxMs).toBeLessThan(5000)
    const failures = Object.keys(result.failures)
    expect(failures.length).toBeGreaterThan(0)
    for (const key of failures) expect(['ERR_SHMQ_REMOTE/ERR_SHMQ_PEER_GONE', 'ERR_SHMQ_REMOTE/ERR_SHMQ_CLOSED']).toContain(key)
    expect(result.failures['ERR_SHMQ_REMOTE/ERR_SHMQ_PEER_GONE']).toBeGreaterThan(0)
    expect(result.ok).toBeGreaterThanOrEqual(after.ok)
    for (const { stats } of [farFinal, nearFinal]) expect(stats).toMatchObject({ inFlight: 0, timeouts: 0, error: null })
  })

  it('outstanding requests are bounded: beyond maxInFlightMessages the far bridge answers ERR_SHMQ_BUSY at once; messages without a reply subject are counted and ignored', async () => {
    nats = await session.startNats()
    const n = fresh('busy')
    const server = await startServer(n.far)
    const { farBridge, nearBridge } = await startBridges(n, { maxInFlightMessages: 2 })
    const client = startClient({ mode: 'script', parallel: true, name: n.near, steps: Array.from({ length: 8 }, () => ({ type: SLOW, slowMs: 500, timeout: 10_000 })) })
    const { results } = await clientReport(client)
    expect(await client.exited).toEqual(CLEAN)
    const ok = results.filter((r) => r.ok)
    const busy = results.filter((r) => !r.ok)
    expect(ok.length).toBe(2)
    expect(busy.length).toBe(6)
    for (const r of busy) {
      expect(r).toMatchObject({ code: 'ERR_SHMQ_REMOTE', remoteCode: 'ERR_SHMQ_BUSY', message: expect.stringContaining('maxInFlightMessages 2') })
      // refused at once, not after the slow ones
      expect(r.ms).toBeLessThan(400)
    }
    // a plain publish to the subject (no reply subject)
    const { connect } = require('@nats-io/transport-node')
    const nc = await connect({ servers: nats.url.replace('nats://', '') })
    nc.publish(n.subject, new Uint8Array(3))
    await nc.flush()
    await nc.close()
    const deadline = Date.now() + 10_000
    while ((await askFresh(farBridge, 'stats', 'live')).live.noReply !== 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    const [serverFinal, farFinal] = await stopAll([server, farBridge, nearBridge])
    expect(serverFinal.seen.slow).toBe(2)
    expect(farFinal.stats).toMatchObject({ busy: 6, requests: 2, replies: 2, noReply: 1, errorReplies: 6, inFlight: 0 })
    expect(farFinal.maxInFlight).toBeLessThanOrEqual(2)
  })

  it('bad arguments: at-least-once, an unknown kind, a bad queue or timeout are ERR_SHMQ_INVALID_ARGUMENT before anything connects; the CLI exits 2', async () => {
    const cases = [
      { from: 'shm:rpc-bad', to: 'nats://127.0.0.1:1/x', kind: 'rpc', delivery: 'at-least-once' },
      { from: 'nats://127.0.0.1:1/x', to: 'shm:rpc-bad', kind: 'rpc', delivery: 'at-least-once' },
      { from: 'shm:rpc-bad', to: 'nats://127.0.0.1:1/x', kind: 'request-reply' },
      { from: 'nats://127.0.0.1:1/x', to: 'shm:rpc-bad', kind: 'rpc', queue: 'a b' },
      { from: 'nats://127.0.0.1:1/x', to: 'shm:rpc-bad', kind: 'rpc', queue: '' },
      { from: 'shm:rpc-bad', to: 'nats://127.0.0.1:1/x', kind: 'rpc', queue: 'group' },
      { from: 'shm:rpc-bad', to: 'nats://127.0.0.1:1/x', kind: 'rpc', requestTimeout: 0 },
    ]
    for (const options of cases) {
      await expect(bridge(options), JSON.stringify(options)).rejects.toMatchObject({ code: 'ERR_SHMQ_INVALID_ARGUMENT' })
    }
    await expect(bridge(cases[0])).rejects.toMatchObject({ message: expect.stringContaining('at-most-once') })
    const run = (...args) => spawnSync(process.execPath, [cli, 'bridge', ...args], { encoding: 'utf8', timeout: 20_000 })
    for (const args of [
      ['--kind', 'rpc', '--delivery', 'at-least-once', '--from', 'shm:rpc-bad', '--to', 'nats://127.0.0.1:1/x'],
      ['--kind', 'nope', '--from', 'shm:rpc-bad', '--to', 'nats://127.0.0.1:1/x'],
      ['--kind', 'rpc', '--request-timeout', '0', '--from', 'shm:rpc-bad', '--to', 'nats://127.0.0.1:1/x'],
    ]) {
      const result = run(...args)
      expect([result.status, result.signal], args.join(' ')).toEqual([2, null])
      expect(result.stderr).toContain('usage:')
    }
  })
})
