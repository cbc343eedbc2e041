// Request/response (Server, Client) between real processes: every reply
// checked against its request, out of order and pipelined; a server SIGKILLed
// under load (every pending request rejects within 1 s, and clients go on
// with the next server); 1,000 clients SIGKILLed (nothing leaks on the
// server's side); timeouts, AbortSignal, remote errors, oversize requests and
// closing with requests in flight, each triggered for real.
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, exitOf, spawnFixture, testSegments, thrownBy, uniqueName, waitUntil } from './fixtures/harness.mjs'

const require = createRequire(import.meta.url)
const { Server, Client, Consumer, Producer, inspectSegment } = require('../dist/index.js')
const { ECHO, THROW, SLOW, HOLD, HUGE, LATE, COMMIT_ONLY } = require('./fixtures/rpc.cjs')

const HANG_MS = 120_000
const SEED = Number(process.env.SHMQ_RPC_SEED ?? ((Math.random() * 0x1_0000_0000) >>> 0 || 1))
const CYCLES = Number(process.env.SHMQ_RPC_CYCLES ?? 1000)
const context = (what) => `${what} (SHMQ_RPC_SEED=${SEED})`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const { endpoints } = testSegments(afterEach)
const servers = []
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close({ timeout: 0 })
  for (const name of names.splice(0)) removeAll(name)
})
const names = []

/** A server name, and everything under it in /dev/shm removed after the test. */
function serverName(tag) {
  const name = uniqueName(tag)
  names.push(name)
  return name
}

/** /dev/shm entries of server `name`: its listener, reply rings, and their FIFOs. */
function shmEntries(name) {
  return readdirSync('/dev/shm').filter((entry) => entry === name || entry.startsWith(`${name}.`) || entry.startsWith(`.shmq-${name}.`))
}

function removeAll(name) {
  for (const entry of shmEntries(name)) {
    try {
      require('node:fs').rmSync(`/dev/shm/${entry}`, { force: true })
    } catch {
      // gone
    }
  }
}

async function next(handle, type) {
  return deadline(handle.next(type), HANG_MS, context(`${handle.script} ${type}`))
}

async function exitedCleanly(handle) {
  expect(await exitOf(handle, HANG_MS), handle.describe()).toEqual({ code: 0, signal: null })
}

function startServer(name, config = {}) {
  return spawnFixture('rpc.cjs', { role: 'server', name, ...config })
}

function request(seq, type, extra = 0) {
  const bytes = new Uint8Array(16)
  const view = new DataView(bytes.buffer)
  view.setUint32(0, seq, true)
  view.setUint32(8, extra, true)
  return { bytes, type }
}

