/**
 * C code generation: `shmq codegen --lang c schema.mjs > order.h` writes a
 * header of static inline readers and writers for every schema a module
 * exports, with the same bounds checks as the TypeScript flyweight. The C
 * side loads and stores little-endian bytes one by one (compilers turn that
 * into single moves), so it is correct at any alignment and on any host.
 */
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
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
  PRESENCE_OFFSET,
  SCHEMA_ID_OFFSET,
  SLOT_COUNT_OFFSET,
  SLOT_OFFSET_OFFSET,
  type StructLayout,
  VERSION_OFFSET,
} from './layout'
import type { SchemaInfo } from './message'
import type { ScalarType } from './schema'

const CTYPE: Record<ScalarType, string> = {
  u8: 'uint8_t',
  i8: 'int8_t',
  bool: 'bool',
  u16: 'uint16_t',
  i16: 'int16_t',
  u32: 'uint32_t',
  i32: 'int32_t',
  f32: 'float',
  f64: 'double',
  u64: 'uint64_t',
  i64: 'int64_t',
}
const LOAD: Record<ScalarType, string> = { u8: 'ld8', i8: 'ldi8', bool: 'ldbool', u16: 'ld16', i16: 'ldi16', u32: 'ld32', i32: 'ldi32', f32: 'ldf32', f64: 'ldf64', u64: 'ld64', i64: 'ldi64' }
const STORE: Record<ScalarType, string> = { u8: 'st8', i8: 'sti8', bool: 'stbool', u16: 'st16', i16: 'sti16', u32: 'st32', i32: 'sti32', f32: 'stf32', f64: 'stf64', u64: 'st64', i64: 'sti64' }

function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()
}

function cLiteral(type: ScalarType, value: unknown): string {
  if (type === 'bool') return value ? 'true' : 'false'
  if (type === 'f32' || type === 'f64') {
    const v = Number(value)
    if (Number.isNaN(v)) return '__builtin_nan("")'
    if (!Number.isFinite(v)) return v > 0 ? '__builtin_inf()' : '(-__builtin_inf())'
    const s = String(v)
    const text = /[.e]/.test(s) ? s : `${s}.0`
    return type === 'f32' ? `${text}f` : text
  }
  const big = BigInt(value as bigint | number)
  if (type === 'u64') return `UINT64_C(${big})`
  if (type === 'i64') return big === -(2n ** 63n) ? '(-INT64_C(9223372036854775807) - 1)' : `INT64_C(${big})`
  if (type === 'u32') return `${big}u`
  if (type === 'i32' && big === -(2n ** 31n)) return '(-2147483647 - 1)'
  return String(big)
}

