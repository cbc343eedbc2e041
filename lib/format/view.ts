/**
 * The flyweight reader: a class generated once per schema whose getters read
 * each field in place at a constant offset, so reading a field costs what a
 * typed-array load at a known offset costs. Binding it to a message checks
 * the header (length, schema id, block lengths, flags, checksum) once; every
 * variable field's offset and count is checked when it is read. Nothing is
 * read outside the message's bytes, whatever they hold.
 */
import { crc32c } from './crc32c'
import { formatError } from './errors'
import {
  CHECKSUM_BYTES,
  FIXED_LENGTH_OFFSET,
  FLAG_CHECKSUM,
  FLAGS_OFFSET,
  type FieldLayout,
  HEADER_BYTES,
  HEADER_LENGTH_OFFSET,
  KNOWN_FLAGS,
  LENGTH_OFFSET,
  type MessageLayout,
  PRESENCE_OFFSET,
  SCHEMA_ID_OFFSET,
  SLOT_COUNT_OFFSET,
  SLOT_OFFSET_OFFSET,
  type StructLayout,
  VERSION_OFFSET,
} from './layout'
import { baseOf, charLength, initMemory, LITTLE_ENDIAN, type Memory, readExpr, readUtf8, readWideNumber, useBuffer } from './memory'

/** What the generated reader class offers besides its field getters. */
export interface ReaderInternals {
  /** Binds to bytes[offset, offset + length) (checked by the caller to lie inside bytes); throws ERR_SHMQ_FORMAT. */
  _bind(bytes: Uint8Array, offset: number, length: number): this
  _toObject(): Record<string, unknown>
}

const EMPTY_BYTES = new Uint8Array(0)
/** Reads of a struct field that an older message does not have: zeros. */
const ZERO: Memory = {} as Memory
initMemory(ZERO)
useBuffer(ZERO, new Uint8Array(new ArrayBuffer(0x10000)))
ZERO._a = LITTLE_ENDIAN

class Source {
  private readonly lines: string[] = []
  private readonly values: unknown[] = []
  private counter = 0
  /** A constant the generated code refers to by name. */
  constant(value: unknown): string {
    this.values.push(value)
    return `K${this.values.length - 1}`
  }
  name(prefix: string): string {
    return `${prefix}${this.counter++}`
  }
  push(line: string): void {
    this.lines.push(line)
  }
  compile<T>(result: string): T {
    const names = this.values.map((_, i) => `K${i}`)
    const body = `${this.lines.join('\n')}\nreturn ${result};`
    // one class per schema with constant offsets: V8 compiles each getter to a load at a fixed displacement
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function(...names, body)(...this.values) as T
  }
}

export { Source }

export const helpers = { crc32c, formatError, readUtf8, readWideNumber, charLength, initMemory, baseOf, LITTLE_ENDIAN, ZERO, EMPTY_BYTES }

function signedWide(field: FieldLayout): boolean {
  return field.scalar === 'i64'
}

/** Body of a getter returning the fixed-width field at absolute position `p` of memory `m`. */
function fixedRead(src: Source, where: string, field: FieldLayout, m: string, p: string, h: string, structs: Map<StructLayout, string>, self: string): string[] {
  switch (field.kind) {
    case 'scalar':
      if (field.asNumber) return [`return ${h}.readWideNumber(${m}, ${p}, ${signedWide(field)}, ${JSON.stringify(where)});`]
      return [`return ${readExpr(field.scalar!, m, p)};`]
    case 'char':
      return [`const p = ${p};`, `return ${h}.readUtf8(${m}, p, ${h}.charLength(${m}, p, ${field.max}));`]
    case 'enum': {
      const names: Record<string, string> = Object.create(null)
      for (const [name, value] of Object.entries(field.enumValues!)) names[String(value)] = name
      const table = src.constant(names)
      return [
        `const v = ${readExpr(field.scalar!, m, p)};`,
        `const n = ${table}[v];`,
        `if (n === undefined) throw ${h}.formatError(${JSON.stringify(where)} + ' holds ' + v + ', which is not one of its enum values');`,
        'return n;',
      ]
    }
    case 'struct': {
      const child = `${self}._n_${field.name}`
      void structs
      return [`const s = ${child};`, `s._r = ${m};`, `s._o = ${p};`, 'return s;']
    }
    default:
      throw new Error(`not a fixed field: ${field.kind}`)
  }
}

