// Fuzz-style sweep generated from the live route table: for every route, bad percent-encoding,
// over-long parameters and headers, bad query strings and bodies, and malformed HTTP over a raw
// socket (space / NUL in the path, Content-Length with Transfer-Encoding, bad chunks). Every answer
// must be a catalogue problem+json with a request id, never a 5xx, never echoing the input.
// Plus: slow clients get a 408, and connection caps (per IP, total) answer 503 from the catalogue.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { ERROR_CODES } from '../../src/app/errors.js'
import type { RouteInfo } from '../../src/app/server.js'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { concretePath, guardHeaders, pathParams } from '../helpers/routes.js'
import { openRaw, rawRequest, type RawResponse } from '../helpers/raw-http.js'

const MARK = 'FuzzMark7q'
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

interface Answer {
  status: number
  headers: Record<string, unknown>
  body: string
}

function assertProblem(where: string, res: Answer, expect?: { status?: number; code?: string }) {
  // A cap refusal (503 TOO_MANY_CONNECTIONS) is the one non-4xx a test may ask for explicitly.
  const expected = expect?.status ? res.status === expect.status : res.status >= 400 && res.status < 500
  assert.ok(expected, `${where}: expected ${expect?.status ?? 'a 4xx'}, got ${res.status} ${res.body.slice(0, 300)}`)
  assert.match(String(res.headers['content-type'] ?? ''), /^application\/problem\+json/, `${where}: problem+json`)
  const body = JSON.parse(res.body) as { code: string; status: number; request_id: string; title: string; detail: string }
  assert.ok(body.code in ERROR_CODES, `${where}: ${body.code} is a catalogue code`)
  assert.equal(body.status, res.status, `${where}: body status`)
  assert.equal(ERROR_CODES[body.code as keyof typeof ERROR_CODES], res.status, `${where}: the code's status`)
  assert.ok(typeof body.request_id === 'string' && body.request_id.length > 0, `${where}: request id`)
  assert.equal(res.headers['x-request-id'], body.request_id, `${where}: X-Request-ID header matches`)
  assert.equal(res.headers['x-content-type-options'], 'nosniff', `${where}: nosniff`)
  assert.ok(!res.body.includes(MARK), `${where}: the input is not echoed`)
  if (expect?.status) assert.equal(res.status, expect.status, `${where}: status (${body.code})`)
  if (expect?.code) assert.equal(body.code, expect.code, `${where}: code`)
}

function headerLines(h: Record<string, string>): string {
  return Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
}

/** The route's path with its first parameter replaced (or, for a static path, a segment appended). */
function withFirstParam(route: RouteInfo, values: Record<string, string>, replacement: string): string {
  const params = pathParams(route)
  if (params.length === 0) return `${concretePath(route.url, values)}/${replacement}`
  return concretePath(route.url, { ...values, [params[0]!]: replacement })
}

async function listen(t: TestApp): Promise<number> {
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  return (t.app.server.address() as AddressInfo).port
}

