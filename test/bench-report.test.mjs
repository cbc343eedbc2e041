// The benchmark report's plots and markdown (scripts/bench/plot.mjs, markdown.mjs),
// on fixed sample data: no benchmark runs here.

import { describe, it, expect } from 'vitest'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { lineChart, escapeXml, fmtBytes, decades } from '../scripts/bench/plot.mjs'
import { throughputChart, latencyChart, rpcLatencyChart, renderMarkdown, machineDescription, writeReport } from '../scripts/bench/markdown.mjs'
import { SWEEP_SIZES, sweepId } from '../scripts/bench/sweep.mjs'
import { markdownTable } from '../scripts/bench/report.mjs'

/**
 * A strict well-formedness check (no XML parser in Node core): one root element,
 * every tag closed in order, attributes quoted and unique, no raw '<' or stray '&'
 * in text or attribute values. Returns the elements as { name, attrs, text } in
 * document order (text: the character data directly inside, entities decoded).
 */
function parseXml(source) {
  const elements = []
  const stack = []
  let roots = 0
  let i = 0
  const NAME = /^[A-Za-z_][\w.:-]*/
  const checkText = (text, where) => {
    if (text.includes('<')) throw new Error(`raw '<' in ${where}`)
    for (const m of text.matchAll(/&/g)) {
      if (!/^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/.test(text.slice(m.index))) throw new Error(`stray '&' in ${where}: ${text.slice(m.index, m.index + 12)}`)
    }
  }
  const decode = (t) => t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
  while (i < source.length) {
    const lt = source.indexOf('<', i)
    const text = source.slice(i, lt < 0 ? source.length : lt)
    if (text.trim()) {
      if (!stack.length) throw new Error(`text outside the root: ${text.trim().slice(0, 20)}`)
      checkText(text, `text of <${stack.at(-1).name}>`)
      stack.at(-1).text += decode(text)
    }
    if (lt < 0) break
    if (source.startsWith('<?', lt)) {
      if (lt !== 0) throw new Error('XML declaration not at the start')
      i = source.indexOf('?>', lt) + 2
      continue
    }
    if (source.startsWith('<!--', lt)) {
      const end = source.indexOf('-->', lt)
      if (end < 0) throw new Error('unclosed comment')
      i = end + 3
      continue
    }
    const gt = source.indexOf('>', lt)
    if (gt < 0) throw new Error('unclosed tag')
    const body = source.slice(lt + 1, gt)
    i = gt + 1
    if (body.startsWith('/')) {
      const name = body.slice(1).trim()
      const open = stack.pop()
      if (!open || open.name !== name) throw new Error(`</${name}> closes <${open?.name}>`)
      continue
    }
    const selfClosing = body.endsWith('/')
    let rest = selfClosing ? body.slice(0, -1) : body
    const name = rest.match(NAME)?.[0]
    if (!name) throw new Error(`bad tag <${body.slice(0, 20)}>`)
    rest = rest.slice(name.length)
    const attrs = {}
    for (;;) {
      const m = rest.match(/^\s+([A-Za-z_][\w.:-]*)="([^"]*)"/)
      if (!m) break
      if (m[1] in attrs) throw new Error(`duplicate attribute ${m[1]} on <${name}>`)
      checkText(m[2], `attribute ${m[1]} of <${name}>`)
      attrs[m[1]] = decode(m[2])
      rest = rest.slice(m[0].length)
    }
    if (rest.trim()) throw new Error(`bad attributes on <${name}>: ${rest.trim().slice(0, 30)}`)
    if (!stack.length && roots++) throw new Error('more than one root element')
    const element = { name, attrs, text: '', parent: stack.at(-1) ?? null }
    elements.push(element)
    if (!selfClosing) stack.push(element)
  }
  if (stack.length) throw new Error(`unclosed <${stack.at(-1).name}>`)
  if (roots !== 1) throw new Error('no root element')
  return elements
}

