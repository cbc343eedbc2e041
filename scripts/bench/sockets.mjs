// Unix-socket servers of the benchmark children with several clients
// (broadcast.mjs, work-queue.mjs): listen, accept them all, stop listening.

import net from 'node:net'

/**
 * Listens on `path`, prints LISTENING (the orchestrator starts the clients
 * then), and resolves with the first `count` connections; the server is closed
 * then (which also removes the socket file).
 */
export async function acceptClients(path, count) {
  const server = net.createServer()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, resolve)
  })
  process.stdout.write('LISTENING\n')
  const sockets = await new Promise((resolve) => {
    const accepted = []
    server.on('connection', (socket) => {
      accepted.push(socket)
      if (accepted.length === count) resolve(accepted)
    })
  })
  server.close()
  return sockets
}
