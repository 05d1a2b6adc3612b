// Raw HTTP/1.1 over node:net: sends exact bytes (malformed requests included) and parses one response.
import { connect, type Socket } from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** The server closed the connection after the response. */
  closed: boolean
}

export interface RawConnection {
  socket: Socket
  /** Writes bytes and resolves with the next complete response (or what arrived before the close). */
  exchange(payload: string | Buffer, timeoutMs?: number): Promise<RawResponse>
  close(): void
}

function parse(buf: Buffer, closed: boolean): RawResponse | null {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return null
  const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines) {
    const i = l.indexOf(':')
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : null
  const body = buf.subarray(end + 4)
  if (length !== null && body.length < length) return null
  if (length === null && !closed) return null
  return { status: Number(statusLine!.split(' ')[1]), headers, body: body.subarray(0, length ?? body.length).toString('utf8'), closed }
}

export async function openRaw(port: number): Promise<RawConnection> {
  const socket = connect({ port, host: '127.0.0.1' })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  let buf = Buffer.alloc(0)
  let closed = false
  let waiter: (() => void) | null = null
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    waiter?.()
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    closed = true
    waiter?.()
  })
  return {
    socket,
    close: () => socket.destroy(),
    exchange(payload, timeoutMs = 20_000) {
      if (!closed) socket.write(payload)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no response from the server in time')), timeoutMs)
        const check = () => {
          const res = parse(buf, closed)
          if (res) {
            clearTimeout(timer)
            waiter = null
            buf = Buffer.alloc(0)
            // A close right after the response counts as closed.
            setImmediate(() => resolve({ ...res, closed: res.closed || closed || res.headers.connection === 'close' }))
          } else if (closed) {
            clearTimeout(timer)
            waiter = null
            reject(new Error(`connection closed without a complete response (${buf.length} bytes)`))
          }
        }
        waiter = check
        check()
      })
    },
  }
}

/** One request on a fresh connection. */
export async function rawRequest(port: number, payload: string | Buffer, timeoutMs?: number): Promise<RawResponse> {
  const c = await openRaw(port)
  try {
    return await c.exchange(payload, timeoutMs)
  } finally {
    c.close()
  }
}
