// Starts and stops a real nats-server on a free loopback port for the bridge tests and benchmark.
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export const MISSING = 'nats-server not found on PATH: apt-get install nats-server'

export function natsServerPath() {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    const candidate = path.join(dir, 'nats-server')
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function waitForPort(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nats-server exited with ${child.exitCode}`))
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve()
      })
      socket.once('error', () => {
        socket.destroy()
        if (Date.now() > deadline) reject(new Error(`nats-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

/** Every server started and not yet stopped, killed on exit whatever happens. */
const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * A nats-server on 127.0.0.1:port (a free one by default), with JetStream in
 * `storeDir` when asked. restart() stops it gracefully and starts it again on
 * the same port and store.
 */
export async function startNats({ jetstream = false, port, storeDir } = {}) {
  const binary = natsServerPath()
  if (binary === null) throw new Error(MISSING)
  port ??= await freePort()
  if (jetstream) storeDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-nats-'))
  const args = ['-a', '127.0.0.1', '-p', String(port)]
  if (jetstream) args.push('-js', '-sd', storeDir)
  let child = null
  let log = ''
  const launch = async () => {
    child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    running.add(child)
    child.stderr.on('data', (chunk) => {
      log = (log + chunk).slice(-20_000)
    })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.exited = exited
    await waitForPort(port, child, 10_000)
  }
  const stop = async (signal = 'SIGTERM') => {
    if (child === null) return
    const current = child
    child = null
    if (current.exitCode === null && current.signalCode === null) {
      current.kill(signal)
      const timer = setTimeout(() => current.kill('SIGKILL'), 10_000)
      await current.exited
      clearTimeout(timer)
    }
    running.delete(current)
  }
  await launch()
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    storeDir,
    log: () => log,
    stop,
    /** Starts it again after stop(), on the same port and store. */
    start: launch,
    async restart() {
      await stop('SIGTERM')
      await launch()
    },
    async dispose() {
      await stop('SIGTERM')
      if (storeDir !== undefined) fs.rmSync(storeDir, { recursive: true, force: true })
    },
  }
}

export function natsServerVersion() {
  const binary = natsServerPath()
  return binary === null ? null : execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim()
}
