// One conformance suite for the ring protocols: the same cases for every ring
// kind (fixtures/conformance-rings.cjs `kinds`: today spsc) and every pairing
// of publish modes (plain or fenced writer × plain or fenced reader), in-process
// on a SharedArrayBuffer, without the addon. Deterministic cases run in this
// thread; streams run the writer and the reader in two worker threads.
//
// Plain mode across processes relies on the parker's membarrier (lib/fence.ts);
// in-process there is none, so a plain side here fences after its plain store
// with a seq-cst Atomics.exchange on a scratch word (inProcessFence), which is
// the same Dekker guarantee on x64. publish-modes.test.mjs runs the real thing
// across processes.
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)
const { kinds, modes, spec, fillMessage, L } = require('./fixtures/conformance-rings.cjs')
const { frameBytes } = require('../dist/frames.js')

const WORKER = new URL('./fixtures/conformance-worker.cjs', import.meta.url)
const U32 = 2 ** 32

/** A ring of `kind` in `mode` whose positions start at `start`, with wake-up counters on both sides. */
function ring(kind, mode, { capacity = 4096, maxMessage, start = 0 } = {}) {
  const memory = kind.memory(capacity, maxMessage ?? L.maxMessageFor(capacity))
  kind.setPositions(memory, start)
  const wakes = { ofReader: 0, ofWriter: 0 }
  // as the real waker does: take the announcement, then wake
  const writer = kind.writer(memory, () => {
    wakes.ofReader++
    kind.takeAnnouncement(memory, 'reader')
  }, mode.writer)
  const reader = kind.reader(memory, () => {
    wakes.ofWriter++
    kind.takeAnnouncement(memory, 'writer')
  }, mode.reader)
  return { memory, writer, reader, wakes }
}

function bytesOf(length, fill) {
  const message = new Uint8Array(length)
  fillMessage(message, fill, length)
  return message
}

/** Every message waiting, copied, in order (drainRaw), checking each lies inside the ring. */
function readAll(memory, reader, limit = Infinity) {
  const RING = memory.layout.headerBytes
  const out = []
  reader.drainRaw((bytes, offset, length) => {
    expect(bytes).toBe(memory.bytes)
    expect(offset).toBeGreaterThanOrEqual(RING + L.FRAME_HEADER_BYTES)
    expect(offset + length).toBeLessThanOrEqual(RING + memory.capacity)
    out.push(Array.from(bytes.subarray(offset, offset + length)))
  }, limit)
  return out
}

function expectCorrupt(fn) {
  let error
  try {
    fn()
  } catch (caught) {
    error = caught
  }
  expect(error, 'expected ERR_SHMQ_CORRUPT').toBeDefined()
  expect(error.code).toBe('ERR_SHMQ_CORRUPT')
  return error
}

/** Runs one worker per side; the first to fail (or a deadline) stops the others, so a broken ring fails instead of hanging. */
function runWorkers(sides, deadlineMs = 90_000) {
  const workers = []
  const stopAll = () => {
    for (const worker of workers) worker.terminate()
  }
  const timer = setTimeout(stopAll, deadlineMs)
  const results = sides.map(
    (workerData) =>
      new Promise((resolve, reject) => {
        const worker = new Worker(WORKER, { workerData })
        workers.push(worker)
        let result
        worker.once('message', (message) => {
          result = message
          if (!message.ok) stopAll()
        })
        worker.once('error', (error) => {
          stopAll()
          reject(error)
        })
        worker.once('exit', (code) => {
          if (code === 0 && result?.ok) resolve(result)
          else reject(new Error(`${workerData.role} exited with ${code}${result ? `: ${result.error}` : ' (stopped: its peer failed, or the deadline passed)'}`))
        })
      }),
  )
  return Promise.allSettled(results).then((settled) => {
    clearTimeout(timer)
    const failed = settled.filter((s) => s.status === 'rejected').map((s) => s.reason.message)
    if (failed.length > 0) throw new Error(failed.join('\n'))
    return settled.map((s) => s.value)
  })
}

const STREAM_COUNT = 1_000_000