const COMMON = `#ifndef SHMQ_FORMAT_COMMON_H
#define SHMQ_FORMAT_COMMON_H
/* shmq format: what every generated schema shares (docs/FORMAT.md) */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SHMQ_FMT_HEADER_BYTES ${HEADER_BYTES}
#define SHMQ_FMT_LENGTH_OFFSET ${LENGTH_OFFSET}
#define SHMQ_FMT_SCHEMA_ID_OFFSET ${SCHEMA_ID_OFFSET}
#define SHMQ_FMT_VERSION_OFFSET ${VERSION_OFFSET}
#define SHMQ_FMT_FIXED_LENGTH_OFFSET ${FIXED_LENGTH_OFFSET}
#define SHMQ_FMT_HEADER_LENGTH_OFFSET ${HEADER_LENGTH_OFFSET}
#define SHMQ_FMT_FLAGS_OFFSET ${FLAGS_OFFSET}
#define SHMQ_FMT_PRESENCE_OFFSET ${PRESENCE_OFFSET}
#define SHMQ_FMT_FLAG_CHECKSUM ${FLAG_CHECKSUM}
#define SHMQ_FMT_KNOWN_FLAGS ${KNOWN_FLAGS}
#define SHMQ_FMT_CHECKSUM_BYTES ${CHECKSUM_BYTES}

/* results: 0, or one of these (what a TypeScript reader reports as ERR_SHMQ_FORMAT) */
#define SHMQ_FMT_OK 0
#define SHMQ_FMT_ESHORT (-1)    /* fewer bytes than the header or its Length say */
#define SHMQ_FMT_ESCHEMA (-2)   /* another schema id */
#define SHMQ_FMT_EHEADER (-3)   /* header or fixed-block length, version or flags not valid */
#define SHMQ_FMT_ECHECKSUM (-4) /* CRC32C mismatch */
#define SHMQ_FMT_EBOUNDS (-5)   /* a variable field points outside the message, or above its max */
#define SHMQ_FMT_ENOROOM (-6)   /* writing: the value is above its max or the buffer is full */

typedef struct { const uint8_t *data; uint32_t length; } shmq_fmt_bytes;

static inline uint8_t shmq_fmt_ld8(const uint8_t *p) { return p[0]; }
static inline int8_t shmq_fmt_ldi8(const uint8_t *p) { return (int8_t)p[0]; }
static inline bool shmq_fmt_ldbool(const uint8_t *p) { return p[0] != 0; }
static inline uint16_t shmq_fmt_ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline int16_t shmq_fmt_ldi16(const uint8_t *p) { return (int16_t)shmq_fmt_ld16(p); }
static inline uint32_t shmq_fmt_ld32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }
static inline int32_t shmq_fmt_ldi32(const uint8_t *p) { return (int32_t)shmq_fmt_ld32(p); }
static inline uint64_t shmq_fmt_ld64(const uint8_t *p) { return (uint64_t)shmq_fmt_ld32(p) | ((uint64_t)shmq_fmt_ld32(p + 4) << 32); }
static inline int64_t shmq_fmt_ldi64(const uint8_t *p) { return (int64_t)shmq_fmt_ld64(p); }
static inline float shmq_fmt_ldf32(const uint8_t *p) { uint32_t u = shmq_fmt_ld32(p); float f; memcpy(&f, &u, 4); return f; }
static inline double shmq_fmt_ldf64(const uint8_t *p) { uint64_t u = shmq_fmt_ld64(p); double d; memcpy(&d, &u, 8); return d; }
static inline void shmq_fmt_st8(uint8_t *p, uint8_t v) { p[0] = v; }
static inline void shmq_fmt_sti8(uint8_t *p, int8_t v) { p[0] = (uint8_t)v; }
static inline void shmq_fmt_stbool(uint8_t *p, bool v) { p[0] = v ? 1 : 0; }
static inline void shmq_fmt_st16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void shmq_fmt_sti16(uint8_t *p, int16_t v) { shmq_fmt_st16(p, (uint16_t)v); }
static inline void shmq_fmt_st32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static inline void shmq_fmt_sti32(uint8_t *p, int32_t v) { shmq_fmt_st32(p, (uint32_t)v); }
static inline void shmq_fmt_st64(uint8_t *p, uint64_t v) { shmq_fmt_st32(p, (uint32_t)v); shmq_fmt_st32(p + 4, (uint32_t)(v >> 32)); }
static inline void shmq_fmt_sti64(uint8_t *p, int64_t v) { shmq_fmt_st64(p, (uint64_t)v); }
static inline void shmq_fmt_stf32(uint8_t *p, float v) { uint32_t u; memcpy(&u, &v, 4); shmq_fmt_st32(p, u); }
static inline void shmq_fmt_stf64(uint8_t *p, double v) { uint64_t u; memcpy(&u, &v, 8); shmq_fmt_st64(p, u); }

/* CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit: portable; use hardware CRC for long messages */
static inline uint32_t shmq_fmt_crc32c(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

/* a char[n] field: its bytes up to the first zero */
static inline shmq_fmt_bytes shmq_fmt_chars(const uint8_t *p, uint32_t width) {
  shmq_fmt_bytes out = { p, 0 };
  while (out.length < width && p[out.length] != 0) out.length++;
  return out;
}

static inline int shmq_fmt_set_chars(uint8_t *p, uint32_t width, const void *s, size_t n) {
  if (n > width) return SHMQ_FMT_ENOROOM;
  if (n > 0) memcpy(p, s, n);
  memset(p + n, 0, width - n);
  return SHMQ_FMT_OK;
}

/* the header checks every schema's reader_init makes; fills the fields it read */
static inline int shmq_fmt_check_header(const uint8_t *buf, size_t len, uint16_t schema_id, uint32_t base_fixed,
                                        uint32_t *length, uint32_t *block, uint32_t *fixed_length, uint32_t *var_end) {
  if (buf == NULL || len < SHMQ_FMT_HEADER_BYTES) return SHMQ_FMT_ESHORT;
  uint32_t n = shmq_fmt_ld32(buf + SHMQ_FMT_LENGTH_OFFSET);
  if (n < SHMQ_FMT_HEADER_BYTES || n > len) return SHMQ_FMT_ESHORT;
  if (shmq_fmt_ld16(buf + SHMQ_FMT_SCHEMA_ID_OFFSET) != schema_id) return SHMQ_FMT_ESCHEMA;
  uint32_t fl = shmq_fmt_ld16(buf + SHMQ_FMT_FIXED_LENGTH_OFFSET);
  uint32_t hl = buf[SHMQ_FMT_HEADER_LENGTH_OFFSET];
  uint32_t flags = buf[SHMQ_FMT_FLAGS_OFFSET];
  if (shmq_fmt_ld16(buf + SHMQ_FMT_VERSION_OFFSET) == 0) return SHMQ_FMT_EHEADER;
  if (hl < SHMQ_FMT_HEADER_BYTES || (hl & 7) != 0 || fl < base_fixed || (fl & 7) != 0) return SHMQ_FMT_EHEADER;
  if ((flags & ~(uint32_t)SHMQ_FMT_KNOWN_FLAGS) != 0) return SHMQ_FMT_EHEADER;
  uint32_t trailer = (flags & SHMQ_FMT_FLAG_CHECKSUM) ? SHMQ_FMT_CHECKSUM_BYTES : 0;
  if ((uint64_t)hl + fl + trailer > n) return SHMQ_FMT_EHEADER;
  if (trailer != 0 && shmq_fmt_crc32c(buf, n - trailer) != shmq_fmt_ld32(buf + n - trailer)) return SHMQ_FMT_ECHECKSUM;
  *length = n;
  *block = hl;
  *fixed_length = fl;
  *var_end = n - trailer;
  return SHMQ_FMT_OK;
}

/* a variable field's slot: count units of unit bytes at an offset inside [var_start, var_end) */
static inline int shmq_fmt_slot(const uint8_t *msg, uint32_t slot, uint32_t var_start, uint32_t var_end, uint32_t unit,
                                uint32_t align, uint32_t max, const uint8_t **data, uint32_t *count) {
  uint32_t n = shmq_fmt_ld32(msg + slot + ${SLOT_COUNT_OFFSET});
  uint32_t off = shmq_fmt_ld32(msg + slot + ${SLOT_OFFSET_OFFSET});
  if (n == 0) {
    *data = msg;
    *count = 0;
    return SHMQ_FMT_OK;
  }
  if (n > max || off < var_start || (uint64_t)off + (uint64_t)n * unit > var_end || (off & (align - 1)) != 0) return SHMQ_FMT_EBOUNDS;
  *data = msg + off;
  *count = n;
  return SHMQ_FMT_OK;
}

/* what a struct field reads as in a message older than the field */
static inline const uint8_t *shmq_fmt_zeros(void) {
  static const uint8_t zeros[${0x10000}];
  return zeros;
}
#endif /* SHMQ_FORMAT_COMMON_H */
`