describe('request/response between processes', () => {
  it('4 clients × 50,000 requests of random sizes, up to 32 outstanding each: every echo and transformed reply checked', async () => {
    const name = serverName('rpc4')
    const server = startServer(name, { concurrency: 64 })
    await next(server, 'ready')
    const clients = [1, 8, 32, 32].map((outstanding, index) =>
      spawnFixture('rpc.cjs', { role: 'client', name, seed: SEED + index, count: 50_000, outstanding, maxLength: 2048 }),
    )
    for (const client of clients) await next(client, 'ready')
    for (const client of clients) client.send({ type: 'go' })
    let total = 0
    for (const client of clients) {
      const report = await next(client, 'done')
      expect(report.count).toBe(50_000)
      expect(report.stats).toMatchObject({ requests: 50_000, replies: 50_000, timeouts: 0, lateReplies: 0, lost: 0, remoteErrors: 0 })
      total += report.count
      await exitedCleanly(client)
    }
    server.send({ type: 'stats' })
    const { stats } = await next(server, 'stats')
    expect(stats).toMatchObject({ requests: total, replies: total, errors: 0, malformed: 0, active: 0 })
    // every client closed: their sessions ended and their reply rings are gone
    await waitUntil(() => shmEntries(name).filter((entry) => entry.startsWith(`${name}.r`)).length === 0, 'reply rings removed')
    server.send({ type: 'close', timeout: 1000 })
    await next(server, 'closed')
    await exitedCleanly(server)
    expect(shmEntries(name)).toEqual([])
  })

  it('64 clients connected at once (16 in each of 4 processes), each pipelining requests: every reply checked, the server saw 64 sessions', async () => {
    const name = serverName('rpc64')
    const server = startServer(name, { maxClients: 64, concurrency: 16 })
    await next(server, 'ready')
    const processes = [0, 1, 2, 3].map((index) => spawnFixture('rpc.cjs', { role: 'many', name, seed: SEED, index, clients: 16, count: 500, maxLength: 256 }))
    for (const child of processes) await next(child, 'ready')
    server.send({ type: 'stats' })
    expect((await next(server, 'stats')).stats.clients).toBe(64)
    expect(inspectSegment(name).producers.filter((producer) => producer.alive)).toHaveLength(64)
    // a 65th is refused clearly: every listener slot is taken
    await expect(Client.connect(name, { timeout: 200 })).rejects.toMatchObject({ code: 'ERR_SHMQ_BUSY', message: expect.stringContaining('maxClients') })
    for (const child of processes) child.send({ type: 'go' })
    for (const child of processes) {
      expect((await next(child, 'done')).count).toBe(16 * 500)
      await exitedCleanly(child)
    }
    server.send({ type: 'stats' })
    const { stats } = await next(server, 'stats')
    expect(stats).toMatchObject({ requests: 64 * 500, replies: 64 * 500, errors: 0, malformed: 0 })
    expect(stats.peakActive).toBeLessThanOrEqual(16)
    server.send({ type: 'close', timeout: 1000 })
    await next(server, 'closed')
    await exitedCleanly(server)
    expect(shmEntries(name)).toEqual([])
  })

  it('a server SIGKILLed under load: every pending request rejects with ERR_SHMQ_PEER_GONE within 1 s; with a new server every later request succeeds', async () => {
    const name = serverName('rpckill')
    const first = startServer(name)
    await next(first, 'ready')
    const clients = [0, 1].map((index) => spawnFixture('rpc.cjs', { role: 'survivor', name, seed: SEED + index, outstanding: 16, maxLength: 512, progressAt: 5000, after: 5000 }))
    for (const client of clients) await next(client, 'ready')
    for (const client of clients) await next(client, 'progress')
    const killedAt = Date.now()
    first.child.kill('SIGKILL')
    expect(await exitOf(first)).toEqual({ code: null, signal: 'SIGKILL' })
    await sleep(300)
    const second = startServer(name)
    await next(second, 'ready')
    for (const client of clients) client.send({ type: 'stop' })
    for (const client of clients) {
      const report = await next(client, 'done')
      // requests were pending when it died: each rejected, none silently lost, none after the reconnection
      expect(report.failures.length).toBeGreaterThan(0)
      for (const failure of report.failures) {
        expect(failure.code, failure.message).toBe('ERR_SHMQ_PEER_GONE')
        expect(failure.at - killedAt, 'rejected within 1 s of the death').toBeLessThan(1000)
      }
      expect(report.okAfter).toBeGreaterThanOrEqual(5000)
      expect(report.failedAfter).toBe(0)
      expect(report.stats.reconnects).toBe(1)
      await exitedCleanly(client)
    }
    second.send({ type: 'close', timeout: 1000 })
    await next(second, 'closed')
    await exitedCleanly(second)
    expect(shmEntries(name)).toEqual([])
  })

  it(`${CYCLES} clients SIGKILLed after a request (half of them with one in flight): the server serves on, and its /dev/shm entries, fds and sessions return to their start`, async () => {
    const name = serverName('rpccycle')
    const server = startServer(name, { maxClients: 8 })
    const { fds: startFds } = await next(server, 'ready')
    const startEntries = shmEntries(name).length
    let aborted = 0
    server.child.on('message', (message) => {
      if (message?.type === 'aborted') aborted++
    })
    const PARALLEL = 4
    let index = 0
    async function lane() {
      while (index < CYCLES) {
        const mine = index++
        const hold = (mine & 1) === 1
        const client = spawnFixture('rpc.cjs', { role: 'cycle', name, seed: SEED, index: mine, hold })
        await next(client, hold ? 'holding' : 'ok')
        client.child.kill('SIGKILL')
        expect(await exitOf(client)).toEqual({ code: null, signal: 'SIGKILL' })
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, lane))
    // a live client gets served all along, and after
    const client = await Client.connect(name)
    endpoints.push(client)
    const { bytes } = request(7, ECHO)
    expect(Buffer.from(await client.request(bytes, { type: ECHO }))).toEqual(Buffer.from(bytes))
    client.close()
    let last
    for (const started = Date.now(); ; await sleep(50)) {
      server.send({ type: 'stats' })
      last = await next(server, 'stats')
      if (last.stats.clients === 0 && last.fds === startFds && shmEntries(name).length === startEntries) break
      if (Date.now() - started > 30_000) {
        throw new Error(context(`sessions, fds and /dev/shm not back to the start: ${JSON.stringify(last)} (${startFds} fds at the start), entries ${shmEntries(name)}`))
      }
    }
    // every held request's handler learnt that its client died
    await waitUntil(() => aborted === CYCLES >> 1, `every HOLD handler aborted (${aborted})`, 30_000)
    expect(last.stats.requests).toBe(CYCLES + (CYCLES >> 1) + 1)
    server.send({ type: 'close', timeout: 1000 })
    await next(server, 'closed')
    await exitedCleanly(server)
    expect(shmEntries(name)).toEqual([])
  }, 600_000)
})