for (const kind of Object.values(kinds)) {
  // where the ring starts: the header of this kind (and, for MPSC, of its producer count)
  const RING = kind.memory(1024).layout.headerBytes
  // cases about a ring whose frames the writer's position publishes (SPSC); MPSC has its own below
  const itWherePositionsPublish = kind.publishesByPosition ? it : () => {}
  for (const [modeName, mode] of Object.entries(modes)) {
    describe(`${kind.name}, ${modeName}`, () => {
      itWherePositionsPublish('claim, commit, shorter commit and abort, at the wrap point (padding) and across the 32-bit wrap', () => {
        const capacity = 4096
        // 48 bytes before the ring's end and 48 bytes before the positions wrap around 2^32
        const start = (U32 - 48) | 0
        const { memory, writer, reader } = ring(kind, mode, { capacity, start })
        expect(start & (capacity - 1)).toBe(capacity - 48)

        // fits before the end: a view right after its frame header
        const first = writer.tryClaim(24)
        expect(first.byteOffset).toBe(RING + capacity - 48 + L.FRAME_HEADER_BYTES)
        first.set(bytesOf(24, 1))
        writer.commit()
        expect(kind.producerPosition(memory)).toBe((start + frameBytes(24)) | 0)

        // 40 more bytes do not fit in the 16 left: the claim's view starts the ring, behind a padding frame
        const claimed = writer.tryClaim(40)
        expect(claimed.byteOffset).toBe(RING + L.FRAME_HEADER_BYTES)
        expect(claimed.length).toBe(40)
        claimed.fill(0xee)
        writer.abort()
        // an aborted claim publishes nothing
        expect(kind.producerPosition(memory)).toBe((start + frameBytes(24)) | 0)
        expect(readAll(memory, reader)).toEqual([Array.from(bytesOf(24, 1))])
        expect(reader.tryRead()).toBeNull()

        // claimed again, committed shorter: 11 of 40 bytes reach the reader, at the ring's start
        const again = writer.tryClaim(40)
        expect(again.byteOffset).toBe(RING + L.FRAME_HEADER_BYTES)
        again.fill(0xee)
        again.set(bytesOf(11, 2))
        writer.commit(11)
        // past the 32-bit wrap: the 16 padding bytes, then the 11-byte frame
        const after = (start + frameBytes(24) + 16 + frameBytes(11)) | 0
        expect(kind.producerPosition(memory)).toBe(after)
        expect(after >>> 0).toBe(frameBytes(11))
        const view = reader.tryRead()
        expect(view.byteOffset).toBe(RING + L.FRAME_HEADER_BYTES)
        expect(Array.from(view)).toEqual(Array.from(bytesOf(11, 2)))
        expect(reader.tryRead()).toBeNull()
        expect(kind.consumerPosition(memory)).toBe(after)

        // a message of exactly the bytes left before the end needs no padding
        const { writer: w2, reader: r2, memory: m2 } = ring(kind, mode, { capacity, start: capacity - 32 })
        expect(w2.tryWrite(bytesOf(24, 3), 24)).toBe(true)
        expect(kind.producerPosition(m2)).toBe(capacity)
        expect(readAll(m2, r2)).toEqual([Array.from(bytesOf(24, 3))])
      })

      it('a full ring refuses (tryWrite false, tryClaim null) until the reader releases room; unread frames are never overwritten', () => {
        const capacity = 1024
        const { memory, writer, reader } = ring(kind, mode, { capacity, start: (U32 - 192) | 0 })
        const sent = []
        for (let i = 0; ; i++) {
          const message = bytesOf(56, i)
          if (!writer.tryWrite(message, 56)) break
          sent.push(Array.from(message))
        }
        // 64-byte frames from a 64-byte-aligned index: the ring holds exactly capacity / 64 of them
        expect(sent.length).toBe(capacity / frameBytes(56))
        expect(writer.hasRoomFor(0)).toBe(false)
        expect(writer.tryClaim(0)).toBeNull()
        expect(writer.fill).toBe(capacity)

        // one message read but not released: still no room
        const view = reader.tryRead()
        expect(Array.from(view)).toEqual(sent[0])
        expect(writer.tryWrite(bytesOf(56, 99), 56)).toBe(false)
        reader.release()
        expect(writer.hasRoomFor(56)).toBe(true)
        expect(writer.tryWrite(bytesOf(56, 99), 56)).toBe(true)
        expect(writer.tryWrite(bytesOf(0, 0), 0)).toBe(false)
        sent.push(Array.from(bytesOf(56, 99)))
        expect(readAll(memory, reader)).toEqual(sent.slice(1))
        expect(writer.fill).toBe(0)
      })

      it('drain and drainRaw honour their limits and hand out offsets inside the ring, also across the wrap', () => {
        const capacity = 1024
        const { memory, writer, reader } = ring(kind, mode, { capacity, start: capacity - 96 })
        const sent = []
        for (let i = 0; i < 12; i++) {
          const message = bytesOf(i * 5, i)
          expect(writer.tryWrite(message, message.length)).toBe(true)
          sent.push(Array.from(message))
        }
        const got = []
        const viewHandler = (view) => {
          expect(view.buffer).toBe(memory.buffer)
          expect(view.byteOffset).toBeGreaterThanOrEqual(RING + L.FRAME_HEADER_BYTES)
          expect(view.byteOffset + view.length).toBeLessThanOrEqual(RING + capacity)
          got.push(Array.from(view))
        }
        expect(reader.drain(viewHandler, 3)).toBe(3)
        expect(reader.drain(viewHandler, 0)).toBe(0)
        expect(got).toEqual(sent.slice(0, 3))
        // drainRaw: (the segment's bytes, offset, length); the offsets of frames 3.. follow each other, with the jump to 0 at the wrap
        const offsets = []
        expect(
          reader.drainRaw((bytes, offset, length) => {
            offsets.push(offset)
            got.push(Array.from(bytes.subarray(offset, offset + length)))
          }, 4),
        ).toBe(4)
        let index = (capacity - 96 + sent.slice(0, 3).reduce((n, m) => n + frameBytes(m.length), 0)) & (capacity - 1)
        const expected = []
        for (let i = 3; i < 7; i++) {
          if (index + frameBytes(sent[i].length) > capacity) index = 0
          expected.push(RING + index + L.FRAME_HEADER_BYTES)
          index += frameBytes(sent[i].length)
        }
        expect(offsets).toEqual(expected)
        expect(expected.some((offset, i) => i > 0 && offset < expected[i - 1])).toBe(true)
        expect(reader.drain(viewHandler, Infinity)).toBe(5)
        expect(got).toEqual(sent)
        expect(reader.drainRaw(() => {}, Infinity)).toBe(0)
      })

      itWherePositionsPublish('corrupt positions, lengths and padding are ERR_SHMQ_CORRUPT, never a view outside the ring', () => {
        const capacity = 1024
        const maxMessage = 200
        const cases = {
          'producer position more than a ring ahead': ({ memory }) => Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), capacity + 8),
          'producer position behind the consumer': ({ memory }) => Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), -8),
          'producer position not 8-byte aligned': ({ memory }) => Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), 20),
          'length above maxMessage': ({ writer, memory }) => {
            writer.tryWrite(bytesOf(8, 1), 8)
            memory.words[RING >> 2] = maxMessage + 1
          },
          'negative length': ({ writer, memory }) => {
            writer.tryWrite(bytesOf(8, 1), 8)
            memory.words[RING >> 2] = -16
          },
          'frame running past the published data': ({ writer, memory }) => {
            writer.tryWrite(bytesOf(8, 1), 8)
            memory.words[RING >> 2] = 100
          },
          'unknown frame type': ({ writer, memory }) => {
            writer.tryWrite(bytesOf(8, 1), 8)
            memory.words[(RING >> 2) + 1] = L.frameTypeWord(7, 0, 1)
          },
          'padding frame of the wrong length, before a valid frame': ({ writer, memory, kind: k }) => {
            // a valid 8-byte message at index 0; a padding frame 16 bytes before the end that claims 64
            writer.tryWrite(bytesOf(8, 1), 8)
            const at = (RING + capacity - 16) >> 2
            memory.words[at] = 64
            memory.words[at + 1] = L.frameTypeWord(L.FRAME_PADDING, 0, 1)
            k.setPositions(memory, capacity - 16)
            Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), capacity + 16)
          },
          'padding frame at the ring start': ({ writer, memory }) => {
            writer.tryWrite(bytesOf(8, 1), 8)
            memory.words[RING >> 2] = 64
            memory.words[(RING >> 2) + 1] = L.frameTypeWord(L.FRAME_PADDING, 0, 1)
          },
          'padding frame that is all there is': ({ writer, memory, kind: k }) => {
            // positions at the ring's last 16 bytes: a padding frame to the end, then nothing published
            writer.tryWrite(bytesOf(8, 1), 8)
            const at = (RING + capacity - 16) >> 2
            memory.words[at] = 8
            memory.words[at + 1] = L.frameTypeWord(L.FRAME_PADDING, 0, 1)
            k.setPositions(memory, capacity - 16)
            Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), capacity)
          },
          'padding, then a frame longer than what was published': ({ writer, memory, kind: k }) => {
            writer.tryWrite(bytesOf(8, 1), 8)
            const at = (RING + capacity - 16) >> 2
            memory.words[at] = 8
            memory.words[at + 1] = L.frameTypeWord(L.FRAME_PADDING, 0, 1)
            memory.words[RING >> 2] = maxMessage
            memory.words[(RING >> 2) + 1] = L.frameTypeWord(L.FRAME_MESSAGE, 0, 1)
            k.setPositions(memory, capacity - 16)
            Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), capacity + 16)
          },
        }
        for (const [what, corruptIt] of Object.entries(cases)) {
          for (const read of ['tryRead', 'drain', 'drainRaw']) {
            const r = ring(kind, mode, { capacity, maxMessage })
            corruptIt({ ...r, kind })
            // the reader is made after the corruption where positions were moved
            const reader = kind.reader(r.memory, () => {}, mode.reader)
            const handed = []
            const error = expectCorrupt(() => {
              if (read === 'tryRead') handed.push(reader.tryRead())
              else if (read === 'drain') reader.drain((view) => handed.push(view), Infinity)
              else reader.drainRaw((_b, offset, length) => handed.push({ byteOffset: offset, length }), Infinity)
            })
            expect(error.message, `${what} (${read})`).toMatch(/corrupt/)
            expect(handed, `${what} (${read})`).toEqual([])
          }
        }
        // the writer checks the consumer position when the ring looks full
        // (producer at 1008 after nine 112-byte frames: a consumer more than a ring behind, ahead of it, unaligned)
        for (const consumer of [8 - capacity, 1016, 4]) {
          const { writer, memory } = ring(kind, mode, { capacity, maxMessage })
          while (writer.tryWrite(bytesOf(100, 0), 100));
          Atomics.store(memory.words, L.word(L.READ_POSITION_OFFSET), consumer)
          expectCorrupt(() => writer.tryWrite(bytesOf(100, 0), 100))
        }
      })

      it('Dekker pair: each side wakes its peer exactly when the peer announced itself in its waiting word', () => {
        const { memory, writer, reader, wakes } = ring(kind, mode, { capacity: 1024 })
        // nobody waiting: publishes call nothing
        expect(writer.tryWrite(bytesOf(8, 1), 8)).toBe(true)
        expect(reader.tryRead()).not.toBeNull()
        reader.release()
        expect(wakes).toEqual({ ofReader: 0, ofWriter: 0 })

        for (const how of [L.WAITING_FUTEX, L.WAITING_EVENT_LOOP]) {
          wakes.ofReader = wakes.ofWriter = 0
          // the reader announced itself: the next write wakes it, once
          kind.announce(memory, 'reader', how)
          expect(writer.tryWrite(bytesOf(8, 2), 8)).toBe(true)
          expect(wakes.ofReader).toBe(1)
          // the waker took the announcement: the next publish calls nothing
          expect(writer.tryWrite(bytesOf(8, 3), 8)).toBe(true)
          expect(wakes.ofReader).toBe(1)
          // a commit wakes it too
          kind.announce(memory, 'reader', how)
          writer.tryClaim(16).fill(1)
          expect(wakes.ofReader).toBe(1)
          writer.commit()
          expect(wakes.ofReader).toBe(2)
          kind.takeAnnouncement(memory, 'reader')
          expect(reader.drain(() => {}, Infinity)).toBe(3)
          expect(wakes.ofWriter).toBe(0)

          // the writer announced itself: the reader's release wakes it, once
          expect(writer.tryWrite(bytesOf(8, 4), 8)).toBe(true)
          kind.announce(memory, 'writer', how)
          expect(reader.tryRead()).not.toBeNull()
          // handed out, not released yet: the writer's room is unchanged, nobody woken
          expect(wakes.ofWriter).toBe(0)
          reader.release()
          expect(wakes.ofWriter).toBe(1)
          reader.release()
          expect(wakes.ofWriter).toBe(1)
          // a drain's batch release wakes it, once
          for (let i = 0; i < 3; i++) writer.tryWrite(bytesOf(8, 5), 8)
          kind.announce(memory, 'writer', how)
          expect(reader.drain(() => {}, Infinity)).toBe(3)
          expect(wakes.ofWriter).toBe(2)
          expect(wakes.ofReader).toBe(2)
        }
        // end() wakes a waiting reader, and only a waiting one
        wakes.ofReader = 0
        kind.announce(memory, 'reader', L.WAITING_FUTEX)
        kind.end(memory, writer)
        expect(wakes.ofReader).toBe(1)
        expect(reader.isReady()).toBe(true)
      })

      it('END_OF_STREAM: a reader that sees the end has every message published before it', () => {
        const { memory, writer, reader } = ring(kind, mode, { capacity: 4096, start: (U32 - 1000) | 0 })
        for (let i = 0; i < 40; i++) expect(writer.tryWrite(bytesOf(i, i), i)).toBe(true)
        expect(reader.ended).toBe(false)
        kind.end(memory, writer)
        expect(reader.isReady()).toBe(true)
        let got = 0
        while (!reader.ended) got += reader.drain(() => {}, 1)
        expect(got).toBe(40)
        expect(reader.tryRead()).toBeNull()
      })

      it(`streams ${STREAM_COUNT.toLocaleString('en')} random-size messages exactly once, in order, across the 32-bit wrap, both sides parking (two threads)`, async () => {
        const capacity = 16384
        const memory = kind.memory(capacity, L.maxMessageFor(capacity))
        // 776 bytes before the ring's end, two rings before the positions wrap around 2^32
        kind.setPositions(memory, (U32 - 2 * capacity - 776) | 0)
        const seed = 0x1234 + Object.keys(modes).indexOf(modeName)
        const common = { kind: kind.name, mode: modeName, buffer: memory.buffer, count: STREAM_COUNT, seed }
        const [sent, received] = await runWorkers([
          { ...common, role: 'stream-writer' },
          { ...common, role: 'stream-reader' },
        ])
        expect(sent.ok, sent.error).toBe(true)
        expect(received.ok, received.error).toBe(true)
        expect(received.firstBad).toBeNull()
        expect(received.bad).toBe(0)
        expect(received.outside).toBe(0)
        expect(received.count).toBe(STREAM_COUNT)
        expect(received.sum).toBe(sent.sum)
        // both sides parked and were woken, and no wake-up was lost
        expect(sent.parks).toBeGreaterThan(0)
        expect(received.parks).toBeGreaterThan(0)
        expect(sent.lost + received.lost).toBe(0)
        console.log(`${kind.name}, ${modeName}: writer parked ${sent.parks} times and woke the reader ${sent.wakes}; reader parked ${received.parks}, woke the writer ${received.wakes}`)
        // the stream crossed the 32-bit wrap (positions are int32)
        const end = kind.producerPosition(memory)
        expect(end).toBeGreaterThan(0)
        expect(kind.consumerPosition(memory)).toBe(end)
        // message spec sanity: every way of publishing was used
        const ops = new Set()
        for (let seq = 0; seq < 2000; seq++) ops.add(spec(seed, seq, memory.maxMessage).op)
        expect(ops.size).toBe(8)
      }, 120_000)

      it('END_OF_STREAM under concurrency: 2000 short streams, the reader checking the end before every message (two threads)', async () => {
        const memory = kind.memory(65536, L.maxMessageFor(65536))
        const control = new SharedArrayBuffer(4)
        const common = { kind: kind.name, mode: modeName, buffer: memory.buffer, rounds: 2000, perRound: 32, control }
        const [writer, reader] = await runWorkers([
          { ...common, role: 'eos-writer' },
          { ...common, role: 'eos-reader' },
        ])
        expect(writer.ok, writer.error).toBe(true)
        expect(reader.ok, reader.error).toBe(true)
        expect(reader.short).toEqual([])
        expect(reader.total).toBe(2000 * 32)
        expect(writer.total).toBe(2000 * 32)
      }, 120_000)
    })
  }
}

