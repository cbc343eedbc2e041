// Broadcast rings ↔ NATS subjects and work queues ↔ NATS queue groups: every side a real process, against a real nats-server.
import { afterEach, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { bridgeReport, bridgeTestSession, nextMessage, ready, spawnChild, startBridge } from './harness.mjs'

const require = createRequire(import.meta.url)
const { inspectSegment } = require('../../dist/index.js')
const { bridge } = require('../../dist/bridge/index.js')
const cli = path.resolve(__dirname, '../../dist/cli.js')

const session = bridgeTestSession(afterEach)
const names = session.names
let nats = null

const clean = (exit) => expect(exit).toEqual({ code: 0, signal: null })
const named = (tag) => {
  const name = `bridge-fo-${tag}-${process.pid}`
  names.push(name)
  return name
}

/** Every sequence the workers reported, by worker, and which came marked redelivered. */
function collect(worker) {
  worker.seqs = []
  worker.marked = new Set()
  worker.on('message', (m) => {
    if (m.seqs === undefined) return
    worker.seqs.push(...m.seqs)
    for (const seq of m.marked) worker.marked.add(seq)
  })
  return worker
}

/**
 * Checks the workers handled every message once: none missing beyond `allowedMissing`, and a sequence seen twice only
 * when one copy came from the worker killed on purpose and the later one came marked redelivered (at-least-once runs
 * may also repeat what a killed bridge published and JetStream redelivered: `allowDuplicates`).
 */
function tally(workers, count, killed, { allowDuplicates = false } = {}) {
  const seen = new Map()
  for (const worker of workers) {
    for (const seq of worker.seqs) {
      if (!seen.has(seq)) seen.set(seq, [])
      seen.get(seq).push(worker)
    }
  }
  let missing = 0
  let duplicates = 0
  let badDuplicates = 0
  let outOfRange = 0
  for (const seq of seen.keys()) if (seq >= count) outOfRange++
  for (let seq = 0; seq < count; seq++) {
    const holders = seen.get(seq)
    if (holders === undefined) missing++
    else if (holders.length > 1) {
      duplicates += holders.length - 1
      const explained = holders.includes(killed) && holders.some((w) => w !== killed && w.marked.has(seq))
      if (!explained && !allowDuplicates) badDuplicates++
    }
  }
  return { missing, duplicates, badDuplicates, outOfRange, perWorker: workers.map((w) => w.seqs.length) }
}

describe('broadcast bridges', () => {
  it('publisher → broadcast A → bridge → NATS → bridge → broadcast B → 2 subscribers: every message, in order, checksums and types intact', async () => {
    nats = await session.startNats()
    const [a, b] = [named('bc-a'), named('bc-b')]
    const subject = `bc.${process.pid}`
    const COUNT = 50_000
    // a 4 MiB ring: room for a subscriber descheduled for a while on a busy host
    const inbound = startBridge({ kind: 'broadcast', from: `${nats.url}/${subject}`, to: `shm:${b}`, capacity: 1 << 22, maxSubscribers: 4 })
    await ready(inbound)
    expect(inspectSegment(b)).toMatchObject({ kind: 'broadcast', capacity: 1 << 22, maxSubscribers: 4 })
    const subscribers = [0, 1].map(() => spawnChild('bridge-fanout-reader.cjs', ['subscriber', b]))
    for (const s of subscribers) await ready(s)
    // a steady rate (at most ~100 k msgs/s), not one burst
    const writer = spawnChild('bridge-fanout-writer.cjs', ['broadcast', a, String(COUNT), '512', '21', JSON.stringify({ paceEvery: 100, paceMs: 1 })])
    await ready(writer)
    const outbound = startBridge({ kind: 'broadcast', from: `shm:${a}`, to: `${nats.url}/${subject}` })
    await ready(outbound)
    writer.send('go')
    const results = []
    for (const s of subscribers) results.push((await nextMessage(s, (m) => 'result' in m || 'error' in m, 200_000)).result)
    clean(await writer.exited)
    for (const s of subscribers) clean(await s.exited)
    const finalOut = await bridgeReport(outbound)
    const finalIn = await bridgeReport(inbound)
    clean(finalOut.exit)
    clean(finalIn.exit)
    const out = finalOut.report.stats
    const inn = finalIn.report.stats
    console.log('broadcast', JSON.stringify(results), JSON.stringify(out), JSON.stringify(inn))
    // the end of A's stream travelled: both bridges stopped by themselves
    expect(out.ended && inn.ended).toBe(true)
    const bridgeLosses = out.dropped + out.unconfirmed + inn.dropped
    for (const r of results) {
      expect(r.corrupt).toBe(0)
      expect(r.wrongType).toBe(0)
      expect(r.outOfOrder).toBe(0)
      // what a subscriber missed is what the bridges and its own ring counted as lost
      expect(r.received + bridgeLosses + r.lost).toBe(COUNT)
      expect(r.missing + (COUNT - r.expected)).toBe(bridgeLosses + r.lost)
      // at this rate nothing is lost
      expect(r.received).toBe(COUNT)
    }
    expect(out.messagesIn).toBe(COUNT)
    expect(out.messagesOut).toBe(COUNT)
    expect(inn.messagesOut).toBe(COUNT)
  })
})

/**
 * writer → work queue U → bridge (a worker of U) → NATS → bridges X and Y in one queue group → work queues QX and QY,
 * 2 worker processes each. Returns the processes for the caller's assertions.
 */
async function workQueuePipeline({ count, delivery, group }) {
  const [u, qx, qy] = [named(`wq-u-${delivery}`), named(`wq-x-${delivery}`), named(`wq-y-${delivery}`)]
  const subject = `wq.${delivery}.${process.pid}`
  const common = { kind: 'work-queue', delivery, ...(delivery === 'at-least-once' ? { stream: `WQ_${process.pid}`, ackWait: 3000 } : {}) }
  const inbound = [qx, qy].map((q) => startBridge({ ...common, from: `${nats.url}/${subject}`, to: `shm:${q}`, queue: group }))
  for (const b of inbound) await ready(b)
  // slower workers; the first one hangs after 500 messages with a batch in hand, for the test to kill
  const workers = [qx, qx, qy, qy].map((q, i) => collect(spawnChild('bridge-fanout-reader.cjs', ['worker', q, JSON.stringify({ batchSleepMs: 1, ...(i === 0 ? { stallAfter: 500 } : {}) })])))
  for (const w of workers) await ready(w)
  const writer = spawnChild('bridge-fanout-writer.cjs', ['work-queue', u, String(count), '256', '31', JSON.stringify({ hold: true })])
  await ready(writer)
  const outboundOptions = { ...common, from: `shm:${u}`, to: `${nats.url}/${subject}` }
  const outbound = startBridge(outboundOptions)
  await ready(outbound)
  writer.send('go')
  return { inbound, workers, writer, outbound, outboundOptions, queues: [qx, qy] }
}

const handledSoFar = (workers) => workers.reduce((sum, w) => sum + w.seqs.length, 0)
async function until(test, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The inbound bridges of a group run until SIGTERM (leaving the group); each exits 0. */
async function stopInbound(inbound) {
  const reports = []
  for (const b of inbound) {
    b.kill('SIGTERM')
    const final = await bridgeReport(b)
    clean(final.exit)
    reports.push(final.report.stats)
  }
  return reports
}

describe('work queue bridges', () => {
  it('at-most-once: two bridges in one queue group share the subject; every message handled once by one of 4 workers, a SIGKILLed worker\'s messages redelivered, marked', async () => {
    nats = await session.startNats()
    const COUNT = 20_000
    const { inbound, workers, writer, outbound } = await workQueuePipeline({ count: COUNT, delivery: 'at-most-once', group: `g-amo-${process.pid}` })
    // a worker hangs mid-run with messages in hand (and more in its ring), and is killed
    const killed = workers[0]
    await nextMessage(killed, (m) => m.stalled === true, 120_000)
    killed.kill('SIGKILL')
    expect((await killed.exited).signal).toBe('SIGKILL')
    await nextMessage(writer, (m) => m.sent === COUNT, 200_000)
    writer.send('close')
    clean(await writer.exited)
    // the outbound bridge ends with U's stream: everything it published was confirmed by the server
    const finalOut = await bridgeReport(outbound)
    clean(finalOut.exit)
    const [x, y] = await stopInbound(inbound)
    const survivors = workers.slice(1)
    const results = []
    for (const w of survivors) {
      results.push((await nextMessage(w, (m) => 'result' in m || 'error' in m, 60_000)).result)
      clean(await w.exited)
    }
    const out = finalOut.report.stats
    const t = tally(workers, COUNT, killed)
    console.log('work queue at-most-once', JSON.stringify(t), JSON.stringify(results), JSON.stringify(out), JSON.stringify(x), JSON.stringify(y))
    for (const r of results) {
      expect(r.corrupt).toBe(0)
      expect(r.wrongType).toBe(0)
    }
    expect(out.ended).toBe(true)
    // the end of stream reaches one member of a group: members ignore it and run until closed
    expect(x.ended || y.ended).toBe(false)
    // both bridges of the group carried part of the stream
    expect(x.messagesIn).toBeGreaterThan(0)
    expect(y.messagesIn).toBeGreaterThan(0)
    expect(x.messagesIn + y.messagesIn).toBe(COUNT)
    expect(t.outOfRange).toBe(0)
    expect(t.badDuplicates).toBe(0)
    // none missing beyond the bridges' counted drops, and at this rate none dropped
    expect(t.missing).toBe(x.dropped + y.dropped + out.unconfirmed)
    expect(t.missing).toBe(0)
    // the killed worker's unreleased messages went to its queue's other worker, marked
    expect(survivors[0].marked.size).toBeGreaterThan(0)
    expect(results[0].redelivered).toBe(survivors[0].marked.size)
  })

  it('at-least-once: a shared JetStream durable; a worker, the outbound bridge (then restarted) and one inbound bridge SIGKILLed: nothing missing, repeats only as redeliveries', async () => {
    nats = await session.startNats({ jetstream: true })
    const COUNT = 20_000
    const { inbound, workers, writer, outbound: first, outboundOptions } = await workQueuePipeline({ count: COUNT, delivery: 'at-least-once', group: `g-alo-${process.pid}` })
    const [bridgeX, bridgeY] = inbound
    // a worker of QX hangs mid-run with messages in hand, and is killed
    const killed = workers[0]
    await nextMessage(killed, (m) => m.stalled === true, 120_000)
    killed.kill('SIGKILL')
    expect((await killed.exited).signal).toBe('SIGKILL')
    // the outbound bridge dies holding a batch JetStream may not have acknowledged: U's dispatcher takes it back
    await until(() => handledSoFar(workers) >= 6000, 120_000, '6000 messages handled')
    first.kill('SIGKILL')
    expect((await first.exited).signal).toBe('SIGKILL')
    const outbound = startBridge(outboundOptions)
    await ready(outbound)
    // an inbound bridge dies with fetched, unacknowledged messages: JetStream gives them to X after ackWait;
    // Y's workers read what their rings hold, then see their producer gone
    await until(() => handledSoFar(workers) >= 10_000, 120_000, '10000 messages handled')
    bridgeY.kill('SIGKILL')
    expect((await bridgeY.exited).signal).toBe('SIGKILL')
    await nextMessage(writer, (m) => m.sent === COUNT, 200_000)
    writer.send('close')
    clean(await writer.exited)
    const finalOut = await bridgeReport(outbound)
    clean(finalOut.exit)
    // every message reaches a worker before X leaves the group (JetStream keeps what no bridge acknowledged)
    const covered = () => new Set(workers.flatMap((w) => w.seqs)).size >= COUNT
    await until(covered, 60_000, 'every message handled').catch(async (error) => {
      // say what is missing and where it was: the killed worker's, or one of the bridges'
      const seen = new Set(workers.flatMap((w) => w.seqs))
      const missing = []
      for (let seq = 0; seq < COUNT && missing.length < 20; seq++) if (!seen.has(seq)) missing.push(seq)
      bridgeX.send('stats')
      const live = await nextMessage(bridgeX, (m) => 'live' in m, 5000).catch(() => null)
      throw new Error(`${error.message}: ${COUNT - seen.size} missing, first ${missing.join(' ')}; killed worker reported ${killed.seqs.length} (max ${Math.max(...killed.seqs)}); X ${JSON.stringify(live?.live)}`)
    })
    const [x] = await stopInbound([bridgeX])
    const survivors = workers.filter((w) => w !== killed)
    const results = []
    for (const w of survivors) {
      results.push((await nextMessage(w, (m) => 'result' in m || 'error' in m, 60_000)).result)
      clean(await w.exited)
    }
    const t = tally(workers, COUNT, killed, { allowDuplicates: true })
    console.log('work queue at-least-once', JSON.stringify(t), JSON.stringify(results), JSON.stringify(finalOut.report.stats), JSON.stringify(x))
    for (const r of results) {
      expect(r.corrupt).toBe(0)
      expect(r.wrongType).toBe(0)
    }
    expect(t.outOfRange).toBe(0)
    expect(t.missing).toBe(0)
    // QY's workers lost their producer: they read what their rings held, then stopped
    expect(results[1].peerGone && results[2].peerGone).toBe(true)
    expect(results[0].peerGone).toBe(false)
    expect(x.messagesOut).toBeGreaterThan(0)
    expect(workers[2].seqs.length + workers[3].seqs.length).toBeGreaterThan(0)
    // the restarted outbound bridge got the dead one's held batch back from U's dispatcher, marked
    expect(finalOut.report.stats.redeliveries).toBeGreaterThan(0)
    expect(finalOut.report.stats.undelivered).toBe(0)
    // the killed worker's unreleased messages went to its queue's other worker, marked
    expect(workers[1].marked.size).toBeGreaterThan(0)
  })
})

describe('fan-out bridge arguments', () => {
  it('combinations that promise nothing are ERR_SHMQ_INVALID_ARGUMENT saying why, before anything connects; the CLI exits 2', async () => {
    const server = 'nats://127.0.0.1:1'
    const cases = [
      [{ kind: 'broadcast', from: 'shm:fo-bad', to: `${server}/x`, delivery: 'at-least-once' }, /place in the ring dies with it/],
      [{ kind: 'broadcast', from: `${server}/x`, to: 'shm:fo-bad', delivery: 'at-least-once' }, /no acknowledgement per subscriber/],
      [{ kind: 'broadcast', from: `${server}/x`, to: 'shm:fo-bad', queue: 'g' }, /queue group/],
      [{ kind: 'work-queue', from: 'shm:fo-bad', to: `${server}/x`, queue: 'g' }, /subscribes to nothing/],
      [{ kind: 'work-queue', from: `${server}/x`, to: 'shm:fo-bad', queue: 'a b' }, /queue must be/],
      [{ kind: 'fanout', from: `${server}/x`, to: 'shm:fo-bad' }, /kind must be one of/],
      [{ kind: 'stream', from: `${server}/x`, to: 'shm:fo-bad', queue: 'g' }, /bridged as a stream/],
      [{ kind: 'broadcast', from: 'shm:fo-bad', to: `${server}/x`, policy: 'lossy' }, /policy and maxSubscribers/],
    ]
    for (const [options, message] of cases) {
      await expect(bridge(options), JSON.stringify(options)).rejects.toMatchObject({ code: 'ERR_SHMQ_INVALID_ARGUMENT', message: expect.stringMatching(message) })
    }
    const run = (...args) => spawnSync(process.execPath, [cli, 'bridge', ...args], { encoding: 'utf8', timeout: 20_000 })
    const refused = run('--kind', 'broadcast', '--delivery', 'at-least-once', '--from', 'shm:fo-bad', '--to', `${server}/x`)
    expect([refused.status, refused.signal]).toEqual([2, null])
    expect(refused.stderr).toContain('at-most-once')
    const queued = run('--kind', 'work-queue', '--queue', 'g', '--from', 'shm:fo-bad', '--to', `${server}/x`)
    expect([queued.status, queued.signal]).toEqual([2, null])
  })

  it('a local ring of another kind, or with a live writer, is refused', async () => {
    nats = await session.startNats()
    const name = named('busy')
    const { Publisher, Producer } = require('../../dist/index.js')
    const publisher = Publisher.create(name)
    try {
      await expect(bridge({ kind: 'broadcast', from: `${nats.url}/x`, to: `shm:${name}` })).rejects.toMatchObject({ code: 'ERR_SHMQ_BUSY' })
      await expect(bridge({ kind: 'work-queue', from: `${nats.url}/x`, to: `shm:${name}` })).rejects.toMatchObject({ code: 'ERR_SHMQ_KIND' })
    } finally {
      publisher.close()
    }
    const stream = named('stream')
    const producer = Producer.create(stream)
    try {
      await expect(bridge({ kind: 'work-queue', from: `shm:${stream}`, to: `${nats.url}/x` })).rejects.toMatchObject({ code: 'ERR_SHMQ_KIND' })
    } finally {
      producer.close()
    }
  })

  it('the CLI runs a broadcast and a work-queue bridge and exits 0 on SIGTERM with its stats', async () => {
    nats = await session.startNats()
    for (const kind of ['broadcast', 'work-queue']) {
      const name = named(`cli-${kind}`)
      const child = spawn(process.execPath, [cli, 'bridge', '--kind', kind, '--from', `${nats.url}/cli.${kind}`, '--to', `shm:${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (c) => (out += c))
      child.stderr.on('data', (c) => (err += c))
      const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
      // the bridge created its local end: a broadcast ring with its publisher, a work queue with its producer
      await until(() => {
        const report = inspectSegment(name)
        return report !== null && report.kind === (kind === 'broadcast' ? 'broadcast' : 'work queue') && (report.producer ?? report.consumer)?.alive === true
      }, 10_000, `the CLI's ${kind} ring`)
      child.kill('SIGTERM')
      expect(await exited, err).toEqual({ code: 0, signal: null })
      expect(JSON.parse(out)).toMatchObject({ direction: 'nats-to-shm', messagesIn: 0, error: null })
    }
  })
})
