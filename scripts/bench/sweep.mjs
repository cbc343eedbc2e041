// The size-sweep rows of `npm run bench` (scripts/bench.mjs adds them when it writes
// a --report, or when --only names them; `--only sweep` selects all six):
// one-way throughput at 64 B, 1 KiB, 16 KiB, 64 KiB, 256 KiB and 1 MiB, for the
// plot of throughput by message size (scripts/bench/markdown.mjs).
//
// Each point is measured the way the tp64 / tp64k rows measure (the same functions
// of scripts/bench.mjs, other sizes): shmq tryWrite → drain, process.send, a Unix
// socket with length prefixes and 64 KiB batches, the C ring. Consumers touch the
// first and last byte below 4 KiB and copy each message out from 4 KiB up (the C
// ring always copies). IPC sends a printable string below 4 KiB (json) and a Buffer
// from 4 KiB up (advanced), the faster one at each size on this machine, as in
// tp64 and tp64k. Kept short: each point streams for `maxMs` after `warmMs` of
// warm-up, with no count limit that matters.

export const SWEEP_SIZES = [64, 1024, 16384, 65536, 262144, 1048576]

const ID = { 64: 'sweep-64', 1024: 'sweep-1k', 16384: 'sweep-16k', 65536: 'sweep-64k', 262144: 'sweep-256k', 1048576: 'sweep-1m' }

export const sweepId = (size) => ID[size]
export const isSweepRow = (id) => id.startsWith('sweep-')

/** The sweep's limits per point and runs per row. */
export function sweepConfig(quick, runsOverride) {
  return quick ? { runs: runsOverride ?? 1, warmMs: 50, maxMs: 200 } : { runs: runsOverride ?? 3, warmMs: 100, maxMs: 400 }
}

function label(size) {
  if (size >= 1 << 20) return `${size >> 20} MiB`
  if (size >= 1024) return `${size >> 10} KiB`
  return `${size} B`
}

/**
 * ctx: { quick, runsOverride, ipcSerialization(size), shmqThroughput, ipcThroughput, unixThroughput, cThroughput, needShmq, needC }
 * (the throughput functions of scripts/bench.mjs: (size, limits[, ...]) → sample).
 */
export function sweepRows(ctx) {
  const { quick, runsOverride, ipcSerialization, shmqThroughput, ipcThroughput, unixThroughput, cThroughput, needShmq, needC } = ctx
  const { runs, warmMs, maxMs } = sweepConfig(quick, runsOverride)
  return SWEEP_SIZES.map((size) => {
    // enough messages never to end a point before maxMs (50 GB/s at most, 50 M msgs/s at most)
    const count = Math.ceil(Math.min(50e6, 50e9 / size) * (maxMs / 1000))
    const limits = { count, maxMs, warmMs }
    const copy = size >= 4096
    const serialization = ipcSerialization(size)
    return {
      id: sweepId(size),
      title: `size sweep ${label(size)} (${maxMs} ms a point)`,
      kind: 'throughput',
      size,
      primary: copy ? 'gb' : 'msgs',
      runs,
      systems: [
        { id: 'shmq', label: `shmq (tryWrite → drain${copy ? ', copy out' : ''})`, unavailable: needShmq, run: () => shmqThroughput(size, limits, false) },
        { id: 'ipc', label: `child_process IPC (${serialization}, ${serialization === 'json' ? 'string' : 'Buffer'})`, run: () => ipcThroughput(size, limits, serialization) },
        { id: 'unix', label: `Unix socket (net, length-prefixed, 64 KiB batches${copy ? ', copy out' : ''})`, run: () => unixThroughput(size, limits) },
        { id: 'c', label: 'C ring (ring.c, memcpy out)', unavailable: needC, run: () => cThroughput(size, limits) },
      ],
    }
  })
}
