// How processes and worker threads holding shmq endpoints end: no crash, no
// hang, nothing left held.
import { afterEach, describe, expect, it } from 'vitest'
import { exitOf, killAll, removeSegment, spawnFixture, uniqueName } from './fixtures/harness.mjs'

const names = []
afterEach(() => {
  killAll()
  for (const n of names.splice(0)) removeSegment(n)
})

function run(scenario) {
  const name = uniqueName('teardown')
  names.push(name)
  for (let i = 0; i < 22; i++) names.push(`${name}-${i}`)
  return spawnFixture('teardown.cjs', { name, scenario }, { ipc: false })
}
const lines = (child) =>
  child.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))

describe('process exit', () => {
  it('process.exit(0) while a read() is parked on the event loop: exit 0, no signal', async () => {
    const child = run('exit-parked-read')
    expect(await exitOf(child, 60_000), child.describe()).toEqual({ code: 0, signal: null })
    expect(lines(child)).toEqual([{ parked: true, producer: 4096 }])
  })

  it('process.exit(0) while a worker thread blocks in readSync(): exit 0, no signal, no hang', async () => {
    const child = run('exit-worker-readsync')
    expect(await exitOf(child, 60_000), child.describe()).toEqual({ code: 0, signal: null })
    expect(lines(child)).toEqual([{ worker: 'parking' }])
  })

  it('endpoints left open but not waiting do not keep the process alive', async () => {
    const child = run('natural-open')
    expect(await exitOf(child, 60_000), child.describe()).toEqual({ code: 0, signal: null })
    expect(lines(child)).toEqual([{ got: 1 }])
  })

  it('an uncaught exception while a read() is parked ends the process with code 1, not a hang or a signal', async () => {
    const child = run('uncaught-parked')
    expect(await exitOf(child, 60_000), child.describe()).toEqual({ code: 1, signal: null })
    expect(child.stderr).toContain('deliberate uncaught exception')
    expect(lines(child)).toEqual([{ parked: true }])
  })
})

describe('worker threads', () => {
  it('terminating workers parked in read() or readSync() releases their fds and mappings', async () => {
    const child = run('terminate-workers')
    expect(await exitOf(child, 100_000), child.describe()).toEqual({ code: 0, signal: null })
    const [report] = lines(child)
    expect(report.workers).toBe(22)
    expect(report.after).toEqual(report.before)
    expect(report.after.shmMaps).toBe(0)
  })

  // A worker that ends without close() (it returned, threw, or was terminated)
  // cannot use its endpoint again, yet its role stays recorded for this live
  // process: no one, in this process or another, can attach to it until the
  // whole process exits.
  it('a worker that ends without close() does not keep its consumer role', async () => {
    const child = run('worker-role')
    expect(await exitOf(child, 60_000), child.describe()).toEqual({ code: 0, signal: null })
    const [report] = lines(child)
    expect(report.said).toBe('got 5')
    expect(report.code).toBe(0)
    expect(report.reopen).toBe('ok')
  })
})
