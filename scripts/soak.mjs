#!/usr/bin/env node
// Soak run: the fault-injection and fuzz suites with larger counts.
//
//   node scripts/soak.mjs [--iterations N] [--cases N] [--fault-seed S] [--fuzz-seed S] [--json FILE]
//
// Runs `npx vitest run test/faults.test.mjs test/fuzz.test.mjs` with
// SHMQ_FAULT_ITERATIONS (default 1000) and SHMQ_FUZZ_CASES (default 100000)
// set, streams vitest's output, then prints a summary: counts, seeds (to
// replay a failure), duration, the result of every test, and the machine.
// Exits with vitest's exit code. Run it alone: it keeps both cores busy for
// several minutes (dist/ must be built: npx tsc -p tsconfig.json).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function option(flag, fallback) {
  const index = process.argv.indexOf(flag)
  return index === -1 ? fallback : process.argv[index + 1]
}

const randomSeed = () => String((Math.random() * 0x1_0000_0000) >>> 0 || 1)
const iterations = Number(option('--iterations', process.env.SHMQ_FAULT_ITERATIONS ?? 1000))
const cases = Number(option('--cases', process.env.SHMQ_FUZZ_CASES ?? 100_000))
const faultSeed = option('--fault-seed', process.env.SHMQ_FAULT_SEED ?? randomSeed())
const fuzzSeed = option('--fuzz-seed', process.env.SHMQ_FUZZ_SEED ?? randomSeed())
const jsonFile = option('--json', null)

const scratch = mkdtempSync(path.join(os.tmpdir(), 'shmq-soak-'))
const report = path.join(scratch, 'vitest.json')
const env = {
  ...process.env,
  SHMQ_FAULT_ITERATIONS: String(iterations),
  SHMQ_FUZZ_CASES: String(cases),
  SHMQ_FAULT_SEED: faultSeed,
  SHMQ_FUZZ_SEED: fuzzSeed,
}
const args = [
  'vitest',
  'run',
  'test/faults.test.mjs',
  'test/fuzz.test.mjs',
  // the larger counts take minutes per test
  '--testTimeout=3600000',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
]

console.log(`soak: SHMQ_FAULT_ITERATIONS=${iterations} SHMQ_FUZZ_CASES=${cases} SHMQ_FAULT_SEED=${faultSeed} SHMQ_FUZZ_SEED=${fuzzSeed}`)
const started = new Date()
const startedAt = performance.now()
const child = spawn('npx', args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
let output = ''
child.stdout.on('data', (chunk) => {
  output += chunk
  process.stdout.write(chunk)
})
const exitCode = await new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))))
const seconds = (performance.now() - startedAt) / 1000

let tests = []
try {
  const json = JSON.parse(readFileSync(report, 'utf8'))
  for (const file of json.testResults) {
    for (const test of file.assertionResults) {
      tests.push({
        file: path.relative(root, file.name),
        test: test.fullName ?? test.title,
        status: test.status,
        seconds: Math.round((test.duration ?? 0) / 100) / 10,
        failure: test.failureMessages?.[0]?.split('\n')[0],
      })
    }
  }
} catch (error) {
  tests = [{ file: '-', test: `no vitest report (${error.message})`, status: 'failed', seconds: 0 }]
}
rmSync(scratch, { recursive: true, force: true })

// figures the tests print as they go
const figures = output
  .replace(/\x1b\[[0-9;]*m/g, '')
  .split('\n')
  .filter((line) => /^(producer faults|consumer faults|fuzz):/.test(line.trim()))
  .map((line) => line.trim())

const cpus = os.cpus()
const summary = {
  date: started.toISOString(),
  machine: `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`,
  iterations,
  cases,
  faultSeed,
  fuzzSeed,
  seconds: Math.round(seconds),
  result: exitCode === 0 ? 'passed' : 'failed',
  passed: tests.filter((test) => test.status === 'passed').length,
  failed: tests.filter((test) => test.status === 'failed').length,
  figures,
  tests,
}

console.log('\n=== soak summary ===')
console.log(`date        ${summary.date}`)
console.log(`machine     ${summary.machine}`)
console.log(`faults      ${iterations} deaths per test (SHMQ_FAULT_SEED=${faultSeed})`)
console.log(`fuzz        ${cases} cases in-process (SHMQ_FUZZ_SEED=${fuzzSeed})`)
console.log(`duration    ${summary.seconds} s`)
console.log(`result      ${summary.result}: ${summary.passed} passed, ${summary.failed} failed`)
for (const line of figures) console.log(`  ${line}`)
for (const test of tests) {
  console.log(`  ${test.status === 'passed' ? 'ok  ' : 'FAIL'} ${String(test.seconds).padStart(6)} s  ${test.file}: ${test.test}`)
  if (test.status !== 'passed' && test.failure) console.log(`         ${test.failure}`)
}
if (jsonFile !== null) writeFileSync(jsonFile, `${JSON.stringify(summary, null, 2)}\n`)
process.exitCode = exitCode
