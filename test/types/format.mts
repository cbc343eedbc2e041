// Compiled by test/types.test.mjs: the message format's accessors are typed
// from the schema, so a wrong field name or value type fails tsc.
import { checkCompatible, Consumer, defineMessage, messageStats, Producer, type Reader, type Values } from 'shmq'

const OrderV1 = defineMessage({
  name: 'Order',
  id: 7,
  version: 1,
  fields: {
    price: 'f64',
    qty: 'u32',
    ts: 'u64',
    seq: { type: 'u64', as: 'number' },
    live: 'bool',
    side: { type: 'enum', of: 'u8', values: { buy: 1, sell: 2 } },
    symbol: 'string',
    venue: { type: 'char', length: 8 },
    blob: { type: 'bytes', max: 16 },
    pos: { type: 'struct', fields: { x: 'f32', y: 'f32' } },
    legs: { type: 'array', of: { px: 'f64', qty: 'u32' }, max: 16 },
  },
})
const Order = defineMessage({
  name: 'Order',
  id: 7,
  version: 2,
  fields: { ...OrderV1.fields, note: { type: 'string', since: 2, optional: true } },
})
checkCompatible(OrderV1, Order)

const values: Values<typeof Order.fields> = {
  price: 1.5, qty: 1, ts: 1n, seq: 2, live: true, side: 'buy', symbol: 'AAPL', venue: 'XNAS',
  blob: new Uint8Array(2), pos: { x: 1, y: 2 }, legs: [{ px: 1, qty: 2 }],
}
const bytes: Uint8Array = Order.encode(values)
const size: number = Order.sizeOf(values)
const r: Reader<typeof Order.fields> = Order.view(bytes)
const price: number = r.price
const ts: bigint = r.ts
const seq: number = r.seq
const live: boolean = r.live
const side: 'buy' | 'sell' = r.side
const symbol: string = r.symbol
const blob: Uint8Array = r.blob
const x: number = r.pos.x
const px: number = r.legs.get(0).px
const n: number = r.legs.length
const note: string | undefined = r.note
const length: number = r.$length
for (const leg of r.legs) void leg.qty
const decoded = Order.decode(bytes)
const legs: { px: number; qty: number }[] = decoded.legs

const w = Order.writer(new Uint8Array(256))
w.price = 2
w.symbol = 'MSFT'
w.legs = [{ px: 1, qty: 1 }]
w.note = undefined
const written: number = w.length

const producer = Producer.create('types-format')
const accepted: boolean = producer.tryWriteMessage(Order, values)
const later: Promise<void> = producer.writeMessage(Order, values, { checksum: true })
const consumer = Consumer.open('types-format')
const count: number = consumer.drainMessages(Order, (m) => void (m.price + m.legs.get(0).qty), { otherSchema: 'skip', invalid: 'drop' })
const dropped: number = messageStats(consumer).invalid


void [size, price, ts, seq, live, side, symbol, blob, x, px, n, note, length, legs, written, accepted, later, count, dropped, encodeWrong]

function encodeWrong(): void {
  // @ts-expect-error no such field
  void r.prize
  // @ts-expect-error a u64 reads as a bigint
  const wrong: number = r.ts
  // @ts-expect-error price is a number
  w.price = '1.5'
  // @ts-expect-error not one of the enum's names
  w.side = 'hold'
  // @ts-expect-error an optional field may be undefined
  const sure: string = r.note
  // @ts-expect-error qty is required
  Order.encode({ ...values, qty: undefined })
  // @ts-expect-error array elements have the struct's fields
  w.legs = [{ px: 1 }]
  // @ts-expect-error the handler gets a reader of this schema
  consumer.drainMessages(Order, (m) => m.nope)
  // @ts-expect-error values of another schema
  producer.tryWriteMessage(Order, { price: 1 })
  void [wrong, sure]
}
