// npm run prebuild (and npm pack / npm publish, through prepack): writes
// prebuilds/<platform>-<arch>/shmq.glibc.node with prebuildify, compiled in a
// scratch copy of the native sources. prebuildify runs `node-gyp rebuild` in its
// working directory, which would wipe this checkout's build/ (the addon that
// npm test and npm run bench load).
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const scratch = mkdtempSync(path.join(tmpdir(), 'shmq-prebuild-'))
let status = 1
try {
  for (const entry of ['package.json', 'binding.gyp', 'native']) cpSync(path.join(root, entry), path.join(scratch, entry), { recursive: true })
  // binding.gyp finds node-addon-api's headers through require(), node-gyp through node_modules/.bin
  symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'))
  const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc', '--out', root]
  const result = spawnSync(process.execPath, args, { cwd: scratch, stdio: 'inherit' })
  if (result.error) throw result.error
  status = result.status ?? 1
  if (status !== 0) console.error(`prebuild: prebuildify failed (exit ${result.status}, signal ${result.signal}); its output is above`)
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
process.exitCode = status
