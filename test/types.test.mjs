// The published types: a consumer program type-checks against package.json
// "exports" from both module systems, and the declarations carry the view
// lifetimes in their JSDoc.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

describe('types', () => {
  it('type-checks a program using the documented API, as ESM and as CommonJS', () => {
    const tsc = require.resolve('typescript/bin/tsc')
    const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'test/types/tsconfig.json')], { encoding: 'utf8' })
    expect(result.stdout + result.stderr).toBe('')
    expect(result.status).toBe(0)
  })

  it('documents view lifetimes in the declarations', () => {
    const consumer = readFileSync(path.join(root, 'dist/consumer.d.ts'), 'utf8')
    const jsdocOf = (member) => {
      const at = consumer.indexOf(`    ${member}`)
      expect(at).toBeGreaterThan(0)
      return consumer.slice(consumer.lastIndexOf('/**', at), at)
    }
    expect(jsdocOf('tryRead(')).toMatch(/valid until the next read/)
    expect(jsdocOf('drain(')).toMatch(/valid only during its call/)
    expect(jsdocOf('drainRaw(')).toMatch(/valid only during the call/)
    expect(jsdocOf('[Symbol.asyncIterator]')).toMatch(/valid until the next iteration/)
    const producer = readFileSync(path.join(root, 'dist/producer.d.ts'), 'utf8')
    expect(producer).toMatch(/must not be used after commit\(\) or abort\(\)/)
  })

  it('exports the same objects from the ES module entry as from CommonJS (in a real Node process)', () => {
    const script = `
      import * as esm from 'shmq'
      import { createRequire } from 'node:module'
      const cjs = createRequire(import.meta.url)('shmq')
      const names = (m) => Object.keys(m).filter((key) => key !== 'default' && key !== '__esModule').sort()
      console.log(JSON.stringify({ esm: names(esm), cjs: names(cjs), same: names(cjs).every((name) => esm[name] === cjs[name]), defaultIsCjs: esm.default === cjs }))`
    // run from the package root so that 'shmq' resolves to this package through "exports"
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' })
    expect(result.stderr).toBe('')
    const seen = JSON.parse(result.stdout)
    expect(seen.esm).toEqual(seen.cjs)
    expect(seen.cjs).toEqual(expect.arrayContaining(['Producer', 'Consumer', 'ShmqError', 'unlink']))
    expect(seen.same).toBe(true)
    expect(seen.defaultIsCjs).toBe(true)
  })
})
