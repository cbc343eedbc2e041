/**
 * The in-place writer: a class generated once per schema whose setters store
 * each fixed field at its constant offset and append each variable field at
 * a cursor, pointing the field's slot at it. Binding writes the header and
 * zeroes the fixed block (a claimed view holds whatever was there before);
 * `length` finishes the message (checksum) and says how many bytes to commit.
 * Nothing is written outside the target's bytes: a value that does not fit
 * is ERR_SHMQ_FORMAT, before anything of it is stored.
 */
import {
  CHECKSUM_BYTES,
  FIXED_LENGTH_OFFSET,
  FLAG_CHECKSUM,
  FLAGS_OFFSET,
  type FieldLayout,
  HEADER_BYTES,
  HEADER_LENGTH_OFFSET,
  LENGTH_OFFSET,
  type MessageLayout,
  PRESENCE_OFFSET,
  SCHEMA_ID_OFFSET,
  SLOT_COUNT_OFFSET,
  SLOT_OFFSET_OFFSET,
  type StructLayout,
  VERSION_OFFSET,
} from './layout'
import { baseOf, initMemory, LITTLE_ENDIAN, utf8Length, writeStmt, writeUtf8, writeWideNumber } from './memory'
import { crc32c } from './crc32c'
import { formatError } from './errors'
import { Source } from './view'

export interface WriterInternals {
  /** Binds to bytes[offset, offset + capacity) (checked by the caller); writes the header. */
  _bind(bytes: Uint8Array, offset: number, capacity: number, checksum: boolean): this
  /** Sets every field from `values` in layout order; throws on a missing required field. */
  _encode(values: Record<string, unknown>): void
  readonly length: number
}

function toBig(v: unknown, where: string): bigint {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v)
  throw formatError(`${where} must be a bigint or an integer (got ${String(v)})`)
}

function checkObject(v: unknown, where: string): void {
  if (v === null || typeof v !== 'object') throw formatError(`${where} must be an object of its struct's fields (got ${String(v)})`)
}

const helpers = { formatError, toBig, checkObject, writeUtf8, writeWideNumber, utf8Length, crc32c, initMemory, baseOf, LITTLE_ENDIAN }

/** Statements storing value `v` of fixed field `field` at absolute position `p` of memory `m`. */
function fixedWrite(src: Source, where: string, field: FieldLayout, m: string, p: string, v: string, h: string, structs: Map<StructLayout, string>): string[] {
  const W = JSON.stringify(where)
  switch (field.kind) {
    case 'scalar':
      if (field.asNumber) return [`${h}.writeWideNumber(${m}, ${p}, ${v}, ${W});`]
      if (field.scalar === 'u64' || field.scalar === 'i64') return [writeStmt(field.scalar, m, p, `${h}.toBig(${v}, ${W})`)]
      return [writeStmt(field.scalar!, m, p, v)]
    case 'char':
      return [
        `{ const at = ${p}; const n = typeof ${v} === 'string' ? ${h}.writeUtf8(${m}, ${v}, at, ${field.max}) : -2;`,
        `if (n === -2) throw ${h}.formatError(${W} + ' must be a string');`,
        `if (n < 0) throw ${h}.formatError(${W} + ': ' + ${h}.utf8Length(${v}) + ' bytes of UTF-8 do not fit its ${field.max}');`,
        `for (let i = n; i < ${field.max}; i++) ${m}._u8[at + i] = 0; }`,
      ]
    case 'enum': {
      const values: Record<string, number> = Object.create(null)
      Object.assign(values, field.enumValues)
      const table = src.constant(values)
      return [
        `{ const x = ${table}[${v}];`,
        `if (x === undefined) throw ${h}.formatError(${W} + ': ' + String(${v}) + ' is not one of ${Object.keys(values).join(', ')}');`,
        writeStmt(field.scalar!, m, p, 'x'),
        '}',
      ]
    }
    case 'struct':
      return [`${structWriter(src, where, field.struct!, h, structs)}(${m}, ${p}, ${v});`]
    default:
      throw new Error(`not a fixed field: ${field.kind}`)
  }
}

