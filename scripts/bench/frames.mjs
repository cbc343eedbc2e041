// Length-prefixed frames on a byte stream: [u32 little-endian length][payload].
// Used by the Unix-socket baseline, written the way a careful Node user would:
// the writer packs many frames into one buffer per socket.write(), the reader
// hands out views into the chunk it got and copies only frames that straddle
// two chunks.

import { Buffer } from 'node:buffer'

export const PREFIX_BYTES = 4

/** Packs frames into batches of about `batchBytes` and writes each batch with one call. */
export class FrameWriter {
  constructor(batchBytes, maxMessage) {
    this.batchBytes = Math.max(batchBytes, PREFIX_BYTES + maxMessage)
    this.batch = Buffer.allocUnsafe(this.batchBytes)
    this.used = 0
  }

  /** Whether a frame with `length` payload bytes fits in the current batch. */
  fits(length) {
    return this.used + PREFIX_BYTES + length <= this.batchBytes
  }

  /** Appends one frame; check fits() first. */
  add(message) {
    const need = PREFIX_BYTES + message.length
    if (this.used + need > this.batchBytes) throw new Error('FrameWriter: flush first')
    this.batch.writeUInt32LE(message.length, this.used)
    this.batch.set(message, this.used + PREFIX_BYTES)
    this.used += need
  }

  /** Takes the packed bytes; a fresh batch buffer is used for what follows (the socket keeps this one). */
  take() {
    const out = this.batch.subarray(0, this.used)
    this.batch = Buffer.allocUnsafe(this.batchBytes)
    this.used = 0
    return out
  }

  get pending() {
    return this.used
  }
}

/** Splits a byte stream into frames; `onMessage(view)` gets a view valid only during the call. */
export class FrameReader {
  constructor(maxMessage, onMessage) {
    this.onMessage = onMessage
    this.partial = Buffer.allocUnsafe(PREFIX_BYTES + maxMessage) // a frame split across chunks
    this.partialBytes = 0
    this.maxMessage = maxMessage
  }

  push(chunk) {
    const n = chunk.length
    let offset = 0
    if (this.partialBytes > 0) {
      offset = this.finishPartial(chunk)
      if (offset < 0) return
    }
    while (n - offset >= PREFIX_BYTES) {
      const length = chunk.readUInt32LE(offset)
      if (length > this.maxMessage) throw new Error(`FrameReader: frame of ${length} bytes`)
      const end = offset + PREFIX_BYTES + length
      if (end > n) break
      this.onMessage(chunk.subarray(offset + PREFIX_BYTES, end))
      offset = end
    }
    if (offset < n) {
      chunk.copy(this.partial, 0, offset, n)
      this.partialBytes = n - offset
    }
  }

  /** Completes the split frame from the start of `chunk`; returns the offset after it, or -1 if still incomplete. */
  finishPartial(chunk) {
    let offset = 0
    if (this.partialBytes < PREFIX_BYTES) {
      const take = Math.min(PREFIX_BYTES - this.partialBytes, chunk.length)
      chunk.copy(this.partial, this.partialBytes, 0, take)
      this.partialBytes += take
      offset = take
      if (this.partialBytes < PREFIX_BYTES) return -1
    }
    const length = this.partial.readUInt32LE(0)
    if (length > this.maxMessage) throw new Error(`FrameReader: frame of ${length} bytes`)
    const total = PREFIX_BYTES + length
    const take = Math.min(total - this.partialBytes, chunk.length - offset)
    chunk.copy(this.partial, this.partialBytes, offset, offset + take)
    this.partialBytes += take
    offset += take
    if (this.partialBytes < total) return -1
    this.partialBytes = 0
    this.onMessage(this.partial.subarray(PREFIX_BYTES, total))
    return offset
  }
}
