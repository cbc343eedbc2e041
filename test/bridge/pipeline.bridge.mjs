// producer → channel A → bridge → NATS → bridge → channel B → consumer, every process real, against a real nats-server.
import { afterEach, describe, expect, it } from 'vitest'
import { bridgeReport, bridgeTestSession, nextMessage, ready, spawnChild, startBridge } from './harness.mjs'

const COUNT = 200_000
const MAX_SIZE = 1024

const session = bridgeTestSession(afterEach)
const names = session.names
let nats = null

function channels(tag) {
  const a = `bridge-${tag}-a-${process.pid}`
  const b = `bridge-${tag}-b-${process.pid}`
  names.push(a, b)
  return [a, b]
}

const clean = (exit) => expect(exit).toEqual({ code: 0, signal: null })

describe('bridge pipeline', () => {
  it('at-least-once: 200,000 messages exactly once and in order after de-duplication, across a nats-server restart with the outbound bridge killed meanwhile, and a killed inbound bridge', async () => {
    nats = await session.startNats({ jetstream: true })
    const [a, b] = channels('alo')
    const subject = `alo.${process.pid}`
    const common = { delivery: 'at-least-once', stream: 'ALO', ackWait: 5000 }
    const outbound = { ...common, from: `shm:${a}`, to: `${nats.url}/${subject}` }
    const inbound = { ...common, from: `${nats.url}/${subject}`, to: `shm:${b}` }
    let bridgeB = startBridge(inbound)
    await ready(bridgeB)
    const consumer = spawnChild('bridge-consumer.cjs', [b, 'dedup', JSON.stringify({ types: true })])
    await ready(consumer)
    let bridgeA = startBridge(outbound)
    await ready(bridgeA)
    // type tags travel as Shmq-Type: the consumer checks each message's
    const producer = spawnChild('bridge-producer.cjs', [a, String(COUNT), String(MAX_SIZE), '11', 'types'])

    // the server goes away: the outbound bridge holds a message JetStream has not acknowledged, and is killed
    // while it retries; the message must still be in the ring for the next bridge (release only after the ack)
    await nextMessage(consumer, (m) => m.progress >= 40_000, 200_000)
    await nats.stop()
    await new Promise((resolve) => setTimeout(resolve, 500))
    bridgeA.kill('SIGKILL')
    expect((await bridgeA.exited).signal).toBe('SIGKILL')
    await nats.start()
    bridgeA = startBridge(outbound)
    await ready(bridgeA)

    // a bridge killed between its local write and its ack: JetStream delivers again from the ack floor
    await nextMessage(consumer, (m) => m.progress >= 130_000, 200_000)
    bridgeB.kill('SIGKILL')
    expect((await bridgeB.exited).signal).toBe('SIGKILL')
    bridgeB = startBridge(inbound)
    await ready(bridgeB)

    const { result } = await nextMessage(consumer, (m) => 'result' in m || 'error' in m, 280_000)
    const sent = await nextMessage(producer, (m) => 'sent' in m)
    clean(await producer.exited)
    clean(await consumer.exited)
    const finalA = await bridgeReport(bridgeA)
    const finalB = await bridgeReport(bridgeB)
    clean(finalA.exit)
    clean(finalB.exit)
    console.log('at-least-once', JSON.stringify(result), JSON.stringify(finalA.report.stats), JSON.stringify(finalB.report.stats))
    expect(sent.sent).toBe(COUNT)
    expect(result.corrupt).toBe(0)
    expect(result.wrongType).toBe(0)
    expect(result.outOfOrder).toBe(0)
    expect(result.firstGap).toBe(null)
    expect(result.expected).toBe(COUNT)
    expect(result.received).toBe(COUNT + result.duplicates)
    expect(finalA.report.stats.ended && finalB.report.stats.ended).toBe(true)
    expect(finalA.report.stats.undelivered).toBe(0)
    expect(result.peerGone).toBeGreaterThanOrEqual(1)
  })

  it('at-most-once: losses are the bridge\'s counted drops, exactly what the consumer misses', async () => {
    nats = await session.startNats()
    const [a, b] = channels('amo')
    const subject = `amo.${process.pid}`
    // a small pending queue and a consumer that naps: the inbound bridge must drop
    const bridgeB = startBridge({ from: `${nats.url}/${subject}`, to: `shm:${b}`, maxInFlightMessages: 200, capacity: 1 << 16 })
    await ready(bridgeB)
    const consumer = spawnChild('bridge-consumer.cjs', [b, 'lossy', JSON.stringify({ sleepEvery: 5000, sleepMs: 20, types: true })])
    await ready(consumer)
    const bridgeA = startBridge({ from: `shm:${a}`, to: `${nats.url}/${subject}` })
    await ready(bridgeA)
    const producer = spawnChild('bridge-producer.cjs', [a, String(COUNT), String(MAX_SIZE), '12', 'types'])
    const { result } = await nextMessage(consumer, (m) => 'result' in m || 'error' in m, 280_000)
    clean(await producer.exited)
    clean(await consumer.exited)
    const finalA = await bridgeReport(bridgeA)
    const finalB = await bridgeReport(bridgeB)
    clean(finalA.exit)
    clean(finalB.exit)
    console.log('at-most-once', JSON.stringify(result), JSON.stringify(finalA.report.stats), JSON.stringify(finalB.report.stats))
    expect(result.corrupt).toBe(0)
    expect(result.wrongType).toBe(0)
    expect(result.duplicates).toBe(0)
    expect(finalB.report.stats.dropped).toBeGreaterThan(0)
    expect(finalB.report.stats.slowConsumerEvents).toBeGreaterThan(0)
    // the stream may also end in drops: count what never arrived after the last message seen
    const missing = result.missing + (COUNT - result.expected)
    expect(missing).toBe(finalB.report.stats.dropped + finalA.report.stats.unconfirmed)
    expect(finalA.report.stats.messagesOut).toBe(COUNT)
    expect(finalB.report.stats.messagesIn).toBe(COUNT)
    expect(finalB.report.stats.messagesOut).toBe(COUNT - finalB.report.stats.dropped)
  })
})
