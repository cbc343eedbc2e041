/**
 * ShmqError: every error shmq throws on purpose. Switch on `code`, which is
 * stable; the message says what to do and may change.
 *
 * OS failures keep the errno name as their code (ENOENT, EEXIST, EACCES,
 * ENOSPC, EMFILE, ...); shmq's own failures use ERR_SHMQ_* codes.
 */
export type ShmqErrorCode =
  | 'ERR_SHMQ_INVALID_NAME'
  | 'ERR_SHMQ_INVALID_ARGUMENT'
  | 'ERR_SHMQ_TOO_LARGE'
  | 'ERR_SHMQ_CLOSED'
  | 'ERR_SHMQ_BUSY'
  | 'ERR_SHMQ_PENDING'
  | 'ERR_SHMQ_NOT_SHMQ'
  | 'ERR_SHMQ_VERSION'
  | 'ERR_SHMQ_KIND'
  | 'ERR_SHMQ_TIMEOUT'
  | 'ERR_SHMQ_CORRUPT'
  | 'ERR_SHMQ_NOT_READY'
  | 'ERR_SHMQ_PEER_GONE'
  | 'ERR_SHMQ_UNSUPPORTED'
  | 'ERR_SHMQ_FORMAT'
  | 'ERR_SHMQ_REMOTE'
  | 'ENOENT'
  | 'EEXIST'
  | 'EACCES'
  | 'EPERM'
  | 'ENOSPC'
  | 'ENOMEM'
  | 'EMFILE'
  | 'ENFILE'
  | 'ENAMETOOLONG'
  | 'EINVAL'
  | 'EIO'
  | (string & {})

export class ShmqError extends Error {
  /** Stable machine-readable code: switch on this, not on the message. */
  readonly code: ShmqErrorCode
  /** The segment the failing operation was about, when there was one. */
  readonly segment?: string
  /** The failing system call, for OS errors. */
  readonly syscall?: string
  /** The errno number, for OS errors. */
  readonly errno?: number
  /** ERR_SHMQ_REMOTE: the `code` of the error a request/response handler threw, when it had one. */
  readonly remoteCode?: string

  constructor(code: ShmqErrorCode, message: string, details: { segment?: string; syscall?: string; errno?: number; cause?: unknown; remoteCode?: string } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'ShmqError'
    this.code = code
    if (details.segment !== undefined) this.segment = details.segment
    if (details.syscall !== undefined) this.syscall = details.syscall
    if (details.errno !== undefined) this.errno = details.errno
    if (details.remoteCode !== undefined) this.remoteCode = details.remoteCode
  }
}

/** What to do about an OS error on segment `name`, keyed by errno name. */
function advice(code: string, name: string): string {
  switch (code) {
    case 'ENOENT':
      return `no shmq segment named '${name}': create it first (Producer.create / Consumer.create), or pass { timeout } to open() to wait for it`
    case 'EEXIST':
      return `a segment named '${name}' already exists: open it instead, or call unlink('${name}') if it is left over from a finished run`
    case 'EACCES':
    case 'EPERM':
      return `permission denied for segment '${name}': it belongs to another user or its mode does not let you in (the creator can pass { mode: 0o660 } to share it with its group)`
    case 'ENOSPC':
      return `not enough room in /dev/shm for segment '${name}': free space there, ask for a smaller capacity, or enlarge /dev/shm (containers often default to 64 MB)`
    case 'ENOMEM':
      return `out of memory while mapping segment '${name}': ask for a smaller capacity`
    case 'EMFILE':
    case 'ENFILE':
      return `too many open files while opening segment '${name}': close channels you no longer use, or raise the limit (ulimit -n)`
    default:
      return `system error on segment '${name}'`
  }
}

/** Turns an error thrown by the addon into a ShmqError that says what to do. */
export function fromNative(error: unknown, name: string): ShmqError {
  if (error instanceof ShmqError) return error
  const native = error as { code?: unknown; message?: unknown; syscall?: unknown; errno?: unknown }
  const code = typeof native?.code === 'string' ? native.code : 'EIO'
  const detail = typeof native?.message === 'string' ? native.message : String(error)
  const message = code.startsWith('ERR_SHMQ_') ? detail : `${advice(code, name)} (${detail})`
  return new ShmqError(code, message, {
    segment: name,
    syscall: typeof native?.syscall === 'string' ? native.syscall : undefined,
    errno: typeof native?.errno === 'number' ? native.errno : undefined,
    cause: error,
  })
}
