// Turning runs into the markdown table printed by scripts/bench.mjs.

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

export function spread(values) {
  const v = values.filter((x) => Number.isFinite(x))
  return v.length ? [Math.min(...v), Math.max(...v)] : [NaN, NaN]
}

export function fmtRate(msgsPerSec) {
  if (!Number.isFinite(msgsPerSec)) return '—'
  if (msgsPerSec >= 1e6) return `${(msgsPerSec / 1e6).toFixed(msgsPerSec >= 1e8 ? 0 : msgsPerSec >= 1e7 ? 1 : 2)} M`
  if (msgsPerSec >= 1e3) return `${(msgsPerSec / 1e3).toFixed(msgsPerSec >= 1e5 ? 0 : 1)} k`
  return msgsPerSec.toFixed(0)
}

export function fmtGB(gbPerSec) {
  if (!Number.isFinite(gbPerSec)) return '—'
  return gbPerSec >= 10 ? gbPerSec.toFixed(1) : gbPerSec >= 0.1 ? gbPerSec.toFixed(2) : gbPerSec.toFixed(3)
}

export function fmtUs(us) {
  if (!Number.isFinite(us)) return '—'
  return us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us >= 1 ? us.toFixed(2) : us.toFixed(3)
}

export function fmtRatio(x) {
  if (!Number.isFinite(x)) return '—'
  return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`
}

/** Markdown table from a header row and body rows (arrays of cells). */
export function markdownTable(header, rows) {
  const esc = (cell) => String(cell).replace(/\|/g, '\\|')
  const lines = [`| ${header.map(esc).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  for (const row of rows) lines.push(`| ${row.map(esc).join(' | ')} |`)
  return lines.join('\n')
}
