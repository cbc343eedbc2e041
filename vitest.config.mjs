import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // native addons and worker threads do not mix: each test file gets its own process
    pool: 'forks',
    include: ['test/**/*.test.{js,mjs,ts}'],
    testTimeout: 120_000,
    hookTimeout: 30_000,
    // the machine has two cores; cross-process tests each use both
    fileParallelism: false,
  },
})