/** Generates the reader class of a struct (array element or nested struct); returns its name. */
function structReader(src: Source, where: string, struct: StructLayout, h: string, structs: Map<StructLayout, string>): string {
  const known = structs.get(struct)
  if (known !== undefined) return known
  const nested = struct.fields.filter((f) => f.kind === 'struct').map((f) => [f, structReader(src, `${where}.${f.name}`, f.struct!, h, structs)] as const)
  const name = src.name('S')
  structs.set(struct, name)
  src.push(`class ${name} {`)
  src.push(`constructor(r) { this._r = r; this._o = 0; ${nested.map(([f, cls]) => `this._n_${f.name} = new ${cls}(r);`).join(' ')} }`)
  for (const field of struct.fields) {
    src.push(`get ${field.name}() { const m = this._r;`)
    for (const line of fixedRead(src, `${where}.${field.name}`, field, 'm', `this._o + ${field.offset}`, h, structs, 'this')) src.push(line)
    src.push('}')
  }
  const parts = struct.fields.map((f) => (f.kind === 'struct' ? `${f.name}: this.${f.name}._toObject()` : `${f.name}: this.${f.name}`))
  src.push(`_toObject() { return { ${parts.join(', ')} }; }`)
  src.push('}')
  return name
}

function arrayReader(src: Source, where: string, field: FieldLayout, h: string, structs: Map<StructLayout, string>): string {
  const element = structReader(src, where, field.struct!, h, structs)
  const name = src.name('A')
  const stride = field.struct!.size
  src.push(`class ${name} {`)
  src.push(`constructor(r) { this._r = r; this._o = 0; this.length = 0; this._e = new ${element}(r); }`)
  src.push(
    `get(i) { if (!(i >= 0 && i < this.length) || (i | 0) !== i) throw ${h}.formatError(${JSON.stringify(where)} + ': index ' + i + ' is outside 0..' + (this.length - 1)); const e = this._e; e._r = this._r; e._o = this._o + i * ${stride}; return e; }`,
  )
  src.push(`*[Symbol.iterator]() { for (let i = 0; i < this.length; i++) yield this.get(i); }`)
  src.push(`_toObject() { const n = this.length; const out = new Array(n); for (let i = 0; i < n; i++) out[i] = this.get(i)._toObject(); return out; }`)
  src.push('}')
  return name
}