const within = (el, test) => {
  for (let p = el.parent; p; p = p.parent) if (test(p)) return true
  return false
}
const texts = (elements, cls) => elements.filter((e) => e.name === 'text' && e.attrs.class === cls).map((e) => e.text)
/** The series paths: one <path> inside each <g class="line" data-series="label">. */
const seriesPaths = (elements) => elements.filter((e) => e.name === 'path' && within(e, (p) => p.attrs.class === 'series'))
const seriesLabels = (elements) => elements.filter((e) => e.name === 'g' && e.attrs.class === 'line').map((e) => e.attrs['data-series'])

// ---- fixed sample data, shaped like scripts/bench.mjs's results ----

function sampleRun() {
  const rows = []
  const results = {}
  const add = (rowId, systemId, samples) => {
    if (!results[rowId]) {
      rows.push({ id: rowId })
      results[rowId] = {}
    }
    results[rowId][systemId] = { samples, errors: [] }
  }
  const gb = { shmq: 8, ipc: 0.4, unix: 2, c: 12 }
  for (const size of SWEEP_SIZES) {
    for (const [system, top] of Object.entries(gb)) {
      const g = top * Math.min(1, size / 16384)
      // two runs: the chart shows their median
      add(sweepId(size), system, [
        { gbPerSec: g * 0.9, msgsPerSec: (g * 0.9 * 1e9) / size },
        { gbPerSec: g * 1.1, msgsPerSec: (g * 1.1 * 1e9) / size },
      ])
    }
  }
  const rtt = (m, withP90 = true) => [{ medianUs: m, ...(withP90 ? { p90Us: m * 1.5, p999Us: m * 9 } : {}), p99Us: m * 3 }]
  add('parked', 'shmq', rtt(7))
  add('parked', 'ipc', rtt(45))
  add('parked', 'unix', rtt(22))
  add('parked', 'c-eventfd', rtt(6, false))
  add('parked', 'c-futex', rtt(6.5, false))
  add('spin', 'shmq', rtt(0.3))
  add('spin', 'unix', rtt(4))
  add('spin', 'c', rtt(0.2, false))
  add('async', 'shmq', rtt(0.45))
  for (const [system, m] of [['shmq', 2], ['shmq-parked', 12], ['unix', 25], ['http', 110], ['ipc', 60]]) add('rpc-rtt', system, rtt(m))
  return { rows, results }
}

describe('plot.mjs', () => {
  it('escapes text for XML', () => {
    expect(escapeXml(`a<b & "c" 'd'>`)).toBe('a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;')
  })

  it('formats sizes and decades', () => {
    expect(SWEEP_SIZES.map(fmtBytes)).toEqual(['64 B', '1 KiB', '16 KiB', '64 KiB', '256 KiB', '1 MiB'])
    expect(decades(3, 4200)).toEqual([1, 10, 100, 1000, 10000])
    expect(decades(0.15, 0.9)).toEqual([0.1, 1])
  })

  it('draws a gap for a missing point and still parses', () => {
    const svg = lineChart({
      title: 'A & B <test>',
      x: { scale: 'category', label: 'x', categories: ['a', 'b', 'c'] },
      y: { scale: 'log', label: 'y' },
      series: [
        { label: 'one', points: [{ x: 0, y: 1 }, { x: 1, y: NaN }, { x: 2, y: 100 }] },
        { label: 'none', points: [{ x: 0, y: NaN }] },
      ],
    })
    const elements = parseXml(svg)
    const [one, none] = seriesPaths(elements)
    expect(one.attrs.d.match(/M/g)).toHaveLength(2) // two pieces
    expect(none.attrs.visibility).toBe('hidden')
    expect(texts(elements, 'legend-label')).toEqual(['one', 'none (not measured)'])
    expect(texts(elements, 'title')).toEqual(['A & B <test>'])
  })

  it('rejects malformed XML in the checker itself', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow()
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow()
    expect(() => parseXml('<svg a="1" a="2"/>')).toThrow()
    expect(() => parseXml('<svg/><svg/>')).toThrow()
  })
})

