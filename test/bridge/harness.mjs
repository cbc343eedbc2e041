// Child processes for the bridge tests: each reports over IPC; every child is killed if the test fails.
import { fork } from 'node:child_process'
import { readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startNats } from './nats-server.mjs'

const { unlink } = createRequire(import.meta.url)('../../dist/index.js')
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures')
const live = new Set()

export function spawnChild(script, args, options = {}) {
  const child = fork(path.join(fixtures, script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...options })
  live.add(child)
  child.messages = []
  child.on('message', (message) => child.messages.push(message))
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    live.delete(child)
    resolve({ code, signal })
  }))
  return child
}

/** The first IPC message of `child` that satisfies `test`, or a rejection when it exits first or `timeoutMs` passes. */
export function nextMessage(child, test, timeoutMs = 60_000) {
  const found = child.messages.find(test)
  if (found) return Promise.resolve(found)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no expected message from ${child.spawnargs.slice(-3).join(' ')} within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (message) => test(message) && done(null, message)
    const onExit = (code, signal) => done(new Error(`child exited (${code}, ${signal}) before the expected message: ${JSON.stringify(child.messages.slice(-3))}`))
    const done = (error, message) => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      error ? reject(error) : resolve(message)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

export const ready = (child, timeoutMs) => nextMessage(child, (m) => m.ready === true, timeoutMs)

export function killAll() {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

export function startBridge(options) {
  return spawnChild('bridge-run.cjs', [JSON.stringify(options)], { execArgv: ['--expose-gc'] })
}

/** The final report of a bridge child and its exit. */
export async function bridgeReport(child, timeoutMs = 120_000) {
  const report = await nextMessage(child, (m) => 'stats' in m || 'fatal' in m, timeoutMs)
  return { report, exit: await child.exited }
}

/**
 * What a bridge test file makes, undone after each test (pass vitest's
 * afterEach): the children (killAll), the nats-server started with
 * `session.startNats`, and the channels pushed to `session.names` with the
 * rings made for them (work-queue workers' NAME.w…, reply rings NAME.r…) and
 * the stats files of bridges killed on them.
 */
export function bridgeTestSession(afterEach) {
  const session = {
    nats: null,
    names: [],
    async startNats(options) {
      session.nats = await startNats(options)
      return session.nats
    },
  }
  afterEach(async () => {
    killAll()
    await session.nats?.dispose()
    session.nats = null
    const entries = readdirSync('/dev/shm')
    for (const name of session.names.splice(0)) {
      for (const entry of entries) {
        // stats files of bridges killed on purpose (lib/bridge-stats.ts)
        if (entry.startsWith(`.shmq-${name}.bridge-`)) rmSync(`/dev/shm/${entry}`, { force: true })
        if (entry !== name && !entry.startsWith(`${name}.w`) && !entry.startsWith(`${name}.r`)) continue
        try {
          unlink(entry)
        } catch {}
      }
    }
  })
  return session
}
