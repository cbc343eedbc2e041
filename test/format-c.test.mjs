// C code generation: `shmq codegen --lang c` of the test schemas compiles with
// gcc -Wall -Wextra -Werror; a C program reads what a Node process wrote
// (Order version 1 and 2 through both versions' accessors, every field type,
// a damaged checksum, a field pointing outside) and writes messages that a
// Node process reads back field for field.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const cases = path.join(root, 'test/fixtures/format-c-cases.cjs')
const { nodeMessages, fromC } = require(cases)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-format-c-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000, ...options })
  expect(result.signal, `${command} ${args.join(' ')}: ${result.stderr}`).toBe(null)
  expect(result.status, `${command} ${args.join(' ')}: ${result.stderr}`).toBe(0)
  return result.stdout
}

describe('format: C codegen', () => {
  const header = path.join(tmp, 'format.h')
  const program = path.join(tmp, 'program')

  it('generates a header that gcc -Wall -Wextra -Werror compiles', () => {
    const text = run(process.execPath, [path.join(root, 'dist/cli.js'), 'codegen', '--lang', 'c', path.join(root, 'test/fixtures/format-schemas.cjs')])
    for (const prefix of ['order_v1', 'order_v2', 'everything_v1', 'tick_v1']) expect(text).toContain(`static inline int ${prefix}_reader_init(`)
    fs.writeFileSync(header, text)
    run('gcc', ['-Wall', '-Wextra', '-Werror', '-std=c11', '-O2', '-I', tmp, '-o', program, path.join(root, 'test/fixtures/format-c-program.c')])
    // the header alone, included twice, pedantic
    fs.writeFileSync(path.join(tmp, 'twice.c'), '#include "format.h"\n#include "format.h"\nint main(void) { return 0; }\n')
    run('gcc', ['-Wall', '-Wextra', '-Werror', '-pedantic', '-std=c99', '-I', tmp, '-o', path.join(tmp, 'twice'), path.join(tmp, 'twice.c')])
  })

  it('a C program reads what a Node process wrote, both versions through both versions\' accessors', () => {
    const file = path.join(tmp, 'from-node.bin')
    expect(JSON.parse(run(process.execPath, [cases, 'write', file]))).toEqual({ written: 6 })
    const lines = run(program, ['read', file]).trim().split('\n')
    expect(lines).toEqual(nodeMessages().flatMap((m) => m.lines))
  })

  it('a Node process reads and verifies what the C program wrote', () => {
    const file = path.join(tmp, 'from-c.bin')
    run(program, ['write', file])
    const seen = JSON.parse(run(process.execPath, [cases, 'verify', file]))
    expect(seen.count).toBe(fromC.length)
    seen.report.forEach((r, i) => {
      expect(r.schema).toBe(fromC[i].schema)
      expect(r.checksum).toBe(fromC[i].checksum)
      expect(r.same, r.got).toBe(true)
    })
  })

  it('codegen refuses a module without schemas, and bad usage', () => {
    const empty = path.join(tmp, 'empty.mjs')
    fs.writeFileSync(empty, 'export const x = 1\n')
    const none = spawnSync(process.execPath, [path.join(root, 'dist/cli.js'), 'codegen', '--lang', 'c', empty], { encoding: 'utf8' })
    expect(none.status).toBe(1)
    expect(none.stderr).toMatch(/exports no schema/)
    const usage = spawnSync(process.execPath, [path.join(root, 'dist/cli.js'), 'codegen', '--lang', 'rust', empty], { encoding: 'utf8' })
    expect(usage.status).toBe(2)
  })
})
