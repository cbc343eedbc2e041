/**
 * The schema-compatibility check, for CI: a newer version of a schema may only
 * append fields (with a `since` above the older version), never change,
 * move, rename or remove one, so that each version reads the other's messages.
 */
import { formatError } from './errors'
import type { FieldLayout, StructLayout } from './layout'
import type { SchemaInfo } from './message'

function describeStruct(struct: StructLayout): string {
  return `{${struct.fields.map((f) => `${f.name}@${f.offset}:${describe(f)}`).join(',')}}/${struct.size}`
}

/** Everything about a field that a reader depends on, as one comparable string. */
function describe(field: FieldLayout): string {
  switch (field.kind) {
    case 'scalar':
      return field.asNumber ? `${field.scalar}(number)` : field.scalar!
    case 'char':
      return `char[${field.max}]`
    case 'enum':
      return `enum<${field.scalar}>`
    case 'struct':
      return `struct${describeStruct(field.struct!)}`
    case 'array':
      return `array${describeStruct(field.struct!)}`
    default:
      return field.kind
  }
}

/** The reasons `newer` cannot follow `older`; empty when it can. */
export function compatibilityProblems(older: SchemaInfo, newer: SchemaInfo): string[] {
  const a = older.layout
  const b = newer.layout
  const problems: string[] = []
  if (a.id !== b.id) problems.push(`schema ids differ (${a.id} and ${b.id}): they are different schemas`)
  if (b.version <= a.version) problems.push(`version ${b.version} does not follow version ${a.version}`)
  const byName = new Map(b.fields.map((f) => [f.name, f]))
  for (const f of a.fields) {
    const g = byName.get(f.name)
    if (g === undefined) {
      problems.push(`field '${f.name}' was removed (keep it; stop writing meaningful values to it instead)`)
      continue
    }
    if (describe(f) !== describe(g)) problems.push(`field '${f.name}' changed type from ${describe(f)} to ${describe(g)}`)
    else if (f.offset !== g.offset) problems.push(`field '${f.name}' moved from offset ${f.offset} to ${g.offset} (fields may only be appended)`)
    if (f.since !== g.since) problems.push(`field '${f.name}' changed since from ${f.since} to ${g.since}`)
    if (f.optional !== g.optional || f.presenceBit !== g.presenceBit) problems.push(`field '${f.name}' changed optional/presence bit (${f.optional}/${f.presenceBit} to ${g.optional}/${g.presenceBit})`)
    if ((f.kind === 'string' || f.kind === 'bytes' || f.kind === 'array') && f.max !== g.max) {
      problems.push(`field '${f.name}' changed max from ${f.max} to ${g.max}: a reader refuses values above its own max`)
    }
    if (f.kind === 'enum') {
      for (const [name, value] of Object.entries(f.enumValues!)) {
        if (g.enumValues![name] !== value) problems.push(`enum value ${f.name}.${name} changed or was removed`)
      }
    }
  }
  const known = new Set(a.fields.map((f) => f.name))
  for (const g of b.fields) {
    if (known.has(g.name)) continue
    if (g.since <= a.version) problems.push(`new field '${g.name}' needs since: ${a.version + 1} or later (it says ${g.since}), so that it is appended after version ${a.version}'s block`)
    if (g.offset < a.fixedLength) problems.push(`new field '${g.name}' sits at offset ${g.offset}, inside version ${a.version}'s fixed block of ${a.fixedLength} bytes`)
  }
  return problems
}

/** Throws ERR_SHMQ_FORMAT listing every problem unless `newer` can follow `older`. */
export function checkCompatible(older: SchemaInfo, newer: SchemaInfo): void {
  const problems = compatibilityProblems(older, newer)
  if (problems.length > 0) throw formatError(`${newer.name} v${newer.version} cannot follow ${older.name} v${older.version}: ${problems.join('; ')}`)
}