class Emitter {
  readonly out: string[] = []
  line(text: string = ''): void {
    this.out.push(text)
  }
}

/** Readers and setters of a struct's fields over a struct pointer. */
function emitStruct(e: Emitter, prefix: string, struct: StructLayout): void {
  for (const f of struct.fields) {
    const name = `${prefix}_${snake(f.name)}`
    const upper = name.toUpperCase()
    e.line(`#define ${upper}_OFFSET ${f.offset}`)
    switch (f.kind) {
      case 'scalar':
      case 'enum':
        if (f.kind === 'enum') for (const [n, v] of Object.entries(f.enumValues!)) e.line(`#define ${upper}_${snake(n).toUpperCase()} ${v}`)
        e.line(`static inline ${CTYPE[f.scalar!]} ${name}(const uint8_t *s) { return shmq_fmt_${LOAD[f.scalar!]}(s + ${f.offset}); }`)
        e.line(`static inline void ${prefix}_set_${snake(f.name)}(uint8_t *s, ${CTYPE[f.scalar!]} v) { shmq_fmt_${STORE[f.scalar!]}(s + ${f.offset}, v); }`)
        break
      case 'char':
        e.line(`static inline shmq_fmt_bytes ${name}(const uint8_t *s) { return shmq_fmt_chars(s + ${f.offset}, ${f.max}); }`)
        e.line(`static inline int ${prefix}_set_${snake(f.name)}(uint8_t *s, const void *v, size_t n) { return shmq_fmt_set_chars(s + ${f.offset}, ${f.max}, v, n); }`)
        break
      case 'struct':
        e.line(`static inline const uint8_t *${name}(const uint8_t *s) { return s + ${f.offset}; }`)
        e.line(`static inline uint8_t *${prefix}_edit_${snake(f.name)}(uint8_t *s) { return s + ${f.offset}; }`)
        emitStruct(e, name, f.struct!)
        break
      default:
        throw new Error(`not a struct field: ${f.kind}`)
    }
  }
}