// MPSC only: what its commit-by-type-word protocol adds (claims the reader
// sees, dead and stuck claimers, many writers), in every publish mode.
const mpsc = kinds.mpsc
const MPSC_RING = mpsc.memory(1024).layout.headerBytes

/** More polls than the reader makes before it looks into a frame that is not ready (lib/mpsc.ts STALL_POLLS). */
const POLLS = 100

/** tryRead() polled: the first message, or null when POLLS polls found none. */
function pollRead(reader) {
  for (let poll = 0; poll < POLLS; poll++) {
    const view = reader.tryRead()
    if (view !== null) return view
  }
  return null
}

/**
 * The MPSC reader's clock, driven by the test: its liveness grace and claim
 * timeout pass only when the test says so, never because the host paused.
 */
function testClock() {
  const clock = { ms: 0, now: () => clock.ms, advance: (ms) => { clock.ms += ms } }
  return clock
}

function typeAt(memory, position) {
  const word = Atomics.load(memory.words, ((MPSC_RING + (position & (memory.capacity - 1))) >> 2) + 1)
  return { frameType: (word >>> 16) & 0xff, tag: word & 0xffff, slot: word >>> 24 }
}

for (const [modeName, mode] of Object.entries(modes)) {
  describe(`mpsc only, ${modeName}`, () => {
    function mpscRing({ capacity = 4096, start = 0, claimTimeout } = {}) {
      const memory = mpsc.memory(capacity, L.maxMessageFor(capacity))
      mpsc.setPositions(memory, start)
      const writers = [0, 1, 2].map((n) => mpsc.writer(memory, () => {}, mode.writer, L.FIRST_PRODUCER_SLOT + n))
      const clock = testClock()
      const reader = mpsc.reader(memory, () => {}, mode.reader, claimTimeout, clock.now)
      return { memory, writers, reader, clock }
    }

    it('claims take room at once; padding at the ring end, shorter commits and aborts become padding; the head crosses 2^32 with its high word', () => {
      const capacity = 4096
      const start = (U32 - 48) | 0
      const { memory, writers: [w], reader } = mpscRing({ capacity, start })
      const first = w.tryClaim(24)
      expect(first.byteOffset).toBe(MPSC_RING + capacity - 48 + L.FRAME_HEADER_BYTES)
      // claimed, not committed: the tail moved, the reader sees nothing yet
      expect(mpsc.producerPosition(memory)).toBe((start + 32) | 0)
      expect(typeAt(memory, start)).toEqual({ frameType: L.FRAME_CLAIMED, tag: 0, slot: 1 })
      expect(pollRead(reader)).toBeNull()
      first.set(bytesOf(24, 1))
      w.commit(24, 77)
      expect(Array.from(pollRead(reader))).toEqual(Array.from(bytesOf(24, 1)))
      expect(reader.lastType).toBe(77)

      // 40 bytes do not fit in the 16 left: padding to the end, the claim at index 0
      const claimed = w.tryClaim(40)
      expect(claimed.byteOffset).toBe(MPSC_RING + L.FRAME_HEADER_BYTES)
      expect(mpsc.producerPosition(memory)).toBe((start + 32 + 16 + 48) | 0)
      claimed.fill(0xee)
      w.abort()
      expect(pollRead(reader)).toBeNull()
      // claimed after the aborted one; committed shorter: the rest of its claim is padding
      const again = w.tryClaim(40)
      expect(again.byteOffset).toBe(MPSC_RING + 48 + L.FRAME_HEADER_BYTES)
      again.fill(0xee)
      again.set(bytesOf(11, 2))
      w.commit(11, 5)
      expect(w.tryWrite(bytesOf(3, 3), 3, 6)).toBe(true)
      const got = []
      expect(reader.drainRaw((bytes, offset, length, type) => got.push([Array.from(bytes.subarray(offset, offset + length)), type]), Infinity)).toBe(2)
      expect(got).toEqual([
        [Array.from(bytesOf(11, 2)), 5],
        [Array.from(bytesOf(3, 3)), 6],
      ])
      const end = mpsc.producerPosition(memory)
      expect(mpsc.consumerPosition(memory)).toBe(end)
      expect(end >>> 0).toBe(48 + 48 + 16)
      // the head's 64-bit value crossed 2^32: its high word says so; every released byte is zero again
      const high = new Uint32Array(memory.buffer, L.READ_POSITION_OFFSET, 2)[1]
      expect(high).toBe(1)
      expect(memory.bytes.subarray(MPSC_RING, MPSC_RING + capacity).every((b) => b === 0)).toBe(true)
    })

    it('after one producer ended the stream, the padding a reader skips while asking `ended` is released: the producers still writing get their room', () => {
      const capacity = 4096
      const { memory, writers: [closing, writing], reader } = mpscRing({ capacity })
      expect(closing.tryWrite(bytesOf(40, 1), 40)).toBe(true)
      mpsc.end(memory, closing, L.FIRST_PRODUCER_SLOT)
      // the last frame before the tail becomes padding after the reader drained: a claim dropped
      writing.tryClaim(1000)
      expect(reader.drain(() => {}, Infinity)).toBe(1)
      writing.abort()
      // what a consumer asks on each empty poll before it parks
      expect(reader.ended).toBe(false)
      expect(mpsc.consumerPosition(memory)).toBe(mpsc.producerPosition(memory))
      // so a claim of all the room there is succeeds
      expect(writing.hasRoomFor(L.maxMessageFor(capacity))).toBe(true)
      // a view still held is not released by asking
      expect(writing.tryWrite(bytesOf(8, 2), 8)).toBe(true)
      writing.tryClaim(500)
      const view = reader.tryRead()
      writing.abort()
      expect(Array.from(view)).toEqual(Array.from(bytesOf(8, 2)))
      expect(reader.ended).toBe(false)
      expect(Array.from(view)).toEqual(Array.from(bytesOf(8, 2)))
      expect(mpsc.consumerPosition(memory)).not.toBe(mpsc.producerPosition(memory))
      reader.release()
      expect(mpsc.consumerPosition(memory)).toBe(mpsc.producerPosition(memory))
    })

    it('a claim whose producer died is skipped and counted, never delivered; messages claimed after it arrive', () => {
      const { memory, writers: [dying, other], reader, clock } = mpscRing()
      dying.tryClaim(30).fill(0xee)
      expect(other.tryWrite(bytesOf(9, 4), 9)).toBe(true)
      // the head waits for the claim while its producer lives
      expect(pollRead(reader)).toBeNull()
      clock.advance(3)
      expect(pollRead(reader)).toBeNull()
      expect(reader.blockingSlot).toBe(L.FIRST_PRODUCER_SLOT)
      // it dies: the next look skips its claim
      mpsc.detach(memory, L.FIRST_PRODUCER_SLOT)
      expect(Array.from(pollRead(reader))).toEqual(Array.from(bytesOf(9, 4)))
      expect(reader.losses).toEqual({ lostUncommitted: 1, lostRevoked: 0 })
      expect(pollRead(reader)).toBeNull()
      // its slot's claim record was closed: a new producer may take the slot
      expect(Atomics.load(memory.words, L.word(memory.layout.slots[1].claimBytes))).toBe(0)
    })

    it('a producer that died between its tail compare-exchange and its claim marker is found by its claim record (the smallest consistent one wins)', () => {
      const { memory, writers: [, other], reader, clock } = mpscRing()
      const words = memory.words
      const tail = mpsc.producerPosition(memory)
      // slot 1 claimed 24 bytes and died before its marker; slot 4 lost the same compare-exchange (it wanted 112) and died too
      for (const [slot, bytes] of [[1, 24], [4, 112]]) {
        Atomics.store(words, L.word(memory.layout.slots[slot].claimPosition), tail)
        Atomics.store(words, L.word(memory.layout.slots[slot].claimBytes), bytes)
      }
      Atomics.store(words, L.word(L.WRITE_POSITION_OFFSET), tail + 24)
      // a message after it, with bytes that look like a frame header where the loser's claim would end
      const decoy = new Uint8Array(200).fill(0x41)
      expect(other.tryWrite(decoy, 200)).toBe(true)
      mpsc.detach(memory, 1)
      expect(pollRead(reader)).toBeNull()
      clock.advance(3)
      expect(Array.from(pollRead(reader))).toEqual(Array.from(decoy))
      expect(reader.losses.lostUncommitted).toBe(1)
      expect(pollRead(reader)).toBeNull()
    })

    it('a claim held past claimTimeout by a live producer is revoked: later messages arrive, its room is held until it acknowledges, its commit fails', () => {
      const { memory, writers: [stuck, other], reader, clock } = mpscRing({ claimTimeout: 10 })
      const held = mpsc.producerPosition(memory)
      stuck.tryClaim(30).fill(1)
      expect(other.tryWrite(bytesOf(7, 5), 7)).toBe(true)
      expect(pollRead(reader)).toBeNull()
      clock.advance(15)
      expect(reader.isReady()).toBe(true)
      expect(Array.from(pollRead(reader))).toEqual(Array.from(bytesOf(7, 5)))
      expect(reader.losses).toEqual({ lostUncommitted: 0, lostRevoked: 1 })
      expect(typeAt(memory, held).frameType).toBe(L.FRAME_REVOKED)
      reader.release()
      // nothing from the revoked frame on is released: the stuck producer may still be writing there
      expect(mpsc.consumerPosition(memory)).toBe(held)
      let error
      try {
        stuck.commit(30)
      } catch (caught) {
        error = caught
      }
      expect(error?.code).toBe('ERR_SHMQ_TIMEOUT')
      expect(typeAt(memory, held).frameType).toBe(L.FRAME_PADDING)
      expect(pollRead(reader)).toBeNull()
      expect(mpsc.consumerPosition(memory)).toBe(mpsc.producerPosition(memory))
      // and the producer writes on
      expect(stuck.tryWrite(bytesOf(4, 6), 4)).toBe(true)
      expect(Array.from(pollRead(reader))).toEqual(Array.from(bytesOf(4, 6)))
    })

    it('corrupt frames and positions are ERR_SHMQ_CORRUPT, never a view outside the ring', () => {
      const capacity = 1024
      const at = (memory, index) => (MPSC_RING + index) >> 2
      const cases = {
        'length above maxMessage': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0)] = memory.maxMessage + 1
        },
        'negative length': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0)] = -16
        },
        'frame running past the ring end': ({ memory }) => {
          mpsc.setPositions(memory, capacity - 16)
          Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), capacity)
          memory.words[at(memory, capacity - 16)] = 100
          memory.words[at(memory, capacity - 16) + 1] = L.frameTypeWord(L.FRAME_MESSAGE, 0, 1)
        },
        'frame running past the tail': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0)] = 100
        },
        'tail more than a ring ahead of the head': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          Atomics.store(memory.words, L.word(L.WRITE_POSITION_OFFSET), capacity + 16)
        },
        'unknown frame type': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0) + 1] = L.frameTypeWord(9, 0, 1)
        },
        'writer slot out of range': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0) + 1] = L.frameTypeWord(L.FRAME_MESSAGE, 0, 200)
        },
        'padding past the ring end': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0)] = capacity
          memory.words[at(memory, 0) + 1] = L.frameTypeWord(L.FRAME_PADDING, 0, 1)
        },
        'padding of no bytes': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0)] = -8
          memory.words[at(memory, 0) + 1] = L.frameTypeWord(L.FRAME_PADDING, 0, 1)
        },
        'claimed frame naming the consumer slot': ({ memory, writers: [w] }) => {
          w.tryWrite(bytesOf(8, 1), 8)
          memory.words[at(memory, 0) + 1] = L.frameTypeWord(L.FRAME_CLAIMED, 0, 0)
        },
      }
      for (const [what, corruptIt] of Object.entries(cases)) {
        for (const read of ['tryRead', 'drain', 'drainRaw']) {
          const r = mpscRing({ capacity })
          corruptIt(r)
          const reader = mpsc.reader(r.memory, () => {}, mode.reader)
          const handed = []
          const error = expectCorrupt(() => {
            // polled: a frame that is not ready is looked into after STALL_POLLS polls
            for (let poll = 0; poll < POLLS; poll++) {
              if (read === 'tryRead') handed.push(...[reader.tryRead()].filter((view) => view !== null))
              else if (read === 'drain') reader.drain((view) => handed.push(view), Infinity)
              else reader.drainRaw((_b, offset, length) => handed.push({ byteOffset: offset, length }), Infinity)
            }
          })
          expect(error.message, `${what} (${read})`).toMatch(/corrupt/)
          expect(handed, `${what} (${read})`).toEqual([])
        }
      }
      // the producer checks the head when the ring looks full: more than a ring behind, ahead of the tail, unaligned
      for (const head of [8 - capacity, 1016 + 64, 4]) {
        const { writers: [w], memory } = mpscRing({ capacity })
        while (w.tryWrite(bytesOf(100, 0), 100));
        Atomics.store(memory.words, L.word(L.READ_POSITION_OFFSET), head)
        expectCorrupt(() => w.tryWrite(bytesOf(100, 0), 100))
      }
    })

    it(`two writer threads stream ${STREAM_COUNT.toLocaleString('en')} random-size messages, tagged by writer: each writer's exactly once and in order, across the 32-bit wrap, all parking`, async () => {
      const capacity = 16384
      const memory = mpsc.memory(capacity, L.maxMessageFor(capacity))
      mpsc.setPositions(memory, (U32 - 2 * capacity - 776) | 0)
      const seed = 0x5678 + Object.keys(modes).indexOf(modeName)
      const common = { kind: 'mpsc', mode: modeName, buffer: memory.buffer, count: STREAM_COUNT, seed, writers: 2 }
      const [first, second, received] = await runWorkers([
        { ...common, role: 'stream-writer', writerIndex: 0 },
        { ...common, role: 'stream-writer', writerIndex: 1 },
        { ...common, role: 'stream-reader' },
      ])
      expect(received.firstBad).toBeNull()
      expect(received.bad).toBe(0)
      expect(received.outside).toBe(0)
      expect(received.count).toBe(STREAM_COUNT)
      expect(received.sums).toEqual([first.sum, second.sum])
      expect(first.lost + second.lost + received.lost).toBe(0)
      expect(received.parks).toBeGreaterThan(0)
      console.log(`mpsc, ${modeName}: writers parked ${first.parks} and ${second.parks} times; reader parked ${received.parks}, woke writers ${received.wakes}`)
      expect(mpsc.consumerPosition(memory)).toBe(mpsc.producerPosition(memory))
      expect(mpsc.consumerPosition(memory)).toBeGreaterThan(0)
    }, 180_000)
  })
}
