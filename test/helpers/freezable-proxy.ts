// A loopback TCP proxy whose established connections can be frozen: bytes stop flowing both ways but
// no socket is closed, which is what a silently dropped connection (dead peer, NAT timeout) looks like.
import { createConnection, createServer, type Socket } from 'node:net'

export interface FreezableProxy {
  port: number
  /** Stops forwarding on every connection open now; later connections flow normally. */
  freezeOpen(): void
  close(): Promise<void>
}

export async function startFreezableProxy(targetHost: string, targetPort: number): Promise<FreezableProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>()
  const server = createServer((client) => {
    const upstream = createConnection({ host: targetHost, port: targetPort })
    const pair = { client, upstream, frozen: false }
    pairs.add(pair)
    client.on('data', (d) => { if (!pair.frozen) upstream.write(d) })
    upstream.on('data', (d) => { if (!pair.frozen) client.write(d) })
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', () => { if (!pair.frozen) end() })
    upstream.on('close', () => { if (!pair.frozen) end() })
    client.on('error', () => undefined)
    upstream.on('error', () => undefined)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    freezeOpen() {
      for (const p of pairs) p.frozen = true
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy()
        p.upstream.destroy()
      }
      pairs.clear()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