describe('throughput by message size', () => {
  const { rows, results } = sampleRun()
  const chart = throughputChart(rows, results)
  const elements = parseXml(chart.svg)

  it('is an SVG document', () => {
    expect(elements[0].name).toBe('svg')
    expect(elements[0].attrs.xmlns).toBe('http://www.w3.org/2000/svg')
  })

  it('has one path per system, with legend labels', () => {
    const labels = ['shmq (tryWrite → drain)', 'process.send (child_process IPC)', 'Unix socket (net)', 'C ring (scripts/ring.c)']
    expect(seriesLabels(elements)).toEqual(labels)
    expect(texts(elements, 'legend-label')).toEqual(labels)
    const paths = seriesPaths(elements)
    expect(paths).toHaveLength(4)
    for (const p of paths) expect(p.attrs.d.match(/[ML]/g)).toHaveLength(SWEEP_SIZES.length) // one unbroken line through 6 points
  })

  it('labels both axes', () => {
    expect(texts(elements, 'x-label')).toEqual(['message size (bytes, log scale)'])
    expect(texts(elements, 'y-label')[0]).toMatch(/^throughput, MB\/s/)
  })

  it('has log ticks at the sizes, evenly spaced per factor', () => {
    const ticks = elements.filter((e) => e.name === 'text' && e.attrs.class === 'x-tick')
    expect(ticks.map((t) => t.text)).toEqual(['64 B', '1 KiB', '16 KiB', '64 KiB', '256 KiB', '1 MiB'])
    const xs = ticks.map((t) => Number(t.attrs.x))
    // log scale: ×16 (64 B → 1 KiB → 16 KiB) is twice the distance of ×4 (16 KiB → 64 KiB → ...)
    const step4 = xs[3] - xs[2]
    expect(xs[1] - xs[0]).toBeCloseTo(2 * step4, 0)
    expect(xs[2] - xs[1]).toBeCloseTo(2 * step4, 0)
    expect(xs[4] - xs[3]).toBeCloseTo(step4, 0)
    expect(xs[5] - xs[4]).toBeCloseTo(step4, 0)
    // y: decades covering the data (0.4 GB/s × 64/16384 ≈ 1.6 MB/s up to 13.2 GB/s = 13200 MB/s)
    expect(texts(elements, 'y-tick')).toEqual(['1', '10', '100', '1k', '10k', '100k'])
  })

  it('plots the median of the runs, in MB/s', () => {
    const shmq = chart.series.find((s) => s.system === 'shmq')
    expect(shmq.points.map((p) => p.x)).toEqual(SWEEP_SIZES)
    expect(shmq.points.at(-1).y).toBeCloseTo(8000, 6)
  })

  it('is null when no sweep row ran', () => {
    expect(throughputChart([{ id: 'tp64' }], { tp64: {} })).toBeNull()
  })
})

describe('latency percentiles', () => {
  const { rows, results } = sampleRun()

  it('round trips: one path per system, p50/p90/p99/p99.9, notes what a row lacks', () => {
    const chart = latencyChart(rows, results)
    const elements = parseXml(chart.svg)
    const labels = seriesLabels(elements)
    expect(labels).toHaveLength(9)
    expect(labels).toEqual(expect.arrayContaining(['shmq, spinning (tryWrite/tryRead)', 'shmq, parked (spin: 0)', 'Unix socket, event loop', 'process.send', 'C ring, spinning']))
    expect(texts(elements, 'legend-label')).toEqual(labels)
    expect(seriesPaths(elements)).toHaveLength(9)
    expect(texts(elements, 'x-tick')).toEqual(['p50', 'p90', 'p99', 'p99.9'])
    expect(texts(elements, 'y-label')[0]).toMatch(/µs/)
    expect(texts(elements, 'x-label')[0]).toMatch(/percentile/)
    // 0.2 µs … 405 µs: decades 0.1 … 1000
    expect(texts(elements, 'y-tick')).toEqual(['0.1', '1', '10', '100', '1k'])
    expect(chart.sentence).toMatch(/C ring, spinning: no p90\/p99\.9/)
  })

  it('request/response: the rpc-rtt systems', () => {
    const chart = rpcLatencyChart(rows, results)
    const elements = parseXml(chart.svg)
    expect(seriesLabels(elements)).toEqual(['shmq Server/Client (default)', 'shmq Server/Client, spin: 0', 'Unix socket (net, pipelined)', 'node:http (Unix socket)', 'process.send'])
    expect(seriesPaths(elements)).toHaveLength(5)
    expect(chart.sentence).not.toMatch(/Missing/)
  })
})