function emitSchema(e: Emitter, schema: SchemaInfo): void {
  const layout = schema.layout
  const P = `${snake(layout.name)}_v${layout.version}`
  const U = P.toUpperCase()
  const R = `${P}_reader`
  const W = `${P}_writer`
  e.line(`/* ---- ${layout.name} version ${layout.version}: schema id ${layout.id} ---- */`)
  e.line(`#define ${U}_SCHEMA_ID ${layout.id}`)
  e.line(`#define ${U}_VERSION ${layout.version}`)
  e.line(`#define ${U}_FIXED_LENGTH ${layout.fixedLength}`)
  e.line(`#define ${U}_BASE_FIXED_LENGTH ${layout.baseFixedLength}`)
  e.line(`#define ${U}_CHECKSUM ${layout.checksum ? 1 : 0}`)
  e.line(`typedef struct { const uint8_t *msg; uint32_t length, block, fixed_length, var_start, var_end, presence; uint16_t version; } ${R};`)
  e.line(`typedef struct { uint8_t *msg; uint32_t capacity, cursor, presence; bool checksum; } ${W};`)
  e.line(`/* 0, or SHMQ_FMT_E*: checks the header (and the checksum) of the message at buf */`)
  e.line(`static inline int ${R}_init(${R} *r, const uint8_t *buf, size_t len) {`)
  e.line(`  int rc = shmq_fmt_check_header(buf, len, ${layout.id}, ${layout.baseFixedLength}, &r->length, &r->block, &r->fixed_length, &r->var_end);`)
  e.line('  if (rc != SHMQ_FMT_OK) return rc;')
  e.line('  r->msg = buf;')
  e.line('  r->var_start = r->block + r->fixed_length;')
  e.line('  r->presence = shmq_fmt_ld32(buf + SHMQ_FMT_PRESENCE_OFFSET);')
  e.line('  r->version = shmq_fmt_ld16(buf + SHMQ_FMT_VERSION_OFFSET);')
  e.line('  return SHMQ_FMT_OK;')
  e.line('}')
  e.line(`/* 0, or SHMQ_FMT_ENOROOM: writes the header and zeroes the fixed block */`)
  e.line(`static inline int ${W}_init(${W} *w, uint8_t *buf, size_t capacity, bool checksum) {`)
  e.line(`  size_t trailer = checksum ? SHMQ_FMT_CHECKSUM_BYTES : 0;`)
  e.line(`  if (buf == NULL || capacity < ${HEADER_BYTES + layout.fixedLength} + trailer || capacity > 0xFFFFFFFFu) return SHMQ_FMT_ENOROOM;`)
  e.line('  w->msg = buf;')
  e.line('  w->capacity = (uint32_t)(capacity - trailer);')
  e.line(`  w->cursor = ${HEADER_BYTES + layout.fixedLength};`)
  e.line('  w->presence = 0;')
  e.line('  w->checksum = checksum;')
  e.line(`  memset(buf, 0, ${HEADER_BYTES + layout.fixedLength});`)
  e.line(`  shmq_fmt_st32(buf + SHMQ_FMT_LENGTH_OFFSET, (uint32_t)(w->cursor + trailer));`)
  e.line(`  shmq_fmt_st16(buf + SHMQ_FMT_SCHEMA_ID_OFFSET, ${layout.id});`)
  e.line(`  shmq_fmt_st16(buf + SHMQ_FMT_VERSION_OFFSET, ${layout.version});`)
  e.line(`  shmq_fmt_st16(buf + SHMQ_FMT_FIXED_LENGTH_OFFSET, ${layout.fixedLength});`)
  e.line(`  buf[SHMQ_FMT_HEADER_LENGTH_OFFSET] = ${HEADER_BYTES};`)
  e.line('  buf[SHMQ_FMT_FLAGS_OFFSET] = checksum ? SHMQ_FMT_FLAG_CHECKSUM : 0;')
  e.line('  return SHMQ_FMT_OK;')
  e.line('}')
  e.line(`/* the message's length (what to send); computes the checksum when on */`)
  e.line(`static inline uint32_t ${W}_finish(${W} *w) {`)
  e.line('  uint32_t n = w->cursor;')
  e.line('  shmq_fmt_st32(w->msg + SHMQ_FMT_LENGTH_OFFSET, n + (w->checksum ? SHMQ_FMT_CHECKSUM_BYTES : 0));')
  e.line('  shmq_fmt_st32(w->msg + SHMQ_FMT_PRESENCE_OFFSET, w->presence);')
  e.line('  if (!w->checksum) return n;')
  e.line('  shmq_fmt_st32(w->msg + n, shmq_fmt_crc32c(w->msg, n));')
  e.line('  return n + SHMQ_FMT_CHECKSUM_BYTES;')
  e.line('}')
  for (const f of layout.fields) emitField(e, layout.baseFixedLength, P, f)
  e.line()
}

