// What a user gets from npm: `npm pack` in a fresh checkout (no prebuilds/, no
// dist/) builds the prebuilt addon and the JavaScript itself and leaves the local
// build alone; the tarball holds exactly what is needed, installs on a machine
// without a compiler (the prebuilt addon is used), and works from both
// require('shmq') and import 'shmq'; without the prebuild, the install compiles
// from source and works too. And package-lock.json is what npm would write.
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const work = mkdtempSync(path.join(tmpdir(), 'shmq-package-'))
const npmCli = findNpmCli()
let tarball
let packedFiles
/** The copy of the checkout that was packed, and what its local build looked like before. */
let checkout
let localBuild

function findNpmCli() {
  if (process.env.npm_execpath && existsSync(process.env.npm_execpath)) return process.env.npm_execpath
  const npm = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()
  return realpathSync(npm)
}

function npm(args, options = {}) {
  return execFileSync(process.execPath, [npmCli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options })
}

function run(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

// A two-process round trip: the CommonJS side sends numbered messages on one
// channel, the ES module side echoes them back on another; the sender checks
// every echo. Then the roles of the module systems swap.
const pinger = (load) => `${load}
const name = process.argv[2]
const count = 2000
const requests = Producer.create(name + '-req', { capacity: 4096 })
const replies = Consumer.create(name + '-rep', { capacity: 4096 })
;(async () => {
  const echo = spawnEcho()
  for (let i = 0; i < count; i++) {
    const message = new Uint8Array(8 + (i % 200))
    new DataView(message.buffer).setUint32(0, i, true)
    message.fill(i & 255, 8)
    await requests.write(message)
    const reply = await replies.read()
    if (reply === null || reply.length !== message.length || new DataView(reply.buffer, reply.byteOffset).getUint32(0, true) !== i || reply.some((b, k) => k >= 8 && b !== (i & 255))) {
      throw new Error('bad echo ' + i)
    }
  }
  requests.close()
  if ((await replies.read()) !== null) throw new Error('echo did not end its stream')
  replies.close()
  unlink(name + '-req'); unlink(name + '-rep')
  const exit = await echo
  console.log(JSON.stringify({ echoed: count, echoExit: exit }))
})().catch((error) => { console.error(error); process.exit(1) })
function spawnEcho() {
  const child = require('node:child_process').spawn(process.execPath, [process.argv[3], name], { stdio: 'inherit' })
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
}`

const echoer = (load) => `${load}
const name = process.argv[2]
const requests = Consumer.open(name + '-req', { timeout: 10000 })
const replies = Producer.open(name + '-rep', { timeout: 10000 })
;(async () => {
  for await (const message of requests) await replies.write(message)
  replies.close()
  requests.close()
})().catch((error) => { console.error(error); process.exit(1) })`

const REQUIRE = `const { Producer, Consumer, unlink } = require('shmq')`
const IMPORT = `import { Producer, Consumer, unlink } from 'shmq'\nimport { createRequire } from 'node:module'\nconst require = createRequire(import.meta.url)`

function makeApp(name) {
  const app = path.join(work, name)
  mkdirSync(app)
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  writeFileSync(path.join(app, 'ping.cjs'), pinger(REQUIRE))
  writeFileSync(path.join(app, 'echo.mjs'), echoer(IMPORT))
  writeFileSync(path.join(app, 'ping.mjs'), pinger(IMPORT))
  writeFileSync(path.join(app, 'echo.cjs'), echoer(REQUIRE))
  return app
}

async function roundTrips(app) {
  for (const [ping, echo] of [['ping.cjs', 'echo.mjs'], ['ping.mjs', 'echo.cjs']]) {
    const name = `pkg-${process.pid}-${path.basename(app)}-${ping.replace('.', '')}`
    const result = await run(process.execPath, [ping, name, echo], { cwd: app })
    expect(result.stderr).toBe('')
    expect({ code: result.code, signal: result.signal }).toEqual({ code: 0, signal: null })
    expect(JSON.parse(result.stdout)).toEqual({ echoed: 2000, echoExit: { code: 0, signal: null } })
  }
}

/** The addon this checkout loads (what npm install built), as `npm test` and `npm run bench` find it. */
function builtAddon(dir) {
  return require('node-gyp-build').resolve(dir)
}

beforeAll(() => {
  // a fresh clone, with this working tree's edits: the files git tracks or would
  // track, so none of the ignored prebuilds/, dist/, build/ or *.tgz
  checkout = path.join(work, 'checkout')
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  for (const file of listed.split('\0')) {
    if (file === '' || !existsSync(path.join(root, file))) continue // deleted in the working tree
    mkdirSync(path.dirname(path.join(checkout, file)), { recursive: true })
    copyFileSync(path.join(root, file), path.join(checkout, file))
  }
  symlinkSync(path.join(root, 'node_modules'), path.join(checkout, 'node_modules'))
  // what `npm ci` leaves in a clone: the addon compiled into build/Release
  const addon = path.join(checkout, 'build', 'Release', 'shmq.node')
  mkdirSync(path.dirname(addon), { recursive: true })
  copyFileSync(builtAddon(root), addon)
  const before = statSync(addon)
  localBuild = { path: addon, ino: before.ino, mtimeMs: before.mtimeMs, bytes: readFileSync(addon) }
  expect(existsSync(path.join(checkout, 'prebuilds'))).toBe(false)
  expect(existsSync(path.join(checkout, 'dist'))).toBe(false)
  // prepack builds the prebuild and dist/; the tarball's name is the last line npm prints
  const output = npm(['pack', '--pack-destination', work], { cwd: checkout })
  tarball = path.join(work, output.trim().split('\n').at(-1))
  packedFiles = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line !== '' && !line.endsWith('/'))
    .map((line) => line.replace(/^package\//, ''))
    .sort()
}, 300_000)

afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('npm package', () => {
  it('is packed with a prebuild and dist/ by npm pack alone, leaving the local build in place and loadable', () => {
    expect(packedFiles.filter((file) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(file))).toEqual(['prebuilds/linux-x64/shmq.glibc.node'])
    expect(packedFiles).toContain('dist/index.js')
    // the checkout's build/Release/shmq.node is the same file, untouched, and still the one loaded
    const after = statSync(localBuild.path)
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: localBuild.ino, mtimeMs: localBuild.mtimeMs })
    expect(readFileSync(localBuild.path).equals(localBuild.bytes)).toBe(true)
    expect(builtAddon(checkout)).toBe(localBuild.path)
    const loaded = execFileSync(process.execPath, ['-e', `const { Producer, unlink } = require('./dist/index.js'); const name = 'pkg-load-' + process.pid; Producer.create(name, { capacity: 4096 }).close(); unlink(name); console.log('ok')`], { cwd: checkout, encoding: 'utf8' })
    expect(loaded.trim()).toBe('ok')
  })

  it('has a package-lock.json that npm install would not change (npm ci accepts a stale one)', () => {
    const dir = path.join(work, 'lock')
    mkdirSync(dir)
    for (const file of ['package.json', 'package-lock.json']) copyFileSync(path.join(root, file), path.join(dir, file))
    npm(['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir })
    expect(readFileSync(path.join(dir, 'package-lock.json'), 'utf8'), 'package-lock.json is stale: run npm install --package-lock-only').toBe(readFileSync(path.join(root, 'package-lock.json'), 'utf8'))
  })

  it('holds the compiled JS, types, prebuild, native sources and docs, and nothing else', () => {
    for (const needed of [
      'package.json', 'README.md', 'LICENSE', 'binding.gyp',
      'dist/index.js', 'dist/index.d.ts', 'dist/consumer.d.ts', 'dist/producer.d.ts',
      'esm/index.mjs', 'esm/index.d.mts',
      'native/addon.cc', 'native/segment.cc', 'native/doorbell.h',
      'prebuilds/linux-x64/shmq.glibc.node', 'docs/LAYOUT.md',
    ]) {
      expect(packedFiles).toContain(needed)
    }
    const allowed = /^(package\.json|README\.md|LICENSE|binding\.gyp|dist\/([\w-]+\/)*[\w.-]+\.(js|d\.ts)|esm\/index\.(mjs|d\.mts)|native\/[\w-]+\.(cc|h)|prebuilds\/linux-x64\/shmq\.glibc\.node|docs\/[\w-]+\.md)$/
    expect(packedFiles.filter((file) => !allowed.test(file))).toEqual([])
  })

  it('installs without a compiler, using the prebuilt addon, and works from require and import', async () => {
    const app = makeApp('no-compiler')
    // a PATH with node and nothing else: no cc, g++, make or python to build with
    const bin = path.join(work, 'bin-node-only')
    mkdirSync(bin)
    symlinkSync(process.execPath, path.join(bin, 'node'))
    symlinkSync('/bin/sh', path.join(bin, 'sh')) // npm runs install scripts with sh
    const env = { ...process.env, PATH: bin, npm_config_build_from_source: 'false', CC: '', CXX: '' }
    for (const tool of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3']) {
      const found = await run('/bin/sh', ['-c', `command -v ${tool}`], { env })
      expect(found.code).not.toBe(0)
    }
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, env })
    const installed = path.join(app, 'node_modules', 'shmq')
    // nothing was compiled: node-gyp would have left build/
    expect(existsSync(path.join(installed, 'build'))).toBe(false)
    expect(readdirSync(path.join(installed, 'prebuilds', 'linux-x64'))).toEqual(['shmq.glibc.node'])
    await roundTrips(app)
  }, 300_000)

  it('compiles from source when no prebuild is shipped, and works', async () => {
    // the same tarball without prebuilds/
    const unpacked = path.join(work, 'unpacked')
    mkdirSync(unpacked)
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked])
    rmSync(path.join(unpacked, 'package', 'prebuilds'), { recursive: true, force: true })
    const packed = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: path.join(unpacked, 'package') }))
    const sourceOnly = path.join(work, 'source-only.tgz')
    execFileSync('mv', [path.join(work, packed[0].filename), sourceOnly])
    const app = makeApp('from-source')
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', sourceOnly], { cwd: app })
    const installed = path.join(app, 'node_modules', 'shmq')
    expect(existsSync(path.join(installed, 'prebuilds'))).toBe(false)
    expect(existsSync(path.join(installed, 'build', 'Release', 'shmq.node'))).toBe(true)
    await roundTrips(app)
  }, 300_000)
})
