// Baseline: child_process IPC (`subprocess.send` / `process.send`).
//
// scripts/bench.mjs starts the driver, which forks its peer with the IPC channel
// (params.serialization: 'advanced' sends Buffers through the V8 serializer,
// 'json' sends the payload as a string since a JSON Buffer is an array of
// numbers; the string is printable so JSON need not escape it). Roles:
//   tp      driver = producer: sends in batches of ~64 KiB of payload (1000 messages
//           at most) and waits for a batch's last send callback before sending the
//           batch after next, so at most two batches are queued; the peer counts
//           messages until the end message
//   rtt     driver = pinger: sends one 64-byte message, the peer echoes it
//   peer-*  the forked side

import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { args, barrier, result, cpuMs, nowNs, perfNs, summarize, payload, Tally, END_LENGTH, MARK_LENGTH, CONTROL_MAX, fail } from './common.mjs'

const { role, params } = args()
const self = fileURLToPath(import.meta.url)
const sendBatch = (size) => Math.max(1, Math.min(1000, Math.floor(65536 / size)))

function makeMessage(size) {
  if (params.serialization === 'advanced') return Buffer.from(payload(size))
  // printable, so that JSON does not escape it: 64 B of payload stay ~64 B on the wire
  let text = ''
  for (let i = 0; i < size; i++) text += String.fromCharCode(97 + (i % 26))
  return text
}

function forkPeer(peerRole) {
  const child = fork(self, [peerRole, JSON.stringify(params)], {
    serialization: params.serialization,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  return child
}

function sendAsync(target, message) {
  return new Promise((resolve, reject) => target.send(message, (error) => (error ? reject(error) : resolve())))
}

async function tp() {
  const child = forkPeer('peer-tp')
  const ready = await new Promise((resolve) => child.once('message', resolve))
  if (ready !== 'ready') throw new Error(`peer said ${ready}`)
  const report = new Promise((resolve) => child.on('message', resolve))
  const message = makeMessage(params.size)
  /** Sends up to `limit` messages in batches, until a batch ends past `deadline`. */
  const stream = async (limit, deadline) => {
    let sent = 0
    let previous = Promise.resolve()
    while (sent < limit) {
      const n = Math.min(sendBatch(params.size), limit - sent)
      for (let i = 1; i < n; i++) child.send(message)
      const last = sendAsync(child, message)
      sent += n
      await previous // at most two batches in flight
      previous = last
      if (nowNs() >= deadline) break
    }
    await previous
    return sent
  }
  await barrier()
  await stream(Infinity, nowNs() + params.warmMs * 1e6)
  child.send(makeMessage(MARK_LENGTH))
  const sent = await stream(params.count, nowNs() + params.maxMs * 1e6)
  child.send(makeMessage(END_LENGTH))
  const peer = await report
  child.disconnect()
  result({ sent, ...peer, peerCpuMs: peer.cpuMs })
}

function peerTp() {
  const tally = new Tally()
  let sum = 0
  const copy = params.work === 'copy'
  const out = new Uint8Array(params.size)
  const advanced = params.serialization === 'advanced'
  process.on('message', (message) => {
    if (message.length <= CONTROL_MAX) {
      tally.control(message.length)
      if (tally.done) process.send(tally.report({ sum, cpuMs: cpuMs() }))
      return
    }
    if (advanced) {
      if (copy) out.set(message)
      else sum += message[0] + message[message.length - 1]
    } else {
      sum += message.charCodeAt(0) + message.charCodeAt(message.length - 1)
    }
    tally.received++
  })
  process.once('disconnect', () => process.exit(0))
  process.send('ready')
}

async function rtt() {
  const child = forkPeer('peer-rtt')
  await new Promise((resolve) => child.once('message', resolve))
  const message = makeMessage(64)
  const total = params.count + params.warmup
  const samples = new Float64Array(params.count)
  await barrier()
  let i = 0
  let t0 = 0
  await new Promise((resolve) => {
    const onEcho = () => {
      const t1 = perfNs()
      if (i >= params.warmup) samples[i - params.warmup] = t1 - t0
      if (++i === total) {
        child.off('message', onEcho)
        return resolve()
      }
      t0 = perfNs()
      child.send(message)
    }
    child.on('message', onEcho)
    t0 = perfNs()
    child.send(message)
  })
  const bye = new Promise((resolve) => child.once('message', resolve))
  child.send('bye')
  const peer = await bye
  child.disconnect()
  result({ ...summarize(samples), peerCpuMs: peer.cpuMs })
}

function peerRtt() {
  process.on('message', (message) => process.send(message === 'bye' ? { cpuMs: cpuMs() } : message))
  process.once('disconnect', () => process.exit(0))
  process.send('ready')
}

const roles = { tp, rtt, 'peer-tp': peerTp, 'peer-rtt': peerRtt }
if (!roles[role]) fail(`ipc.mjs: unknown role ${role}`)
Promise.resolve().then(roles[role]).catch(fail)