function emitField(e: Emitter, baseFixed: number, P: string, f: FieldLayout): void {
  const name = `${P}_${snake(f.name)}`
  const U = name.toUpperCase()
  const R = `${P}_reader`
  const W = `${P}_writer`
  const at = `${HEADER_BYTES} + ${f.offset}`
  const late = f.offset + f.size > baseFixed
  const there = `r->fixed_length >= ${f.offset + f.size}`
  e.line(`#define ${U}_OFFSET ${f.offset}`)
  if (f.optional) {
    e.line(`#define ${U}_PRESENCE_BIT ${f.presenceBit}`)
    e.line(`static inline bool ${P}_has_${snake(f.name)}(const ${R} *r) { return ${there} && (r->presence & (1u << ${f.presenceBit})) != 0; }`)
  }
  const present = f.optional ? `${P}_has_${snake(f.name)}(r)` : late ? there : ''
  const mark = f.optional ? ` w->presence |= 1u << ${f.presenceBit};` : ''
  switch (f.kind) {
    case 'scalar':
    case 'enum': {
      const t = CTYPE[f.scalar!]
      if (f.kind === 'enum') for (const [n, v] of Object.entries(f.enumValues!)) e.line(`#define ${U}_${snake(n).toUpperCase()} ${v}`)
      const fallback = f.kind === 'enum' ? String(f.enumValues![f.defaultValue as string]) : f.optional ? cLiteral(f.scalar!, 0) : cLiteral(f.scalar!, f.defaultValue)
      const read = `shmq_fmt_${LOAD[f.scalar!]}(r->msg + r->block + ${f.offset})`
      e.line(`static inline ${t} ${name}(const ${R} *r) { return ${present ? `${present} ? ${read} : (${t})${fallback}` : read}; }`)
      e.line(`static inline void ${P}_set_${snake(f.name)}(${W} *w, ${t} v) { shmq_fmt_${STORE[f.scalar!]}(w->msg + ${at}, v);${mark} }`)
      break
    }
    case 'char': {
      const fallback = JSON.stringify(String(f.defaultValue ?? ''))
      const read = `shmq_fmt_chars(r->msg + r->block + ${f.offset}, ${f.max})`
      e.line(
        `static inline shmq_fmt_bytes ${name}(const ${R} *r) { ${present ? `if (!(${present})) { shmq_fmt_bytes d = { (const uint8_t *)${fallback}, ${Buffer.byteLength(String(f.defaultValue ?? ''))} }; return d; } ` : ''}return ${read}; }`,
      )
      e.line(`static inline int ${P}_set_${snake(f.name)}(${W} *w, const void *v, size_t n) { int rc = shmq_fmt_set_chars(w->msg + ${at}, ${f.max}, v, n);${mark ? ` if (rc == SHMQ_FMT_OK) {${mark} }` : ''} return rc; }`)
      break
    }
    case 'struct':
      e.line(`/* the struct's bytes (zeros when the message predates it); read with ${name}_* */`)
      e.line(`static inline const uint8_t *${name}(const ${R} *r) { return ${present ? `!(${present}) ? shmq_fmt_zeros() : ` : ''}r->msg + r->block + ${f.offset}; }`)
      e.line(`static inline uint8_t *${P}_edit_${snake(f.name)}(${W} *w) {${mark} return w->msg + ${at}; }`)
      emitStruct(e, name, f.struct!)
      break
    case 'string':
    case 'bytes': {
      e.line(`#define ${U}_MAX ${f.max}`)
      e.line(`/* 0 with *out set (empty when absent), or SHMQ_FMT_EBOUNDS */`)
      e.line(`static inline int ${name}(const ${R} *r, shmq_fmt_bytes *out) {`)
      if (present) e.line(`  if (!(${present})) { out->data = r->msg; out->length = 0; return SHMQ_FMT_OK; }`)
      e.line(`  return shmq_fmt_slot(r->msg, r->block + ${f.offset}, r->var_start, r->var_end, 1, 1, ${f.max}, &out->data, &out->length);`)
      e.line('}')
      e.line(`static inline int ${P}_set_${snake(f.name)}(${W} *w, const void *v, size_t n) {`)
      e.line(`  if (n > ${f.max} || n > (size_t)(w->capacity - w->cursor)) return SHMQ_FMT_ENOROOM;`)
      e.line('  if (n > 0) memcpy(w->msg + w->cursor, v, n);')
      e.line(`  shmq_fmt_st32(w->msg + ${at} + ${SLOT_OFFSET_OFFSET}, n == 0 ? 0 : w->cursor);`)
      e.line(`  shmq_fmt_st32(w->msg + ${at} + ${SLOT_COUNT_OFFSET}, (uint32_t)n);`)
      e.line(`  w->cursor += (uint32_t)n;${mark}`)
      e.line('  return SHMQ_FMT_OK;')
      e.line('}')
      break
    }
    case 'array': {
      const struct = f.struct!
      const A = `${name}_array`
      e.line(`#define ${U}_MAX ${f.max}`)
      e.line(`#define ${U}_STRIDE ${struct.size}`)
      e.line(`typedef struct { const uint8_t *data; uint32_t count; } ${A};`)
      e.line(`/* 0 with *out set (empty when absent), or SHMQ_FMT_EBOUNDS; elements through ${name}_get */`)
      e.line(`static inline int ${name}(const ${R} *r, ${A} *out) {`)
      if (present) e.line(`  if (!(${present})) { out->data = r->msg; out->count = 0; return SHMQ_FMT_OK; }`)
      e.line(`  return shmq_fmt_slot(r->msg, r->block + ${f.offset}, r->var_start, r->var_end, ${struct.size}, ${struct.align}, ${f.max}, &out->data, &out->count);`)
      e.line('}')
      e.line(`/* element i, or NULL when i >= count */`)
      e.line(`static inline const uint8_t *${name}_get(const ${A} *a, uint32_t i) { return i < a->count ? a->data + (size_t)i * ${struct.size} : NULL; }`)
      e.line(`/* room for count zeroed elements (fill them with ${name}_set_*), or NULL when above the max or out of room */`)
      e.line(`static inline uint8_t *${P}_alloc_${snake(f.name)}(${W} *w, uint32_t count) {`)
      e.line(`  uint32_t start = (w->cursor + ${struct.align - 1}u) & ~(uint32_t)${struct.align - 1}u;`)
      e.line(`  if (count > ${f.max} || (uint64_t)start + (uint64_t)count * ${struct.size} > w->capacity) return NULL;`)
      e.line(`  memset(w->msg + w->cursor, 0, start - w->cursor + (size_t)count * ${struct.size});`)
      e.line(`  shmq_fmt_st32(w->msg + ${at} + ${SLOT_OFFSET_OFFSET}, count == 0 ? 0 : start);`)
      e.line(`  shmq_fmt_st32(w->msg + ${at} + ${SLOT_COUNT_OFFSET}, count);`)
      e.line(`  if (count != 0) w->cursor = start + count * ${struct.size};${mark}`)
      e.line('  return w->msg + start;')
      e.line('}')
      e.line(`static inline uint8_t *${name}_get_mut(uint8_t *data, uint32_t i) { return data + (size_t)i * ${struct.size}; }`)
      emitStruct(e, name, struct)
      break
    }
  }
}