describe('request/response failures, each for real', () => {
  async function withServer(tag, config = {}) {
    const name = serverName(tag)
    const server = startServer(name, config)
    await next(server, 'ready')
    const client = await Client.connect(name, { timeout: 5000 })
    endpoints.push(client)
    return { name, server, client }
  }

  it('a handler that throws: ERR_SHMQ_REMOTE with its message and remoteCode; the client goes on', async () => {
    const { client } = await withServer('rpcthrow')
    const { bytes } = request(41, THROW)
    const error = await client.request(bytes, { type: THROW }).catch((e) => e)
    expect(error.code).toBe('ERR_SHMQ_REMOTE')
    expect(error.remoteCode).toBe('E_FIXTURE')
    expect(error.message).toContain('refused request 41')
    expect(Buffer.from(await client.request(bytes, { type: ECHO }))).toEqual(Buffer.from(bytes))
    expect(client.stats().remoteErrors).toBe(1)
  })

  it('a reply larger than the reply ring: ERR_SHMQ_REMOTE with remoteCode ERR_SHMQ_TOO_LARGE', async () => {
    const { client } = await withServer('rpchuge', { replyCapacity: 4096 })
    const error = await client.request(request(1, HUGE).bytes, { type: HUGE }).catch((e) => e)
    expect(error.code).toBe('ERR_SHMQ_REMOTE')
    expect(error.remoteCode).toBe('ERR_SHMQ_TOO_LARGE')
  })

  it('a request past its timeout: ERR_SHMQ_TIMEOUT; its late reply is dropped and counted; the handler sees the cancellation', async () => {
    const { client } = await withServer('rpctimeout')
    const started = performance.now()
    const error = await client.request(request(1, SLOW, 300).bytes, { type: SLOW, timeout: 50 }).catch((e) => e)
    expect(error.code).toBe('ERR_SHMQ_TIMEOUT')
    expect(performance.now() - started).toBeGreaterThanOrEqual(49)
    expect(performance.now() - started).toBeLessThan(250)
    // the handler's wait ends on the cancellation: its reply comes late and is dropped
    await waitUntil(() => client.stats().lateReplies === 1, 'late reply counted', 10_000)
    expect(client.stats()).toMatchObject({ timeouts: 1, pending: 0 })
    expect(Buffer.from(await client.request(request(2, ECHO).bytes, { type: ECHO }))).toEqual(Buffer.from(request(2, ECHO).bytes))
  })

  it('an aborted signal: rejects with its reason (an AbortError), frees the place, and the handler sees it', async () => {
    const { server, client } = await withServer('rpcabort')
    const controller = new AbortController()
    const held = client.request(request(9, HOLD).bytes, { type: HOLD, signal: controller.signal })
    expect(client.pendingRequests).toBe(1)
    const abortedInServer = next(server, 'aborted')
    setTimeout(() => controller.abort(), 20)
    const error = await held.catch((e) => e)
    expect(error.name).toBe('AbortError')
    expect(client.pendingRequests).toBe(0)
    expect((await abortedInServer).seq).toBe(9)
    // a signal aborted before the call: rejected at once, nothing sent
    const before = client.stats().requests
    const reason = new Error('no longer wanted')
    await expect(client.request(request(10, ECHO).bytes, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    expect(client.stats().requests).toBe(before)
    expect(client.stats().aborted).toBe(1)
  })

  it('concurrency bounds the handlers running at once; the others wait in the ring and are served after', async () => {
    const { server, client } = await withServer('rpcbound', { concurrency: 2 })
    const started = performance.now()
    const replies = await Promise.all([1, 2, 3, 4, 5, 6].map((seq) => client.request(request(seq, SLOW, 100).bytes, { type: SLOW })))
    const elapsed = performance.now() - started
    for (const [index, reply] of replies.entries()) expect(new DataView(reply.buffer, reply.byteOffset).getUint32(0, true)).toBe(index + 1)
    // six 100 ms handlers two at a time: three rounds
    expect(elapsed).toBeGreaterThanOrEqual(295)
    server.send({ type: 'stats' })
    const { stats } = await next(server, 'stats')
    expect(stats.peakActive).toBe(2)
    expect(stats.requests).toBe(6)
  })

  it('a handler that looks at ctx.signal only after the client gave up still sees it aborted', async () => {
    const { server, client } = await withServer('rpclate')
    const late = next(server, 'late-signal')
    expect((await client.request(request(1, LATE).bytes, { type: LATE, timeout: 30 }).catch((e) => e)).code).toBe('ERR_SHMQ_TIMEOUT')
    expect((await late).aborted).toBe(true)
  })

  it('a handler that commits in place and returns nothing sends one reply, not two', async () => {
    const { server, client } = await withServer('rpccommit')
    const { bytes } = request(3, COMMIT_ONLY)
    expect(Buffer.from(await client.request(bytes, { type: COMMIT_ONLY }))).toEqual(Buffer.from(bytes))
    expect(Buffer.from(await client.request(bytes, { type: ECHO }))).toEqual(Buffer.from(bytes))
    server.send({ type: 'stats' })
    expect((await next(server, 'stats')).stats).toMatchObject({ requests: 2, replies: 2 })
    expect(client.stats().lateReplies).toBe(0)
  })

  it('a client that asks on without reading its replies is cut off after a ring of queued replies: its requests reject, others are served', async () => {
    const { name, server, client } = await withServer('rpcglutton', { replyCapacity: 4096 })
    const glutton = spawnFixture('rpc.cjs', { role: 'glutton', name, count: 64, length: 1000, blockMs: 1000 })
    await next(glutton, 'ready')
    glutton.send({ type: 'go' })
    // served meanwhile
    await sleep(300)
    expect(Buffer.from(await client.request(request(1, ECHO).bytes, { type: ECHO }))).toEqual(Buffer.from(request(1, ECHO).bytes))
    const { codes } = await next(glutton, 'done')
    await exitedCleanly(glutton)
    // what fitted its ring it got; the rest rejected when the server ended its session
    expect(codes.ok).toBeGreaterThan(0)
    expect(codes.ok).toBeLessThan(8)
    expect(codes.ok + codes.ERR_SHMQ_CLOSED).toBe(64)
    server.send({ type: 'stats' })
    expect((await next(server, 'stats')).stats.dropped).toBeGreaterThan(0)
  })

  it('a request larger than the listener takes: ERR_SHMQ_TOO_LARGE before anything is sent', async () => {
    const { client } = await withServer('rpcbig', { capacity: 4096 })
    expect(client.maxRequest).toBe(4096 / 2 - 8 - 8)
    const error = await client.request(new Uint8Array(client.maxRequest + 1)).catch((e) => e)
    expect(error.code).toBe('ERR_SHMQ_TOO_LARGE')
    expect(client.stats().requests).toBe(0)
    const echoed = await client.request(new Uint8Array(client.maxRequest).fill(3), { type: ECHO })
    expect(echoed.length).toBe(client.maxRequest)
  })

  it('a handler sees the timeout its client stated (ctx.timeout): in ms, capped at 65535, null for none', async () => {
    const name = serverName('rpc-stated')
    const seen = []
    const server = Server.listen(name, (request, ctx) => {
      seen.push(ctx.timeout)
      return request
    })
    const client = await Client.connect(name, { requestTimeout: 2500 })
    try {
      for (const options of [{ timeout: 1234 }, { timeout: Infinity }, { timeout: 1e6 }, {}, { timeout: 0.4 }]) await client.request(new Uint8Array(4), options).catch(() => null)
    } finally {
      client.close()
      await server.close()
    }
    expect(seen).toEqual([1234, null, 65535, 2500, 1])
  })

  it('bad arguments: clear errors, nothing sent', async () => {
    const { client } = await withServer('rpcargs')
    for (const [call, code] of [
      [() => client.request('text'), 'ERR_SHMQ_INVALID_ARGUMENT'],
      [() => client.request(new Uint8Array(1), { type: 70000 }), 'ERR_SHMQ_INVALID_ARGUMENT'],
      [() => client.request(new Uint8Array(1), { timeout: -1 }), 'ERR_SHMQ_INVALID_ARGUMENT'],
      [() => client.request(new Uint8Array(1), { signal: {} }), 'ERR_SHMQ_INVALID_ARGUMENT'],
    ]) {
      expect((await call().catch((e) => e)).code).toBe(code)
    }
    expect(client.stats().requests).toBe(0)
    expect(thrownBy(() => Server.listen(uniqueName('h'), 'not a function')).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    expect(thrownBy(() => Server.listen(uniqueName('c'), () => {}, { concurrency: 0 })).code).toBe('ERR_SHMQ_INVALID_ARGUMENT')
    await expect(Client.connect(uniqueName('none'), { timeout: 50 })).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('the listener refuses other uses: Producer.open and Consumer.open say ERR_SHMQ_KIND; a client refuses a plain queue', async () => {
    const { name } = await withServer('rpckind')
    expect(thrownBy(() => Producer.open(name)).code).toBe('ERR_SHMQ_KIND')
    expect(thrownBy(() => Consumer.open(name)).code).toBe('ERR_SHMQ_KIND')
    expect(inspectSegment(name).kind).toBe('server')
    const queue = uniqueName('queue')
    names.push(queue)
    const consumer = Consumer.create(queue, { producers: 'many' })
    endpoints.push(consumer)
    await expect(Client.connect(queue, { timeout: 50 })).rejects.toMatchObject({ code: 'ERR_SHMQ_KIND' })
    // a second server on a live one's name
    expect(thrownBy(() => Server.listen(name, () => {})).code).toBe('EEXIST')
  })

  it('server.close() with requests in flight: handlers that finish in time answer; the rest, and later requests, reject with ERR_SHMQ_CLOSED', async () => {
    const { server, client } = await withServer('rpcclose')
    const quick = client.request(request(1, SLOW, 50).bytes, { type: SLOW })
    const held = client.request(request(2, HOLD).bytes, { type: HOLD })
    await sleep(20)
    server.send({ type: 'close', timeout: 300 })
    expect(Buffer.from(await quick)).toEqual(Buffer.from(request(1, SLOW, 50).bytes))
    expect((await held.catch((e) => e)).code).toBe('ERR_SHMQ_CLOSED')
    const { stats } = await next(server, 'closed')
    expect(stats.refused).toBeGreaterThanOrEqual(1)
    await exitedCleanly(server)
    // the server is gone: requests now reject at once while the client tries to reconnect
    await waitUntil(() => !client.connected, 'client sees the server closed')
    expect((await client.request(request(3, ECHO).bytes).catch((e) => e)).code).toBe('ERR_SHMQ_PEER_GONE')
  })

  it('client.close() rejects its pending requests with ERR_SHMQ_CLOSED; the server drops their work', async () => {
    const { server, client } = await withServer('rpcclientclose')
    const held = client.request(request(5, HOLD).bytes, { type: HOLD })
    await sleep(20)
    const abortedInServer = next(server, 'aborted')
    client.close()
    expect((await held.catch((e) => e)).code).toBe('ERR_SHMQ_CLOSED')
    expect((await abortedInServer).seq).toBe(5)
    expect((await client.request(request(6, ECHO).bytes).catch((e) => e)).code).toBe('ERR_SHMQ_CLOSED')
  })

  it('a process whose server and clients are closed exits by itself', async () => {
    const name = serverName('rpcexit')
    const script = `
      const { Server, Client } = require(${JSON.stringify(require.resolve('../dist/index.js'))})
      ;(async () => {
        const server = Server.listen(${JSON.stringify(name)}, (request) => request)
        const client = await Client.connect(${JSON.stringify(name)})
        const reply = await client.request(new Uint8Array([1, 2, 3]))
        if (reply.length !== 3) throw new Error('bad reply')
        client.close()
        await server.close()
        console.log('closed')
      })().catch((error) => { console.error(error); process.exit(1) })`
    const { execFileSync } = await import('node:child_process')
    const output = execFileSync(process.execPath, ['-e', script], { timeout: 20_000, encoding: 'utf8' })
    expect(output.trim()).toBe('closed')
    expect(shmEntries(name)).toEqual([])
  })
})
