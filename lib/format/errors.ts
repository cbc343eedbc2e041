/** The one error family of lib/format: ERR_SHMQ_FORMAT, saying what was wrong. */
import { ShmqError } from '../errors'

export function formatError(message: string): ShmqError {
  return new ShmqError('ERR_SHMQ_FORMAT', message)
}

export function isFormatError(error: unknown): error is ShmqError {
  return error instanceof ShmqError && error.code === 'ERR_SHMQ_FORMAT'
}