describe('markdown report', () => {
  const table = markdownTable(['measurement', 'system', 'median'], [['size sweep 1 KiB', 'shmq', '**5.00 M msgs/s**']])
  const machine = { line: '2× Test CPU (2 logical cores), 8.0 GiB RAM, Linux 6.1 (x64), Node v20.0.0' }
  const date = new Date('2026-01-02T03:04:05Z')

  it('has the table, the machine line, the date and the image links', () => {
    const md = renderMarkdown({
      text: `### shmq benchmark\n\n${table}\n`,
      machine,
      date,
      command: 'node scripts/bench.mjs --report docs/benchmarks.md',
      quick: false,
      plots: [
        { file: 'bench-throughput.svg', alt: 'Throughput by message size', sentence: 'Throughput, by size.' },
        { file: 'bench-latency.svg', alt: 'Round-trip latency percentiles', sentence: 'Latency.' },
      ],
    })
    expect(md).toContain(table)
    expect(md).toContain(`Machine: ${machine.line}.`)
    expect(md).toContain('Date: 2026-01-02 03:04 UTC.')
    expect(md).toContain('![Throughput by message size](bench-throughput.svg)')
    expect(md).toContain('![Round-trip latency percentiles](bench-latency.svg)')
    expect(md).toContain('Throughput, by size. ([SVG](bench-throughput.svg))')
    expect(md).toContain('`node scripts/bench.mjs --report docs/benchmarks.md`')
  })

  it('describes this machine', () => {
    const m = machineDescription()
    expect(m.cores).toBeGreaterThan(0)
    expect(m.line).toContain(process.version)
    expect(m.line).toMatch(/GiB RAM/)
    expect(m.line).toContain(os.release())
  })

  it('writes the report and the SVGs next to it, linked by relative paths', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-report-'))
    try {
      const { rows, results } = sampleRun()
      const file = path.join(dir, 'docs', 'benchmarks.md')
      const written = writeReport({ file, text: table, rows, results, quick: true, command: 'node scripts/bench.mjs --quick --report docs/benchmarks.md', date })
      expect(written.map((f) => path.basename(f))).toEqual(['benchmarks.md', 'bench-throughput.svg', 'bench-latency.svg', 'bench-rpc-latency.svg'])
      const md = fs.readFileSync(file, 'utf8')
      for (const name of ['bench-throughput.svg', 'bench-latency.svg', 'bench-rpc-latency.svg']) {
        expect(md).toContain(`](${name})`)
        parseXml(fs.readFileSync(path.join(dir, 'docs', name), 'utf8'))
      }
      expect(md).toContain(table)
      expect(md).toMatch(/QUICK mode/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says which plots a partial run (--only) could not draw', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmq-report-'))
    try {
      const file = path.join(dir, 'r.md')
      const written = writeReport({ file, text: table, rows: [{ id: 'tp64' }], results: { tp64: {} }, quick: true, command: 'x', date })
      expect(written).toEqual([file])
      expect(fs.readFileSync(file, 'utf8')).toMatch(/Throughput by message size: not measured in this run/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
