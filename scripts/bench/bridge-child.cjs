// One side of a bridge benchmark row, reporting over IPC.
//   produce|consume NAME - SIZE COUNT         one-way through a shmq channel; consume reports { ms } (first message to last)
//   nats-pub|nats-sub SERVER SUBJECT SIZE COUNT  one-way through plain NATS, the same client the bridge uses
//   shm-ping OUT IN | shm-echo IN OUT          round trips through shmq channels (bridged or not), one message outstanding
//   nats-ping|nats-echo SERVER SUBJECT         round trips through plain NATS: SUBJECT.ping out, SUBJECT.pong back
//   bridge OPTIONS_JSON                        a bridge and nothing else (no sampling, unlike the tests' bridge-run.cjs), until
//                                              SIGTERM; answers 'cpu' with { cpuUs } (its process's CPU time so far), and
//                                              ends with { stats, cpuUs }
// nats-pub and nats-sub report cpuUs too: their CPU time from their first message to their last.
// A ping child waits for { size, count } messages and answers each with { samples } (µs per round trip).
const [role, a, b, sizeArg, countArg] = process.argv.slice(2)
const size = Number(sizeArg)
const count = Number(countArg)
const done = (result) => process.send(result, () => process.exit(0))
const cpuUs = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}

/** Runs `trip(message)` round trips as the parent asks; a short warm-up first. */
function serveRounds(trip) {
  process.on('message', async ({ size, count }) => {
    const message = Buffer.alloc(size, 7)
    for (let i = 0; i < 200; i++) await trip(message)
    const samples = new Array(count)
    for (let i = 0; i < count; i++) {
      const started = performance.now()
      await trip(message)
      samples[i] = (performance.now() - started) * 1000
    }
    process.send({ samples })
  })
  process.send({ ready: true })
}

;(async () => {
  if (role === 'bridge') {
    const { bridge } = require('../../dist/bridge/index.js')
    const b = await bridge(JSON.parse(a))
    process.on('SIGTERM', () => void b.close())
    process.on('message', (m) => m === 'cpu' && process.send({ cpuUs: cpuUs() }))
    process.send({ ready: true })
    const stats = await b.done
    return done({ stats, cpuUs: cpuUs() })
  }
  if (role === 'produce' || role === 'consume') {
    const { Producer, Consumer } = require('../../dist/index.js')
    if (role === 'produce') {
      const producer = Producer.open(a, { timeout: 10_000 })
      const message = Buffer.alloc(size, 7)
      for (let i = 0; i < count; i++) if (!producer.tryWrite(message)) await producer.write(message)
      producer.close()
      return done({ sent: count })
    }
    const consumer = Consumer.open(a, { timeout: 10_000 })
    process.send({ ready: true })
    let n = 0
    let started = 0
    while (n < count) {
      const got = consumer.drainRaw(() => {}, 4096)
      if (got === 0) {
        if ((await consumer.read()) === null) break
        n++
      } else n += got
      if (started === 0) started = performance.now()
    }
    return done({ ms: performance.now() - started, received: n })
  }
  if (role === 'shm-ping' || role === 'shm-echo') {
    const { Producer, Consumer } = require('../../dist/index.js')
    // ping: writes OUT (a), reads IN (b); echo: reads IN (a), writes OUT (b)
    const [outName, inName] = role === 'shm-ping' ? [a, b] : [b, a]
    const producer = Producer.open(outName, { timeout: 10_000 })
    const consumer = Consumer.open(inName, { timeout: 10_000 })
    if (role === 'shm-echo') {
      process.send({ ready: true })
      for (;;) {
        const message = await consumer.read()
        if (message === null) break
        if (!producer.tryWrite(message)) await producer.write(Buffer.from(message))
      }
      return
    }
    return serveRounds(async (message) => {
      if (!producer.tryWrite(message)) await producer.write(message)
      const reply = await consumer.read()
      if (reply === null || reply.length !== message.length) throw new Error(`a ${reply?.length}-byte reply to ${message.length} bytes`)
    })
  }
  const { connect } = require('@nats-io/transport-node')
  const nc = await connect({ servers: a })
  if (role === 'nats-echo') {
    nc.subscribe(`${b}.ping`, { callback: (_error, msg) => nc.publish(`${b}.pong`, msg.data) })
    await nc.flush()
    return process.send({ ready: true })
  }
  if (role === 'nats-ping') {
    let resolve = null
    nc.subscribe(`${b}.pong`, { callback: () => resolve() })
    await nc.flush()
    return serveRounds((message) => {
      const reply = new Promise((r) => (resolve = r))
      nc.publish(`${b}.ping`, message)
      return reply
    })
  }
  if (role === 'nats-pub') {
    const message = Buffer.alloc(size, 7)
    const cpu = cpuUs()
    for (let i = 0; i < count; i++) {
      nc.publish(b, message)
      if (i % 256 === 255) await nc.flush()
    }
    await nc.flush()
    const used = cpuUs() - cpu
    await nc.close()
    return done({ sent: count, cpuUs: used })
  }
  let n = 0
  let started = 0
  let cpu = 0
  let finish
  const finished = new Promise((resolve) => (finish = resolve))
  nc.subscribe(b, {
    callback: () => {
      if (n++ === 0) {
        started = performance.now()
        cpu = cpuUs()
      }
      if (n === count) finish()
    },
  })
  await nc.flush()
  process.send({ ready: true })
  await finished
  const ms = performance.now() - started
  const used = cpuUs() - cpu
  await nc.close()
  done({ ms, received: n, cpuUs: used })
})().catch((error) => {
  console.error(error)
  process.exit(1)
})
