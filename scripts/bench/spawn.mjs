// Starting benchmark children and collecting their results (orchestrator side).
//
// runChildren() starts each child in order (a child's `startAfter` line, e.g.
// LISTENING, must appear before the next one starts), waits until every child
// printed READY, writes GO to all of them at once, then collects each one's
// RESULT line. A child that fails, or a run that exceeds its time limit, makes
// the whole run reject; children still running are killed by their own pid.

import { spawn, execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Called with the CPU time (ms) each child reports in its RESULT (`cpuMs`). */
export const accounting = { onChildCpu: (_ms) => {} }

export function benchFile(name) {
  return path.join(here, name)
}

class Child {
  constructor(spec) {
    this.spec = spec
    const argv = [...(spec.nodeArgs ?? []), benchFile(spec.file), spec.role, JSON.stringify(spec.params ?? {})]
    const command = spec.cpus ? 'taskset' : process.execPath
    const commandArgs = spec.cpus ? ['-c', spec.cpus, process.execPath, ...argv] : argv
    this.proc = spawn(command, commandArgs, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.label = `${spec.file} ${spec.role}`
    this.lines = []
    this.stderr = ''
    this.result = undefined
    this.waiters = []
    let buffered = ''
    this.proc.stdout.setEncoding('utf8')
    this.proc.stdout.on('data', (chunk) => {
      buffered += chunk
      let nl
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        this.onLine(line)
      }
    })
    this.proc.stderr.setEncoding('utf8')
    this.proc.stderr.on('data', (chunk) => {
      this.stderr += chunk
      if (this.stderr.length > 20000) this.stderr = this.stderr.slice(-20000)
    })
    this.proc.stdin.on('error', () => {}) // a child that died early: reported through 'exit'
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => resolve({ code, signal }))
      this.proc.once('error', (error) => resolve({ code: -1, signal: null, error }))
    })
  }

  onLine(line) {
    if (line.startsWith('RESULT ')) this.result = JSON.parse(line.slice(7))
    else this.lines.push(line)
    this.waiters = this.waiters.filter((w) => !(line === w.line && (w.resolve(), true)))
  }

  /** Resolves when the child prints `line` (or already did); rejects if it exits first. */
  waitLine(line) {
    if (this.lines.includes(line)) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.waiters.push({ line, resolve })
      this.exited.then(({ code, signal, error }) => reject(this.failure(code, signal, error, `before ${line}`)))
    })
  }

  failure(code, signal, error, when) {
    const tail = this.stderr.trim().split('\n').slice(-8).join('\n')
    return new Error(`${this.label} exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) ${when}${tail ? `:\n${tail}` : ''}`)
  }

  go() {
    this.proc.stdin.end('GO\n')
  }

  async finish() {
    const { code, signal, error } = await this.exited
    if (code !== 0 || this.result === undefined) throw this.failure(code, signal, error, this.result === undefined ? 'without a RESULT' : 'after its RESULT')
    accounting.onChildCpu(this.result.cpuMs)
    return this.result
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL')
  }
}

/** Runs one measurement made of `specs` children; resolves to their RESULT objects in order. */
export async function runChildren(specs, timeoutMs) {
  const children = []
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${specs.map((s) => `${s.file} ${s.role}`).join(' + ')}`)), timeoutMs)
  })
  try {
    const work = (async () => {
      for (const spec of specs) {
        const child = new Child(spec)
        children.push(child)
        await child.waitLine(spec.startAfter ?? 'READY')
      }
      await Promise.all(children.map((c) => c.waitLine('READY')))
      for (const child of children) child.go()
      return Promise.all(children.map((c) => c.finish()))
    })()
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
    for (const child of children) child.kill()
  }
}

/** Runs a program to completion; resolves to its stdout. */
export function runProgram(file, argv, timeoutMs) {
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `timed out after ${timeoutMs} ms` : error.message
        reject(new Error(`${path.basename(file)} ${argv.join(' ')}: ${why}${stderr ? `\n${stderr.trim()}` : ''}`))
      }
      else resolve(stdout)
    })
  })
}
