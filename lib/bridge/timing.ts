/** Small time helpers shared by the bridge's pumps. */
export function elapsedMs(started: number): number {
  return performance.now() - started
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Retry delay: 50 ms doubling per attempt, at most 1 s. */
export function backoff(attempt: number): number {
  return Math.min(1000, 50 * 2 ** Math.min(attempt, 5))
}
