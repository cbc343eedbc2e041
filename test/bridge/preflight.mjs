// npm run test:bridge: the bridge tests run against a real nats-server, never a mock.
import { MISSING, natsServerPath } from './nats-server.mjs'

if (natsServerPath() === null) {
  console.error(MISSING)
  process.exit(1)
}