/** A function (m, p, value) storing a struct's fields; returns its name. */
function structWriter(src: Source, where: string, struct: StructLayout, h: string, structs: Map<StructLayout, string>): string {
  const known = structs.get(struct)
  if (known !== undefined) return known
  const lines: string[] = []
  for (const field of struct.fields) {
    const w = `${where}.${field.name}`
    lines.push(`{ const x = v.${field.name}; if (x === undefined) throw ${h}.formatError(${JSON.stringify(w)} + ' is missing');`)
    lines.push(...fixedWrite(src, w, field, 'm', `p + ${field.offset}`, 'x', h, structs))
    lines.push('}')
  }
  const name = src.name('ws')
  structs.set(struct, name)
  src.push(`function ${name}(m, p, v) { ${h}.checkObject(v, ${JSON.stringify(where)});\n${lines.join('\n')}\n}`)
  return name
}

/** Whether a struct's fields leave bytes uncovered (which must then be zeroed). */
function hasHoles(struct: StructLayout): boolean {
  let covered = 0
  for (const field of struct.fields) {
    if (field.kind === 'struct' && hasHoles(field.struct!)) return true
    covered += field.size
  }
  return covered !== struct.size
}

export function writerClass(layout: MessageLayout): new () => WriterInternals {
  const src = new Source()
  const h = src.constant(helpers)
  const structs = new Map<StructLayout, string>()
  const NAME = JSON.stringify(layout.name)
  const setters: string[] = []
  const encode: string[] = []
  const u32 = (p: string, v: string): string => writeStmt('u32', 'this', p, v)
  for (const field of layout.fields) {
    const where = `${layout.name}.${field.name}`
    const W = JSON.stringify(where)
    const bit = (1 << field.presenceBit) | 0
    const lines: string[] = []
    const p = `this._o + ${field.offset}`
    if (field.optional) {
      lines.push(`if (v === undefined) { this._p &= ${~bit}; ${u32(`this._s + ${PRESENCE_OFFSET}`, 'this._p')} return; }`)
    }
    switch (field.kind) {
      case 'scalar':
      case 'char':
      case 'enum':
      case 'struct':
        lines.push(...fixedWrite(src, where, field, 'this', p, 'v', h, structs))
        break
      case 'string':
      case 'bytes': {
        const isString = field.kind === 'string'
        lines.push('const c = this._c;')
        lines.push('const room = this._cap - c;')
        if (isString) {
          lines.push(`if (typeof v !== 'string') throw ${h}.formatError(${W} + ' must be a string');`)
          lines.push(`const n = ${h}.writeUtf8(this, v, this._s + c, room < ${field.max} ? room : ${field.max});`)
          lines.push(`if (n < 0) throw ${h}.formatError(${W} + ': ' + ${h}.utf8Length(v) + ' bytes of UTF-8 exceed ' + (room < ${field.max} ? 'the ' + room + ' bytes left in the target' : 'its max of ${field.max}'));`)
        } else {
          lines.push(`if (!(v instanceof Uint8Array)) throw ${h}.formatError(${W} + ' must be a Uint8Array');`)
          lines.push('const n = v.length;')
          lines.push(`if (n > ${field.max} || n > room) throw ${h}.formatError(${W} + ': ' + n + ' bytes exceed ' + (n > ${field.max} ? 'its max of ${field.max}' : 'the ' + room + ' bytes left in the target'));`)
          lines.push('this._u8.set(v, this._s + c);')
        }
        lines.push(u32(`${p} + ${SLOT_OFFSET_OFFSET}`, 'n === 0 ? 0 : c'))
        lines.push(u32(`${p} + ${SLOT_COUNT_OFFSET}`, 'n'))
        lines.push('this._grow(n);')
        break
      }
      case 'array': {
        const struct = field.struct!
        const writeOne = structWriter(src, `${where}[]`, struct, h, structs)
        const mask = struct.align - 1
        lines.push(`if (!Array.isArray(v)) throw ${h}.formatError(${W} + ' must be an array');`)
        lines.push('const n = v.length;')
        lines.push(`if (n > ${field.max}) throw ${h}.formatError(${W} + ': ' + n + ' elements exceed its max of ${field.max}');`)
        lines.push('const c = this._c;')
        lines.push(`const start = n === 0 ? c : (c + ${mask}) & ${~mask};`)
        lines.push(`const end = start + n * ${struct.size};`)
        lines.push(`if (end > this._cap) throw ${h}.formatError(${W} + ': ' + n + ' elements need ' + (end - c) + ' bytes, ' + (this._cap - c) + ' are left in the target');`)
        lines.push(`const base = this._s + start;`)
        // padding before the array, and holes inside its elements, hold stale bytes of the claimed view
        if (hasHoles(struct)) lines.push('if (n !== 0) this._u8.fill(0, this._s + c, this._s + end);')
        else if (struct.align > 1) lines.push('for (let i = this._s + c; i < base; i++) this._u8[i] = 0;')
        lines.push(`for (let i = 0; i < n; i++) ${writeOne}(this, base + i * ${struct.size}, v[i]);`)
        lines.push(u32(`${p} + ${SLOT_OFFSET_OFFSET}`, 'n === 0 ? 0 : start'))
        lines.push(u32(`${p} + ${SLOT_COUNT_OFFSET}`, 'n'))
        lines.push('this._grow(end - c);')
        break
      }
    }
    if (field.optional) lines.push(`this._p |= ${bit}; ${u32(`this._s + ${PRESENCE_OFFSET}`, 'this._p')}`)
    setters.push(`set ${field.name}(v) {\n${lines.join('\n')}\n}`)
    encode.push(
      field.optional
        ? `{ const x = values.${field.name}; if (x !== undefined) this.${field.name} = x; }`
        : `{ const x = values.${field.name}; if (x === undefined) throw ${h}.formatError(${W} + ' is missing'); this.${field.name} = x; }`,
    )
  }
  const words = layout.fixedLength / 8
  const zero =
    words <= 16
      ? Array.from({ length: words }, (_, i) => `if (a) this._f64[(o >>> 3) + ${i}] = 0; else this._dv.setFloat64(o + ${i * 8}, 0);`).join('\n')
      : `this._u8.fill(0, o, o + ${layout.fixedLength});`
  const w = (type: 'u8' | 'u16' | 'u32', at: number, v: string): string => writeStmt(type, 'this', `s + ${at}`, v)
  src.push(`class ${layout.name}Writer {`)
  src.push(`constructor() { ${h}.initMemory(this); this._s = 0; this._o = 0; this._c = 0; this._cap = 0; this._p = 0; this._crc = false; }`)
  src.push(`_bind(bytes, offset, capacity, checksum) {
const trailer = checksum ? ${CHECKSUM_BYTES} : 0;
if (capacity < ${HEADER_BYTES + layout.fixedLength} + trailer) throw ${h}.formatError(${NAME} + ': a message needs at least ${HEADER_BYTES + layout.fixedLength} bytes' + (checksum ? ' and 4 for its checksum' : '') + ', the target has ' + capacity);
const s = ${h}.baseOf(this, bytes) + offset;
const a = ${h}.LITTLE_ENDIAN && (s & 7) === 0;
this._a = a;
this._s = s; this._o = s + ${HEADER_BYTES}; this._c = ${HEADER_BYTES + layout.fixedLength}; this._cap = capacity - trailer; this._p = 0; this._crc = checksum;
${w('u32', LENGTH_OFFSET, `${HEADER_BYTES + layout.fixedLength} + trailer`)}
${w('u16', SCHEMA_ID_OFFSET, String(layout.id))}
${w('u16', VERSION_OFFSET, String(layout.version))}
${w('u16', FIXED_LENGTH_OFFSET, String(layout.fixedLength))}
${w('u8', HEADER_LENGTH_OFFSET, String(HEADER_BYTES))}
${w('u8', FLAGS_OFFSET, `checksum ? ${FLAG_CHECKSUM} : 0`)}
${w('u32', PRESENCE_OFFSET, '0')}
const o = this._o;
${zero}
return this;
}`)
  src.push(`_grow(n) { this._c += n; ${writeStmt('u32', 'this', `this._s + ${LENGTH_OFFSET}`, `this._c + (this._crc ? ${CHECKSUM_BYTES} : 0)`)} }`)
  src.push(`get length() {
const c = this._c;
if (!this._crc) return c;
const end = this._s + c;
this._dv.setUint32(end, ${h}.crc32c(this._u8, this._s, end), true);
return c + ${CHECKSUM_BYTES};
}`)
  src.push(`_encode(values) {\n${encode.join('\n')}\n}`)
  for (const setter of setters) src.push(setter)
  src.push('}')
  return src.compile(`${layout.name}Writer`)
}