/** The C header for these schemas. */
export function generateC(schemas: readonly SchemaInfo[], source: string = 'shmq format schemas'): string {
  const seen = new Set<string>()
  const e = new Emitter()
  const guard = `SHMQ_FORMAT_${[...new Set(schemas.map((s) => `${snake(s.layout.name)}_v${s.layout.version}`))].join('_').toUpperCase()}_H`
  e.line(`/* Generated by \`shmq codegen --lang c\` from ${source}: do not edit. */`)
  e.line(`#ifndef ${guard}`)
  e.line(`#define ${guard}`)
  e.line(COMMON)
  for (const schema of schemas) {
    const key = `${schema.layout.name}/${schema.layout.version}`
    if (seen.has(key)) throw formatError(`two schemas are ${schema.layout.name} version ${schema.layout.version}: give each version its own number`)
    seen.add(key)
    emitSchema(e, schema)
  }
  e.line(`#endif /* ${guard} */`)
  const text = `${e.out.join('\n')}\n`
  const names = new Set<string>()
  for (const match of text.matchAll(/^(?:static inline [^(]*?\b(\w+)\(|#define (\w+) |typedef struct .*\} (\w+);)/gm)) {
    const name = match[1] ?? match[2] ?? match[3]!
    if (names.has(name)) throw formatError(`the C name ${name} is generated twice (a field's name collides with an accessor's): rename the field`)
    names.add(name)
  }
  return text
}

function isSchema(value: unknown): value is SchemaInfo {
  const v = value as SchemaInfo | null
  return typeof v === 'object' && v !== null && typeof v.layout === 'object' && v.layout !== null && typeof v.id === 'number' && Array.isArray(v.layout.fields)
}

/** Every schema a module exports (as named exports, or properties of its default/CommonJS export). */
export async function schemasOf(file: string): Promise<SchemaInfo[]> {
  // a real dynamic import (tsc would turn import() into require() in CommonJS output): .mjs and .cjs alike
  const load = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>
  const module = await load(pathToFileURL(path.resolve(file)).href)
  const found: SchemaInfo[] = []
  const visit = (value: unknown): void => {
    if (isSchema(value)) {
      if (!found.includes(value)) found.push(value)
    } else if (typeof value === 'object' && value !== null) {
      for (const inner of Object.values(value)) if (isSchema(inner) && !found.includes(inner)) found.push(inner)
    }
  }
  for (const [key, value] of Object.entries(module)) if (key !== 'default') visit(value)
  visit(module.default)
  return found
}

export const CODEGEN_USAGE = 'shmq codegen --lang c SCHEMA_MODULE  write a C header of accessors for every schema the module exports'

/** `shmq codegen --lang c schema.mjs`: the header on stdout; sets the exit code when done. */
export function codegenCommand(args: string[]): number {
  const lang = args.indexOf('--lang')
  const rest = args.filter((_, i) => i !== lang && i !== lang + 1)
  if (lang < 0 || args[lang + 1] !== 'c' || rest.length !== 1) {
    process.stderr.write(`usage: ${CODEGEN_USAGE}\n`)
    return 2
  }
  const file = rest[0]!
  schemasOf(file)
    .then((schemas) => {
      if (schemas.length === 0) throw formatError(`${file} exports no schema (defineMessage results)`)
      process.stdout.write(generateC(schemas, path.basename(file)))
    })
    .catch((error: unknown) => {
      process.stderr.write(`shmq codegen: ${(error as Error).message}\n`)
      process.exitCode = 1
    })
  return 0
}
