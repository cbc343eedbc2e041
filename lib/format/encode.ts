/**
 * Sizing and encoding a message from plain values. sizeOf is exact for the
 * layout encodeInto writes (variable fields in layout order); maxSizeOf is a
 * bound that needs no UTF-8 scan, for claiming room before encoding in place.
 */
import { formatError } from './errors'
import { CHECKSUM_BYTES, HEADER_BYTES, type MessageLayout } from './layout'
import { utf8Length } from './memory'
import { Source } from './view'

export type SizeFunction = (values: Record<string, unknown>, checksum: boolean) => number

function sizeFunction(layout: MessageLayout, bound: boolean): SizeFunction {
  const src = new Source()
  const h = src.constant({ utf8Length, formatError })
  const lines: string[] = [`if (values === null || typeof values !== 'object') throw ${h}.formatError(${JSON.stringify(layout.name)} + ': values must be an object of its fields');`, `let c = ${HEADER_BYTES + layout.fixedLength};`]
  for (const field of layout.fields) {
    const x = `values.${field.name}`
    switch (field.kind) {
      case 'string':
        // a UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4)
        lines.push(bound ? `{ const x = ${x}; if (typeof x === 'string') c += x.length * 3; }` : `{ const x = ${x}; if (typeof x === 'string') c += ${h}.utf8Length(x); }`)
        break
      case 'bytes':
        lines.push(`{ const x = ${x}; if (x instanceof Uint8Array) c += x.length; }`)
        break
      case 'array': {
        const mask = field.struct!.align - 1
        lines.push(`{ const x = ${x}; if (Array.isArray(x) && x.length !== 0) c = ((c + ${mask}) & ${~mask}) + x.length * ${field.struct!.size}; }`)
        break
      }
      default:
        break
    }
  }
  lines.push(`return checksum ? c + ${CHECKSUM_BYTES} : c;`)
  src.push(`function size(values, checksum) {\n${lines.join('\n')}\n}`)
  return src.compile<SizeFunction>('size')
}

export function sizeFunctions(layout: MessageLayout): { exact: SizeFunction; bound: SizeFunction } {
  return { exact: sizeFunction(layout, false), bound: sizeFunction(layout, true) }
}
