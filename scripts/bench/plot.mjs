// Line charts as plain SVG strings, for the benchmark report (scripts/bench.mjs --report).
// No browser, no dependency: axes, ticks, log gridlines, one <path> per series
// with a marker per point, and a legend. Used by scripts/bench/markdown.mjs.
//
// lineChart({ title, x, y, series, width?, height? })
//   x: { scale: 'log', label, ticks: [{ value, label }], min?, max?, minor?: number[] }
//      or { scale: 'category', label, categories: [label, ...] }  (point x = category index)
//   y: { scale: 'log', label, format?: (value) => string }  (decade ticks, 2..9 minor gridlines;
//      the range is the data's, widened to whole decades)
//   series: [{ label, points: [{ x, y }], color?, dash? }]  (non-finite or non-positive y: a gap)

const PALETTE = ['#1f77b4', '#2ca02c', '#17becf', '#ff7f0e', '#d62728', '#9467bd', '#7f7f7f', '#8c564b', '#e377c2', '#bcbd22']

/** Text for an SVG text node or attribute. */
export function escapeXml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c])
}

/** 64 → "64 B", 1024 → "1 KiB", 1048576 → "1 MiB". */
export function fmtBytes(n) {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`
  return `${n} B`
}

/** A decade tick label: 0.01, 0.1, 1, 10, 100, 1k, 10k, 100k, 1M, ... */
export function fmtDecade(v) {
  if (v >= 1e9) return `${v / 1e9}G`
  if (v >= 1e6) return `${v / 1e6}M`
  if (v >= 1e3) return `${v / 1e3}k`
  return String(Number(v.toPrecision(3)))
}

/** Whole decades covering [lo, hi] (both > 0): [10^a, 10^(a+1), ..., 10^b]. */
export function decades(lo, hi) {
  let a = Math.floor(Math.log10(lo) + 1e-9)
  let b = Math.ceil(Math.log10(hi) - 1e-9)
  if (b <= a) b = a + 1
  const out = []
  for (let e = a; e <= b; e++) out.push(Number((10 ** e).toPrecision(12)))
  return out
}

const r = (v) => Number(v.toFixed(2))

export function lineChart({ title, x, y, series, width = 820, height = 460 }) {
  const legendWidth = 270
  const m = { left: 78, right: legendWidth + 20, top: 44, bottom: 62 }
  const pw = width - m.left - m.right
  const ph = height - m.top - m.bottom
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((v) => Number.isFinite(v) && v > 0)
  const yTicks = ys.length ? decades(Math.min(...ys), Math.max(...ys)) : [1, 10]
  const [y0, y1] = [Math.log10(yTicks[0]), Math.log10(yTicks.at(-1))]
  const py = (v) => m.top + ph - ((Math.log10(v) - y0) / (y1 - y0)) * ph
  let px
  if (x.scale === 'log') {
    const lo = Math.log10(x.min ?? x.ticks[0].value)
    const hi = Math.log10(x.max ?? x.ticks.at(-1).value)
    px = (v) => m.left + ((Math.log10(v) - lo) / (hi - lo)) * pw
  } else {
    const n = x.categories.length
    px = (i) => m.left + ((i + 0.5) / n) * pw
  }
  const yFormat = y.format ?? fmtDecade
  const out = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text class="title" x="${r(m.left + pw / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  )
  // gridlines: y decades (and 2..9 between them), x ticks (and x.minor)
  out.push('<g class="grid" fill="none">')
  for (let i = 0; i < yTicks.length; i++) {
    const d = yTicks[i]
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${r(py(d))}" y2="${r(py(d))}" stroke="#cccccc"/>`)
    if (i + 1 < yTicks.length) for (let k = 2; k <= 9; k++) out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${r(py(d * k))}" y2="${r(py(d * k))}" stroke="#eeeeee"/>`)
  }
  const xTickList = x.scale === 'log' ? x.ticks : x.categories.map((label, i) => ({ value: i, label }))
  for (const v of x.minor ?? []) out.push(`<line x1="${r(px(v))}" x2="${r(px(v))}" y1="${m.top}" y2="${m.top + ph}" stroke="#eeeeee"/>`)
  for (const t of xTickList) out.push(`<line x1="${r(px(t.value))}" x2="${r(px(t.value))}" y1="${m.top}" y2="${m.top + ph}" stroke="#cccccc"/>`)
  out.push('</g>')
  // axes, ticks, labels
  out.push(
    `<g class="axes" stroke="#000000" fill="none">`,
    `<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}"/>`,
    `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}"/>`,
    '</g>',
  )
  out.push('<g class="x-ticks" text-anchor="middle">')
  for (const t of xTickList) {
    const tx = r(px(t.value))
    out.push(`<line x1="${tx}" x2="${tx}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#000000"/>`, `<text class="x-tick" x="${tx}" y="${m.top + ph + 19}">${escapeXml(t.label)}</text>`)
  }
  out.push('</g>', '<g class="y-ticks" text-anchor="end">')
  for (const d of yTicks) {
    const ty = r(py(d))
    out.push(`<line x1="${m.left - 5}" x2="${m.left}" y1="${ty}" y2="${ty}" stroke="#000000"/>`, `<text class="y-tick" x="${m.left - 8}" y="${r(ty + 4)}">${escapeXml(yFormat(d))}</text>`)
  }
  out.push('</g>')
  out.push(
    `<text class="x-label" x="${r(m.left + pw / 2)}" y="${height - 16}" text-anchor="middle">${escapeXml(x.label)}</text>`,
    `<text class="y-label" x="18" y="${r(m.top + ph / 2)}" text-anchor="middle" transform="rotate(-90 18 ${r(m.top + ph / 2)})">${escapeXml(y.label)}</text>`,
  )
  // series: one path each (a gap where a point is missing), a marker per point
  out.push('<g class="series">')
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : ''
    let d = ''
    let pen = false
    const marks = []
    for (const p of s.points) {
      if (!(Number.isFinite(p.y) && p.y > 0)) {
        pen = false
        continue
      }
      const [cx, cy] = [r(px(p.x)), r(py(p.y))]
      d += `${pen ? 'L' : 'M'}${cx} ${cy} `
      pen = true
      marks.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${color}"><title>${escapeXml(`${s.label}: ${p.title ?? p.y}`)}</title></circle>`)
    }
    out.push(`<g class="line" data-series="${escapeXml(s.label)}">`)
    out.push(`<path d="${d.trim() || `M${m.left} ${m.top}`}" fill="none" stroke="${color}" stroke-width="2"${dash}${d ? '' : ' visibility="hidden"'}/>`)
    out.push(...marks, '</g>')
  })
  out.push('</g>')
  // legend, right of the plot
  const lx = m.left + pw + 20
  out.push(`<g class="legend">`)
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : ''
    const ly = m.top + 8 + i * 22
    const missing = !s.points.some((p) => Number.isFinite(p.y) && p.y > 0)
    out.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<circle cx="${lx + 13}" cy="${ly}" r="3.5" fill="${color}"/>`,
      `<text class="legend-label" x="${lx + 34}" y="${ly + 4}">${escapeXml(s.label + (missing ? ' (not measured)' : ''))}</text>`,
    )
  })
  out.push('</g>', '</svg>')
  return `${out.join('\n')}\n`
}
