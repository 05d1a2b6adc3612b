// Watching runs: live step progress and results on /steps, ?wait= long-poll, the SSE /events stream
// (order, close, isolation, per-org connection bound). The provider is a local orders API whose second
// page is held until the test releases it, so "mid-step" is a state, not a timing guess.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request, type IncomingMessage, type Server } from 'node:http'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const TOKEN = 'orders-api-token-0123456789'
const DEADLINE_MS = 60_000

/** Orders API: page 1 at once; page 2 only after release(). */
function gatedOrdersApi() {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  let secondPageAsked = false
  const records = (date: string, from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ id: `o${from + i}`, status: 'paid', amount: 1.5, currency: 'USD', created_at: `${date}T01:00:00Z`, customer: { name: 'c' } }))
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end()
    if (url.pathname === '/v1/ping') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    const date = url.searchParams.get('date') ?? '2026-01-01'
    if (!url.searchParams.get('cursor')) {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: records(date, 0, 5), next_cursor: 'p2' }))
    }
    secondPageAsked = true
    void gate.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: records(date, 5, 3), next_cursor: null })))
  })
  return { server, release: () => release(), secondPageAsked: () => secondPageAsked }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>): Promise<T> {
  const end = Date.now() + DEADLINE_MS
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

interface SseEvent {
  event: string
  data: any
}

/** Opens an SSE stream on a listening app; collects events until the server closes it. */
function openStream(base: string, path: string, headers: Record<string, string>) {
  const events: SseEvent[] = []
  const comments: string[] = []
  let status = 0
  let contentType = ''
  let body = ''
  let closed = false
  let resRef: IncomingMessage | null = null
  const done = new Promise<void>((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      resRef = res
      status = res.statusCode ?? 0
      contentType = String(res.headers['content-type'] ?? '')
      res.setEncoding('utf8')
      let buf = ''
      res.on('data', (chunk: string) => {
        body += chunk
        buf += chunk
        let i: number
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          let event = 'message'
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line)
            else if (line.startsWith('event: ')) event = line.slice(7)
            else if (line.startsWith('data: ')) data.push(line.slice(6))
          }
          if (data.length) events.push({ event, data: JSON.parse(data.join('\n')) })
        }
      })
      res.on('end', () => {
        closed = true
        resolve()
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  return {
    events,
    comments,
    done,
    get status() {
      return status
    },
    get contentType() {
      return contentType
    },
    get body() {
      return body
    },
    get closed() {
      return closed
    },
    destroy: () => (resRef as IncomingMessage | null)?.destroy(),
  }
}

async function setup(backend: 'sqlite' | 'postgres', env: Record<string, string> = {}) {
  const t = await buildTestApp(backend, { env: { WORKER_POLL_MS: '50', RUN_WATCH_POLL_MS: '200', ...env } })
  const api = gatedOrdersApi()
  const apiBase = await listen(api.server)
  t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
  const base = await t.app.listen({ port: 0, host: '127.0.0.1' })
  const key = await t.onboard('alpha', 'SCALE')
  const alpha = t.org(key)
  const setupRes = await t.app.inject({
    method: 'POST',
    url: '/api/v1/integrations/alpha/http/setup',
    headers: alpha,
    payload: { credential: TOKEN, metadata: { auth_type: 'bearer', base_url: apiBase, validation_url: `${apiBase}/v1/ping` } },
  })
  assert.ok(setupRes.statusCode < 300, setupRes.body)
  const close = async () => {
    api.release()
    await t.close()
    await new Promise((r) => api.server.close(r))
  }
  return { t, api, base, alpha, close }
}

async function trigger(t: TestApp, headers: Record<string, string>, date = '2026-11-01'): Promise<string> {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/alpha/generic/http/example', headers, payload: { parameters: { date } } })
  assert.equal(r.statusCode, 202, r.body)
  return r.json().run_id
}

for (const backend of backendNames()) {
  describe(`run watching (${backend})`, () => {
    test('progress is visible mid-step, results on /steps, and ?wait= returns on the state change', { timeout: 120_000 }, async () => {
      const s = await setup(backend)
      try {
        const { t, alpha } = s
        const runId = await trigger(t, alpha)
        const steps = (q = '') => t.app.inject({ method: 'GET', url: `/api/v1/pipelines/alpha/runs/${runId}/steps${q}`, headers: alpha })
        // Page 1 is in, page 2 is held: the extract step is RUNNING with progress > 0.
        const live = await until('progress while RUNNING', async () => {
          const r = await steps()
          const ex = r.json().steps.find((x: { step_id: string }) => x.step_id === 'extract')
          return ex && ex.status === 'RUNNING' && ex.rows_processed > 0 ? ex : null
        })
        assert.deepEqual(live.progress, { pages: 1, records: 5 })
        assert.equal(live.rows_processed, 5)
        assert.equal(live.result, null)
        const run = await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/alpha/runs/${runId}`, headers: alpha })
        assert.equal(run.json().status, 'RUNNING')

        // ?wait= with since=RUNNING holds while the run is RUNNING and answers once it leaves it.
        const waiting = t.app.inject({ method: 'GET', url: `/api/v1/pipelines/alpha/runs/${runId}?wait=30&since=RUNNING`, headers: alpha })
        let answered = false
        void waiting.then(() => (answered = true))
        await new Promise((r) => setTimeout(r, 300))
        assert.equal(answered, false, 'the wait holds while the state is unchanged')
        s.api.release()
        const changed = await waiting
        assert.equal(changed.statusCode, 200)
        assert.equal(changed.json().status, 'COMPLETED')

        const done = (await steps()).json().steps
        const ex = done.find((x: { step_id: string }) => x.step_id === 'extract')
        assert.equal(ex.status, 'COMPLETED')
        assert.equal(ex.rows_processed, 8)
        assert.deepEqual(ex.result, { pages: 2, records: 8, table: 'orders' })
        assert.deepEqual(ex.progress, { pages: 2, records: 8 })
        const sum = done.find((x: { step_id: string }) => x.step_id === 'summarize')
        assert.equal(sum.status, 'COMPLETED')
        assert.ok(sum.result && typeof sum.result === 'object')

        // A since that differs from the current state answers at once; another org's run is a 404.
        const atOnce = await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/alpha/runs/${runId}?wait=30&since=PENDING`, headers: alpha })
        assert.equal(atOnce.json().status, 'COMPLETED')
        const beta = t.org(await t.onboard('beta'))
        const other = await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/beta/runs/${runId}?wait=1`, headers: beta })
        assert.equal(other.statusCode, 404)
        const tooLong = await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/alpha/runs/${runId}?wait=31`, headers: alpha })
        assert.equal(tooLong.statusCode, 400)
      } finally {
        await s.close()
      }
    })

    test('SSE: transitions in order, heartbeats, closes at the end; isolation and the per-org bound', { timeout: 120_000 }, async () => {
      const s = await setup(backend, { RUN_EVENTS_MAX_STREAMS_PER_ORG: '2', RUN_EVENTS_HEARTBEAT_MS: '150' })
      try {
        const { t, alpha, base } = s
        const runId = await trigger(t, alpha)
        const path = `/api/v1/pipelines/alpha/runs/${runId}/events`
        const stream = openStream(base, path, alpha)
        await until('the extract step running with progress', async () =>
          stream.events.some((e) => e.event === 'step' && e.data.step_id === 'extract' && e.data.status === 'RUNNING' && e.data.rows_processed > 0),
        )
        assert.equal(stream.status, 200)
        assert.match(stream.contentType, /^text\/event-stream/)
        await until('a heartbeat', async () => stream.comments.length > 0)

        // Bounded per org: one more stream fits, the third is a 429 with its own code.
        const second = openStream(base, path, alpha)
        await until('second stream open', async () => second.status === 200)
        const third = await fetch(`${base}${path}`, { headers: alpha })
        assert.equal(third.status, 429)
        assert.equal((await third.json()).code, 'EVENT_STREAM_LIMIT_EXCEEDED')
        second.destroy()
        await until('slot freed after a client left', async () => {
          const r = await fetch(`${base}${path}`, { headers: { ...alpha, accept: 'text/event-stream' }, signal: AbortSignal.timeout(2000) }).catch(() => null)
          if (!r) return false
          const ok = r.status === 200
          await r.body?.cancel()
          return ok
        })

        // Another org's key cannot open alpha's stream, nor its own path with alpha's run.
        const beta = t.org(await t.onboard('beta'))
        const cross = await fetch(`${base}${path}`, { headers: beta })
        assert.equal(cross.status, 403)
        const own = await fetch(`${base}/api/v1/pipelines/beta/runs/${runId}/events`, { headers: beta })
        assert.equal(own.status, 404)
        const none = await fetch(`${base}${path}`)
        assert.equal(none.status, 401)

        s.api.release()
        await stream.done
        assert.ok(stream.closed)
        const runStatuses = stream.events.filter((e) => e.event === 'run').map((e) => e.data.status)
        assert.equal(runStatuses[runStatuses.length - 1], 'COMPLETED')
        assert.ok(runStatuses.includes('RUNNING'), runStatuses.join(','))
        const order = ['PENDING', 'RUNNING', 'COMPLETED']
        const idx = runStatuses.map((x) => order.indexOf(x))
        assert.deepEqual([...idx].sort((a, b) => a - b), idx, `in order: ${runStatuses.join(',')}`)
        const last = stream.events[stream.events.length - 1]!
        assert.equal(last.event, 'end')
        assert.deepEqual(last.data, { run_id: runId, status: 'COMPLETED' })
        // Steps: extract finished before summarize started; every step event comes before the final run event.
        const stepEvents = stream.events.map((e, i) => ({ ...e, i })).filter((e) => e.event === 'step')
        const exDone = stepEvents.find((e) => e.data.step_id === 'extract' && e.data.status === 'COMPLETED')!
        const sumFirst = stepEvents.find((e) => e.data.step_id === 'summarize')!
        assert.ok(exDone.i < sumFirst.i)
        const finalRun = stream.events.findIndex((e) => e.event === 'run' && e.data.status === 'COMPLETED')
        assert.ok(stepEvents.every((e) => e.i < finalRun))
        assert.ok(!stream.body.includes(TOKEN), 'no secret in the stream')

        // A stream opened on a finished run replays its state and closes at once.
        const after = openStream(base, path, alpha)
        await after.done
        assert.deepEqual(after.events.map((e) => e.event).slice(-2), ['run', 'end'])
      } finally {
        await s.close()
      }
    })
  })
}