for (const backend of backendNames()) {
  describe(`route-table fuzz (${backend})`, () => {
    test('every route answers bad input with a catalogue problem and a request id, never a 5xx', async () => {
      const t = await buildTestApp(backend)
      try {
        const org = t.org(await t.onboard('fuzz-org'))
        const values = { org_slug: 'fuzz-org' }
        const port = await listen(t)
        const routes = t.app.routeTable.filter((r) => r.method !== 'HEAD')
        assert.ok(routes.length >= 30, `the route table has every route (${routes.length})`)
        const seen = new Map<string, number>()
        const note = (code: string) => seen.set(code, (seen.get(code) ?? 0) + 1)

        for (const route of routes) {
          const auth = guardHeaders(route, t.root, org)
          const path = concretePath(route.url, values)
          const head = (extra = '') => `Host: 127.0.0.1\r\n${headerLines(auth)}${extra}Connection: close\r\n\r\n`
          const where = (what: string) => `${route.method} ${route.url} [${what}]`
          const raw = async (what: string, payload: string, expect?: { status?: number; code?: string }) => {
            const res: RawResponse = await rawRequest(port, payload)
            assertProblem(where(what), res, expect)
            note(JSON.parse(res.body).code)
            return res
          }

          // Bad percent-encoding in the path.
          await raw('bad encoding', `${route.method} ${withFirstParam(route, values, `%zz${MARK}`)} HTTP/1.1\r\n${head()}`)
          await raw('bad encoding (lone %)', `${route.method} ${withFirstParam(route, values, `${MARK}%`)} HTTP/1.1\r\n${head()}`)
          // A path parameter over the length limit.
          if (pathParams(route).length > 0) {
            await raw('long param', `${route.method} ${withFirstParam(route, values, MARK + 'a'.repeat(400))} HTTP/1.1\r\n${head()}`, {
              status: 414,
              code: 'URI_TOO_LONG',
            })
          }
          // Headers (and a request line) over 16 KiB; the socket closes after the answer.
          const big = await raw('big header', `${route.method} ${path} HTTP/1.1\r\n${head(`X-Fuzz: ${MARK}${'a'.repeat(17 * 1024)}\r\n`)}`, {
            status: 431,
            code: 'HEADERS_TOO_LARGE',
          })
          assert.equal(big.headers.connection, 'close')
          await raw('long url', `${route.method} ${path}?${MARK}=${'a'.repeat(17 * 1024)} HTTP/1.1\r\n${head()}`)
          // Malformed request lines.
          const space = await raw('space in path', `${route.method} ${path}/${MARK} x HTTP/1.1\r\n${head()}`, { status: 400, code: 'MALFORMED_REQUEST' })
          assert.equal(space.headers.connection, 'close')
          await raw('NUL in path', `${route.method} ${path}\u0000${MARK} HTTP/1.1\r\n${head()}`, { status: 400, code: 'MALFORMED_REQUEST' })
          await raw('bad header name', `${route.method} ${path} HTTP/1.1\r\nX Bad${MARK}: 1\r\n${head()}`, { status: 400, code: 'MALFORMED_REQUEST' })
          // Request smuggling shapes and broken chunked bodies (routes that read a body).
          if (BODY_METHODS.has(route.method)) {
            await raw(
              'content-length with transfer-encoding',
              `${route.method} ${path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n${head()}0\r\n\r\n`,
              { status: 400, code: 'MALFORMED_REQUEST' },
            )
            await raw('bad chunk size', `${route.method} ${path} HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n${head()}zz${MARK}\r\n{}\r\n0\r\n\r\n`)
          }

          // Through the framework: bad query strings, bodies and content types.
          const inject = async (what: string, opts: { url?: string; payload?: string; headers?: Record<string, string> }) => {
            const res = await t.app.inject({ method: route.method as 'GET', url: opts.url ?? path, headers: { ...auth, ...opts.headers }, payload: opts.payload })
            assertProblem(where(what), { status: res.statusCode, headers: res.headers, body: res.body })
            note(res.json().code)
          }
          await inject('unknown query field', { url: `${path}?zz_unknown_field=${MARK}` })
          await inject('bad query encoding', { url: `${path}?limit=%zz${MARK}&cursor=%` })
          if (BODY_METHODS.has(route.method)) {
            await inject('broken json', { payload: `{"a": ${MARK}`, headers: { 'content-type': 'application/json' } })
            await inject('wrong content type', { payload: MARK, headers: { 'content-type': 'application/xml' } })
            await inject('oversize body', { payload: `{"a":"${MARK}${'a'.repeat(1100 * 1024)}"}`, headers: { 'content-type': 'application/json' } })
            await inject('array body', { payload: JSON.stringify([MARK]), headers: { 'content-type': 'application/json' } })
          }
        }
        // The sweep reached the framework-level answers it is meant to.
        for (const code of ['INVALID_URL', 'URI_TOO_LONG', 'HEADERS_TOO_LARGE', 'MALFORMED_REQUEST', 'VALIDATION_FAILED', 'INVALID_JSON', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE']) {
          assert.ok(seen.has(code), `the sweep produced ${code} (${[...seen.keys()].join(', ')})`)
        }
        // A bad URL on a guarded route is still rate limited and counted like any request: the server is alive and well.
        const live = await rawRequest(port, 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
        assert.equal(live.status, 200)
      } finally {
        await t.close()
      }
    })
  })
}

describe('slow clients and connection caps', () => {
  test('a client that does not finish its request in time gets a 408 problem and the connection closes', async () => {
    const t = await buildTestApp('sqlite', { env: { HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '1000' } })
    try {
      const port = await listen(t)
      const c = await openRaw(port)
      // Headers never finish: Node's request timeout fires (bounded wait, not a speed assertion).
      const res = await c.exchange('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n', 30_000)
      c.close()
      assertProblem('slow headers', res, { status: 408, code: 'REQUEST_TIMEOUT' })
      assert.equal(res.headers.connection, 'close')
      assert.equal(res.closed, true)
    } finally {
      await t.close()
    }
  })

  test('connections over the per-IP or total cap get a 503 problem; a freed slot admits again', async () => {
    for (const [env, cap] of [
      [{ HTTP_MAX_CONNECTIONS_PER_IP: '2' }, 2],
      [{ HTTP_MAX_CONNECTIONS: '3' }, 3],
    ] as const) {
      const t = await buildTestApp('sqlite', { env })
      const held: Awaited<ReturnType<typeof openRaw>>[] = []
      try {
        const port = await listen(t)
        const keepAlive = 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
        for (let i = 0; i < cap; i++) {
          const c = await openRaw(port)
          assert.equal((await c.exchange(keepAlive)).status, 200, 'an admitted connection works')
          held.push(c)
        }
        const refused = await rawRequest(port, keepAlive)
        assertProblem(`over the cap ${JSON.stringify(env)}`, refused, { status: 503, code: 'TOO_MANY_CONNECTIONS' })
        assert.equal(refused.headers['retry-after'], '1')
        assert.equal(refused.closed, true)
        // The held connections still work; once one closes, a new connection is admitted.
        assert.equal((await held[0]!.exchange(keepAlive)).status, 200)
        held.pop()!.close()
        const deadline = Date.now() + 20_000
        for (;;) {
          const res = await rawRequest(port, keepAlive.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'))
          if (res.status === 200) break
          assert.ok(Date.now() < deadline, 'a freed slot is reused')
          await new Promise((r) => setTimeout(r, 50))
        }
      } finally {
        for (const c of held) c.close()
        await t.close()
      }
    }
  })
})
