// Failing Redis servers for tests. startSilentRedis: a local TCP server that speaks just enough Redis to
// pass the client's ready check (INFO) and then never answers another command (the "accepts connections
// but stops answering" failure). refusedRedisUrl: a local port that refuses connections.
import { createServer, type Server, type Socket } from 'node:net'

export interface SilentRedis {
  url: string
  /** Commands received (raw), to show the client did talk to it. */
  received: () => number
  close(): Promise<void>
}

const INFO = '# Server\r\nredis_version:7.0.0\r\nloading:0\r\n'

/** One RESP array of bulk strings from the front of `buf`, or null when it is not complete yet. */
function takeCommand(buf: string): { length: number; args: string[] } | null {
  const head = /^\*(\d+)\r\n/.exec(buf)
  if (!head) return null
  let pos = head[0].length
  const args: string[] = []
  for (let i = 0; i < Number(head[1]); i++) {
    const len = /^\$(\d+)\r\n/.exec(buf.slice(pos))
    if (!len) return null
    const start = pos + len[0].length
    const end = start + Number(len[1])
    if (buf.length < end + 2) return null
    args.push(buf.slice(start, end))
    pos = end + 2
  }
  return { length: pos, args }
}

export async function startSilentRedis(): Promise<SilentRedis> {
  const sockets = new Set<Socket>()
  let received = 0
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    let buf = ''
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1')
      for (;;) {
        const cmd = takeCommand(buf)
        if (!cmd) break
        buf = buf.slice(cmd.length)
        received++
        const name = (cmd.args[0] ?? '').toUpperCase()
        // Handshake commands are answered in order (replies are matched by position); the rest never are.
        if (name === 'INFO') socket.write(`$${INFO.length}\r\n${INFO}\r\n`)
        else if (name === 'CLIENT' || name === 'SELECT' || name === 'AUTH' || name === 'HELLO') socket.write('+OK\r\n')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `redis://127.0.0.1:${port}`,
    received: () => received,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * A Redis URL on a local port that refuses connections: a port bound, then closed. (Another process could
 * take the port in between; on a test machine that is negligible.)
 */
export async function refusedRedisUrl(): Promise<{ url: string; port: number }> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return { url: `redis://127.0.0.1:${port}`, port }
}
