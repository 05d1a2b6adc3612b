// What Node's HTTP layer refuses before Fastify sees a request — headers over the limit, a client too
// slow to send its request, malformed HTTP (bad request line, NUL or space in the path, Content-Length
// with Transfer-Encoding, bad chunks) — and connections over the caps. Each is answered on the raw
// socket with a catalogue problem (fresh request id, `Connection: close`), then the socket is closed:
// nothing of the request (path, headers) is echoed or logged.
import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { problem, type ErrorCode } from './errors.js'

/** How long a refused socket may linger after its answer before it is destroyed. */
const LINGER_MS = 2_000

/** Node parser / server error codes → catalogue codes; anything else the parser rejects is MALFORMED_REQUEST. */
const CLIENT_ERROR_CODES: Record<string, ErrorCode> = {
  HPE_HEADER_OVERFLOW: 'HEADERS_TOO_LARGE',
  ERR_HTTP_REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
}

export function clientErrorCode(nodeCode: string | undefined): ErrorCode {
  return (nodeCode && CLIENT_ERROR_CODES[nodeCode]) || 'MALFORMED_REQUEST'
}

/** Writes a complete problem+json response and closes the socket once it is flushed. */
export function writeRawProblem(socket: Socket, code: ErrorCode, headers: Record<string, string> = {}): void {
  const requestId = randomUUID()
  const answer = problem(code, requestId)
  const body = JSON.stringify(answer)
  const status = answer.status
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/problem+json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Request-ID: ${requestId}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    'Connection: close',
  ]
  // Keep reading (and discarding) so the client's FIN is seen and the socket closes; a socket that
  // stopped reading would linger half-open and hold up server.close().
  socket.on('error', () => {})
  socket.on('end', () => socket.destroy())
  socket.resume()
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`)
  setTimeout(() => socket.destroy(), LINGER_MS).unref()
}

interface Log {
  debug(obj: object, msg: string): void
}

/** Fastify's `clientErrorHandler`: a catalogue answer unless the socket is gone or a response is already under way. */
export function makeClientErrorHandler(log: Log) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || socket.destroyed) return
    const code = clientErrorCode(err.code)
    log.debug({ client_error: err.code ?? 'unknown', code }, 'client error answered from the catalogue')
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy()
      return
    }
    writeRawProblem(socket, code)
  }
}

export interface ConnectionCaps {
  /** Open connections for the whole process. */
  total: number
  /** Open connections from one peer address (behind a proxy, the proxy's address). */
  perIp: number
}

/**
 * Caps open connections. A connection over a cap never reaches the HTTP parser: it gets a 503
 * TOO_MANY_CONNECTIONS with Retry-After and is closed. The server's own connection listeners
 * (Node's HTTP parser) are wrapped so they only see admitted sockets.
 */
export function capConnections(server: Server, caps: ConnectionCaps, onRefused?: (reason: 'total' | 'per_ip') => void): void {
  const inner = server.listeners('connection') as ((socket: Socket) => void)[]
  server.removeAllListeners('connection')
  const perIp = new Map<string, number>()
  let total = 0
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? 'unknown'
    const fromIp = perIp.get(ip) ?? 0
    if (total >= caps.total || fromIp >= caps.perIp) {
      onRefused?.(total >= caps.total ? 'total' : 'per_ip')
      writeRawProblem(socket, 'TOO_MANY_CONNECTIONS', { 'Retry-After': '1' })
      return
    }
    total += 1
    perIp.set(ip, fromIp + 1)
    socket.once('close', () => {
      total -= 1
      const left = (perIp.get(ip) ?? 1) - 1
      if (left > 0) perIp.set(ip, left)
      else perIp.delete(ip)
    })
    for (const listener of inner) listener.call(server, socket)
  })
}
