#!/usr/bin/env node
// Soak run: the fault-injection, fuzz and MPSC kill suites with larger counts.
//
//   node scripts/soak.mjs [--iterations N] [--cases N] [--mpsc-kills N] [--wq-kills N]
//                         [--fault-seed S] [--fuzz-seed S] [--mpsc-seed S] [--wq-seed S] [--json FILE]
//
// Runs `npx vitest run test/faults.test.mjs test/fuzz.test.mjs` with
// SHMQ_FAULT_ITERATIONS (default 1000) and SHMQ_FUZZ_CASES (default 100000)
// set, then the MPSC kill test of test/mpsc.test.mjs (producers SIGKILLed at
// random points) with SHMQ_MPSC_KILLS (default 1000), the work queue's kill test
// (test/work-queue.test.mjs) with SHMQ_WQ_KILLS (default 1000), streams vitest's output,
// then prints a summary: counts, seeds (to replay a failure), duration, the
// result of every test, and the machine. Exits with the first failing
// vitest's exit code. Run it alone: it keeps both cores busy for several
// minutes (dist/ must be built: npx tsc -p tsconfig.json).
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
const mpscKills = Number(option('--mpsc-kills', process.env.SHMQ_MPSC_KILLS ?? 1000))
const wqKills = Number(option('--wq-kills', process.env.SHMQ_WQ_KILLS ?? 1000))
const faultSeed = option('--fault-seed', process.env.SHMQ_FAULT_SEED ?? randomSeed())
const fuzzSeed = option('--fuzz-seed', process.env.SHMQ_FUZZ_SEED ?? randomSeed())
const mpscSeed = option('--mpsc-seed', process.env.SHMQ_MPSC_SEED ?? randomSeed())
const wqSeed = option('--wq-seed', process.env.SHMQ_WQ_SEED ?? randomSeed())
const jsonFile = option('--json', null)

const scratch = mkdtempSync(path.join(os.tmpdir(), 'shmq-soak-'))
const env = {
  ...process.env,
  SHMQ_FAULT_ITERATIONS: String(iterations),
  SHMQ_FUZZ_CASES: String(cases),
  SHMQ_MPSC_KILLS: String(mpscKills),
  SHMQ_FAULT_SEED: faultSeed,
  SHMQ_FUZZ_SEED: fuzzSeed,
  SHMQ_MPSC_SEED: mpscSeed,
  SHMQ_WQ_KILLS: String(wqKills),
  SHMQ_WQ_SEED: wqSeed,
}
// each run: test files, and vitest's -t filter of the tests to run in them
const runs = [
  { files: ['test/faults.test.mjs', 'test/fuzz.test.mjs'] },
  // only the kill test: the other MPSC tests have no count to raise
  { files: ['test/mpsc.test.mjs'], filter: 'producers SIGKILLed at random points' },
  // and the work queue's worker deaths
  { files: ['test/work-queue.test.mjs'], filter: 'worker SIGKILLs at random moments' },
]

console.log(
  `soak: SHMQ_FAULT_ITERATIONS=${iterations} SHMQ_FUZZ_CASES=${cases} SHMQ_MPSC_KILLS=${mpscKills} SHMQ_WQ_KILLS=${wqKills} ` +
    `SHMQ_FAULT_SEED=${faultSeed} SHMQ_FUZZ_SEED=${fuzzSeed} SHMQ_MPSC_SEED=${mpscSeed} SHMQ_WQ_SEED=${wqSeed}`,
)
const started = new Date()
const startedAt = performance.now()
let output = ''
let exitCode = 0
const tests = []
for (const [index, run] of runs.entries()) {
  const report = path.join(scratch, `vitest-${index}.json`)
  const args = [
    'vitest',
    'run',
    ...run.files,
    ...(run.filter === undefined ? [] : ['-t', run.filter]),
    // the larger counts take minutes per test
    '--testTimeout=3600000',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
  ]
  const child = spawn('npx', args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  child.stdout.on('data', (chunk) => {
    output += chunk
    process.stdout.write(chunk)
  })
  const code = await new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))))
  if (exitCode === 0) exitCode = code
  try {
    const json = JSON.parse(readFileSync(report, 'utf8'))
    for (const file of json.testResults) {
      for (const test of file.assertionResults) {
        // tests the filter left out are not part of the soak
        if (test.status === 'skipped' || test.status === 'pending') continue
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
    tests.push({ file: run.files.join(' '), test: `no vitest report (${error.message})`, status: 'failed', seconds: 0 })
  }
}
const seconds = (performance.now() - startedAt) / 1000
rmSync(scratch, { recursive: true, force: true })

// figures the tests print as they go
const figures = output
  .replace(/\x1b\[[0-9;]*m/g, '')
  .split('\n')
  .filter((line) => /^(producer faults|consumer faults|fuzz|mpsc kills|work queue, \d+ kills):/.test(line.trim()))
  .map((line) => line.trim())

const cpus = os.cpus()
const summary = {
  date: started.toISOString(),
  machine: `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`,
  iterations,
  cases,
  mpscKills,
  wqKills,
  faultSeed,
  fuzzSeed,
  mpscSeed,
  wqSeed,
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
console.log(`mpsc kills  ${mpscKills} producer deaths (SHMQ_MPSC_SEED=${mpscSeed})`)
console.log(`wq kills    ${wqKills} worker deaths (SHMQ_WQ_SEED=${wqSeed})`)
console.log(`duration    ${summary.seconds} s`)
console.log(`result      ${summary.result}: ${summary.passed} passed, ${summary.failed} failed`)
for (const line of figures) console.log(`  ${line}`)
for (const test of tests) {
  console.log(`  ${test.status === 'passed' ? 'ok  ' : 'FAIL'} ${String(test.seconds).padStart(6)} s  ${test.file}: ${test.test}`)
  if (test.status !== 'passed' && test.failure) console.log(`         ${test.failure}`)
}
if (jsonFile !== null) writeFileSync(jsonFile, `${JSON.stringify(summary, null, 2)}\n`)
process.exitCode = exitCode