/** Generates and compiles the reader class of a schema. */
export function readerClass(layout: MessageLayout): new () => ReaderInternals {
  const src = new Source()
  const h = src.constant(helpers)
  const structs = new Map<StructLayout, string>()
  const NAME = JSON.stringify(layout.name)
  const children: string[] = []
  const getters: string[] = []
  const objectParts: string[] = []
  const u32 = (p: string): string => readExpr('u32', 'this', p)
  for (const field of layout.fields) {
    const where = `${layout.name}.${field.name}`
    const W = JSON.stringify(where)
    const late = field.offset + field.size > layout.baseFixedLength
    const guard: string[] = []
    const absent = (value: string): void => {
      if (field.optional) guard.push(`if (${field.offset + field.size} > this._fl || (this._p & ${(1 << field.presenceBit) | 0}) === 0) return undefined;`)
      else if (late) guard.push(`if (${field.offset + field.size} > this._fl) return ${value};`)
    }
    const body: string[] = []
    const p = `this._o + ${field.offset}`
    switch (field.kind) {
      case 'scalar':
      case 'char':
      case 'enum':
        absent(src.constant(field.defaultValue))
        body.push(...fixedRead(src, where, field, 'this', p, h, structs, 'this'))
        objectParts.push(`${field.name}: this.${field.name}`)
        break
      case 'struct': {
        const cls = structReader(src, where, field.struct!, h, structs)
        children.push(`this._n_${field.name} = new ${cls}(this);`)
        absent(`(this._n_${field.name}._r = ${h}.ZERO, this._n_${field.name}._o = 0, this._n_${field.name})`)
        body.push(...fixedRead(src, where, field, 'this', p, h, structs, 'this'))
        objectParts.push(`${field.name}: ${field.optional ? `(this.${field.name} === undefined ? undefined : this.${field.name}._toObject())` : `this.${field.name}._toObject()`}`)
        break
      }
      case 'string':
      case 'bytes':
      case 'array': {
        const isArray = field.kind === 'array'
        const unit = isArray ? field.struct!.size : 1
        const align = isArray ? field.struct!.align : 1
        let empty: string
        if (isArray) {
          const cls = arrayReader(src, where, field, h, structs)
          children.push(`this._a_${field.name} = new ${cls}(this);`)
          empty = `(this._a_${field.name}.length = 0, this._a_${field.name})`
        } else {
          empty = field.kind === 'string' ? "''" : `${h}.EMPTY_BYTES`
        }
        absent(empty)
        body.push(`const p = ${p};`)
        body.push(`const n = ${u32(`p + ${SLOT_COUNT_OFFSET}`)};`)
        body.push(`if (n === 0) return ${empty};`)
        body.push(`const off = ${u32(`p + ${SLOT_OFFSET_OFFSET}`)};`)
        const misaligned = align > 1 ? ` || (off & ${align - 1}) !== 0` : ''
        body.push(
          `if (n > ${field.max} || off < this._vs || off + n * ${unit} > this._er${misaligned}) throw ${h}.formatError(${W} + ': ' + n + (${isArray} ? ' elements' : ' bytes') + ' at offset ' + off + ' do not lie in the variable data [' + this._vs + ', ' + this._er + ')${align > 1 ? ` at ${align}-byte alignment` : ''} or exceed its max of ${field.max}');`,
        )
        if (field.kind === 'string') body.push(`return ${h}.readUtf8(this, this._s + off, n);`)
        else if (field.kind === 'bytes') body.push('const a = this._s + off; return this._u8.subarray(a, a + n);')
        else body.push(`const v = this._a_${field.name}; v._o = this._s + off; v.length = n; return v;`)
        if (isArray) objectParts.push(`${field.name}: ${field.optional ? `(this.${field.name} === undefined ? undefined : this.${field.name}._toObject())` : `this.${field.name}._toObject()`}`)
        else if (field.kind === 'bytes') objectParts.push(`${field.name}: ${field.optional ? `(this.${field.name} === undefined ? undefined : this.${field.name}.slice())` : `this.${field.name}.slice()`}`)
        else objectParts.push(`${field.name}: this.${field.name}`)
        break
      }
    }
    getters.push(`get ${field.name}() {\n${[...guard, ...body].join('\n')}\n}`)
  }
  const needs = {
    fl: layout.fields.some((f) => f.optional || f.offset + f.size > layout.baseFixedLength),
    p: layout.optionalCount > 0,
    v: layout.fields.some((f) => f.kind === 'string' || f.kind === 'bytes' || f.kind === 'array'),
  }
  const fail = (message: string): string => `throw ${h}.formatError(${NAME} + ': ' + ${message});`
  const rd = (type: 'u8' | 'u16' | 'u32', at: number): string => readExpr(type, 'this', `s + ${at}`)
  src.push(`class ${layout.name}Reader {`)
  src.push(
    `constructor() { ${h}.initMemory(this); this._s = 0; this._o = 0; this._fl = 0; this._p = 0; this._vs = 0; this._er = 0; ${children.join(' ')} }`,
  )
  const word = (at: string): string => readExpr('u32', 'this', at)
  // the common case in few loads and one test; _refuse() says what exactly is wrong
  src.push(`_bind(bytes, offset, length) {
const s = ${h}.baseOf(this, bytes) + offset;
this._a = ${h}.LITTLE_ENDIAN && (s & 7) === 0;
if (length < ${HEADER_BYTES}) this._refuse(s, length);
const len = ${word(`s + ${LENGTH_OFFSET}`)};
const w1 = ${word(`s + ${SCHEMA_ID_OFFSET}`)};
const w2 = ${word(`s + ${FIXED_LENGTH_OFFSET}`)};
const fl = w2 & 0xffff;
const hl = (w2 >>> 16) & 0xff;
const trailer = (w2 & ${FLAG_CHECKSUM << 24}) !== 0 ? ${CHECKSUM_BYTES} : 0;
if (len > length || (w1 & 0xffff) !== ${layout.id} || w1 < 0x10000 || (w2 & ${((~KNOWN_FLAGS & 0xff) << 24) >>> 0}) !== 0 || hl < ${HEADER_BYTES} || (hl & 7) !== 0 || fl < ${layout.baseFixedLength} || (fl & 7) !== 0 || hl + fl + trailer > len) this._refuse(s, length);
if (trailer !== 0) this._verify(s, len);
this._s = s; this._o = s + hl;${needs.fl ? ' this._fl = fl;' : ''}${needs.p ? ` this._p = ${rd('u32', PRESENCE_OFFSET)};` : ''}${needs.v ? ' this._vs = hl + fl; this._er = len - trailer;' : ''}
return this;
}`)
  src.push(`_verify(s, len) {
const want = this._dv.getUint32(s + len - ${CHECKSUM_BYTES}, true);
const got = ${h}.crc32c(this._u8, s, s + len - ${CHECKSUM_BYTES});
if (got !== want) ${fail(`'CRC32C mismatch (stored 0x' + want.toString(16) + ', computed 0x' + got.toString(16) + '): the message was damaged'`)}
}`)
  src.push(`_refuse(s, length) {
if (length < ${HEADER_BYTES}) ${fail(`length + ' bytes is shorter than a message header (${HEADER_BYTES} bytes)'`)}
const len = ${rd('u32', LENGTH_OFFSET)};
if (len < ${HEADER_BYTES} || len > length) ${fail(`'its Length field says ' + len + ' bytes, ' + length + ' are there'`)}
const id = ${rd('u16', SCHEMA_ID_OFFSET)};
if (id !== ${layout.id}) ${fail(`'schema id ' + id + ' where ${layout.id} was expected: not a ${layout.name} message'`)}
const ver = ${rd('u16', VERSION_OFFSET)};
const fl = ${rd('u16', FIXED_LENGTH_OFFSET)};
const hl = ${rd('u8', HEADER_LENGTH_OFFSET)};
const flags = ${rd('u8', FLAGS_OFFSET)};
if (ver === 0) ${fail(`'version 0 is not a version'`)}
if (hl < ${HEADER_BYTES} || (hl & 7) !== 0) ${fail(`'header length ' + hl + ' is not a multiple of 8 from ${HEADER_BYTES}'`)}
if (fl < ${layout.baseFixedLength} || (fl & 7) !== 0) ${fail(`'fixed block of ' + fl + ' bytes; every version has at least ${layout.baseFixedLength}, a multiple of 8'`)}
if ((flags & ${~KNOWN_FLAGS & 0xff}) !== 0) ${fail(`'unknown flags 0x' + flags.toString(16) + ': written by a newer shmq; upgrade this reader'`)}
${fail(`'header (' + hl + ') and fixed block (' + fl + ') exceed its length ' + len`)}
}`)
  // read from the header on demand: binding stores only what the getters use
  src.push(`get $length() { return ${readExpr('u32', 'this', `this._s + ${LENGTH_OFFSET}`)}; }`)
  src.push(`get $version() { return ${readExpr('u16', 'this', `this._s + ${VERSION_OFFSET}`)}; }`)
  for (const getter of getters) src.push(getter)
  src.push(`_toObject() { return { ${objectParts.join(', ')} }; }`)
  src.push('}')
  return src.compile(`${layout.name}Reader`)
}
