import { defineConfig } from 'vitest/config'

// npm run test:bridge: the NATS bridge against a real nats-server (test/bridge/*.bridge.mjs, outside npm test)
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/bridge/**/*.bridge.mjs'],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
})
