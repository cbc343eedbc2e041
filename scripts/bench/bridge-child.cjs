// One side of a bridge benchmark row; reports { ms } (first message to last) over IPC.
const [role, a, b, sizeArg, countArg] = process.argv.slice(2)
const size = Number(sizeArg)
const count = Number(countArg)
const done = (result) => process.send(result, () => process.exit(0))
;(async () => {
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
  const { connect } = require('@nats-io/transport-node')
  const nc = await connect({ servers: a })
  if (role === 'nats-pub') {
    const message = Buffer.alloc(size, 7)
    for (let i = 0; i < count; i++) {
      nc.publish(b, message)
      if (i % 256 === 255) await nc.flush()
    }
    await nc.flush()
    await nc.close()
    return done({ sent: count })
  }
  let n = 0
  let started = 0
  let finish
  const finished = new Promise((resolve) => (finish = resolve))
  nc.subscribe(b, {
    callback: () => {
      if (n++ === 0) started = performance.now()
      if (n === count) finish()
    },
  })
  await nc.flush()
  process.send({ ready: true })
  await finished
  const ms = performance.now() - started
  await nc.close()
  done({ ms, received: n })
})().catch((error) => {
  console.error(error)
  process.exit(1)
})
