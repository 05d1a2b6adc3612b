// Offboarding an org while one of its runs is in flight (issue 8 items 1 and 2): the run is aborted
// before offboarding returns, the provider is never called again, and when the slug is onboarded
// again, nothing of the old run (rows, tables, idempotency records) reaches the new org.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { backendNames, needsPostgres } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const TOKEN = 'slow-provider-token-0123456789'

/** An orders API whose second page is held until the test releases it: the run stays in flight. */
function slowProvider() {
  const calls: { path: string; at: number }[] = []
  const held: { res: ServerResponse; req: IncomingMessage }[] = []
  let releaseHeld: (() => void) | null = null
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    calls.push({ path: `${url.pathname}${url.search}`, at: Date.now() })
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end()
    if (url.pathname === '/v1/ping') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    const cursor = Number(url.searchParams.get('cursor') ?? '0')
    const page = (n: number, next: string | null) =>
      JSON.stringify({
        data: Array.from({ length: 5 }, (_, i) => ({ id: `old_${n + i}`, status: 'paid', amount: 1, currency: 'USD', created_at: null, customer: null })),
        next_cursor: next,
      })
    if (cursor === 0) return void res.writeHead(200, { 'content-type': 'application/json' }).end(page(0, '5'))
    if (cursor === 5) {
      held.push({ res, req })
      releaseHeld = () => {
        for (const h of held.splice(0)) if (!h.res.destroyed) h.res.writeHead(200, { 'content-type': 'application/json' }).end(page(5, '10'))
      }
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(page(cursor, null))
  })
  return {
    calls,
    held,
    release: () => releaseHeld?.(),
    async start(): Promise<string> {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

for (const backend of backendNames()) {
  describe(`offboarding with a run in flight (${backend})`, () => {
    let t: TestApp
    const provider = slowProvider()
    let base: string
    before(async () => {
      base = await provider.start()
      // A long heartbeat: on today's main the old run would only notice at its next heartbeat.
      t = await buildTestApp(backend, { env: { WORKER_HEARTBEAT_MS: '20000', WORKER_LEASE_MS: '60000', WORKER_POLL_MS: '50' } })
      t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
    })
    after(async () => {
      provider.release()
      await t.close()
      await provider.close()
    })

    const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>, payload?: unknown) =>
      t.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

    const setupCredential = async (key: string) => {
      const res = await inject('POST', '/api/v1/integrations/org-a/http/setup', t.org(key), {
        credential: TOKEN,
        credential_name: 'slow orders API',
        metadata: { auth_type: 'bearer', base_url: base, validation_url: `${base}/v1/ping` },
      })
      assert.equal(res.statusCode, 200, res.body)
    }

    test('the run is aborted at once, calls nothing more, and the re-onboarded org sees none of it', async () => {
      const oldKey = await t.onboard('org-a')
      await setupCredential(oldKey)
      const trigger = await inject('POST', '/api/v1/pipelines/run/org-a/generic/http/example', { ...t.org(oldKey), 'idempotency-key': 'same-key-0001' }, {
        parameters: { date: '2026-11-30' },
      })
      assert.equal(trigger.statusCode, 202, trigger.body)
      const oldRun = trigger.json().run_id as string
      await waitFor('the second page to be in flight', () => provider.held.length === 1)

      const off = await inject('DELETE', '/api/v1/organizations/org-a', t.root, { confirm_org_slug: 'org-a' })
      assert.equal(off.statusCode, 200, off.body)
      const callsAtReturn = provider.calls.length

      // The slug comes back as a new org, with the same Idempotency-Key on its first trigger.
      const newKey = await t.onboard('org-a')
      await setupCredential(newKey)
      const callsAfterSetup = provider.calls.length
      provider.release()
      await waitFor('the old run to leave the worker pool', () => !t.ctx.engine!.workers.activeRunIds().includes(oldRun))

      assert.equal(provider.calls.length - callsAfterSetup, 0, 'no provider call of the old run after offboarding returned')
      assert.equal(callsAfterSetup - callsAtReturn, 1, 'only the new org credential validation (ping) in between')

      const tables = await inject('GET', '/api/v1/data/org-a/tables', t.org(newKey))
      assert.equal(tables.statusCode, 200)
      assert.deepEqual(tables.json().tables.map((x: { name: string }) => x.name), ['model_prices'])
      const rows = await inject('GET', '/api/v1/data/org-a/tables/orders/rows', t.org(newKey))
      assert.equal(rows.statusCode, 404)

      // Item 2: the old org's Idempotency-Key record did not survive; the new org's trigger is its own run.
      const again = await inject('POST', '/api/v1/pipelines/run/org-a/generic/http/example', { ...t.org(newKey), 'idempotency-key': 'same-key-0001' }, {
        parameters: { date: '2026-11-30' },
      })
      assert.equal(again.statusCode, 202, again.body)
      assert.equal(again.headers['idempotent-replayed'], undefined)
      assert.notEqual(again.json().run_id, oldRun)
      const cancel = await inject('POST', `/api/v1/pipelines/${'org-a'}/runs/${again.json().run_id}/cancel`, t.org(newKey))
      assert.ok([200, 202].includes(cancel.statusCode), cancel.body)
      await waitFor('the new run to stop', () => t.ctx.engine!.workers.activeRunIds().length === 0)
    })
  })
}

describe('offboarding on one instance stops the run on another (postgres, LISTEN/NOTIFY)', { skip: needsPostgres() }, () => {
  test('the worker instance aborts the run on the event alone (its heartbeat is far away)', async () => {
    const provider = slowProvider()
    const base = await provider.start()
    // API instance: no workers. Worker instance: same database, a heartbeat that will not come during the test.
    const api = await buildTestApp('postgres')
    const worker = await buildTestApp('postgres', { backend: api.backend, env: { WORKER_HEARTBEAT_MS: '600000', WORKER_LEASE_MS: '3600000', WORKER_POLL_MS: '50' } })
    try {
      worker.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
      const key = await api.onboard('org-x')
      const setup = await api.app.inject({
        method: 'POST',
        url: '/api/v1/integrations/org-x/http/setup',
        headers: api.org(key),
        payload: { credential: TOKEN, credential_name: 'slow orders API', metadata: { auth_type: 'bearer', base_url: base, validation_url: `${base}/v1/ping` } },
      })
      assert.equal(setup.statusCode, 200, setup.body)
      const trig = await api.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/org-x/generic/http/example', headers: api.org(key), payload: { parameters: { date: '2026-11-30' } } })
      assert.equal(trig.statusCode, 202, trig.body)
      const runId = trig.json().run_id as string
      await waitFor('the worker instance to hold the second page in flight', () => provider.held.length === 1 && worker.ctx.engine!.workers.activeRunIds().includes(runId))

      const off = await api.app.inject({ method: 'DELETE', url: '/api/v1/organizations/org-x', headers: api.root, payload: { confirm_org_slug: 'org-x' } })
      assert.equal(off.statusCode, 200, off.body)
      const callsAtReturn = provider.calls.length
      // Nothing but the event can stop it here: the held page is never answered and no heartbeat comes.
      await waitFor('the worker instance to drop the run', () => !worker.ctx.engine!.workers.activeRunIds().includes(runId))
      assert.ok(worker.logs.some((l) => l.includes('its org was offboarded') && l.includes(runId)), 'stopped by the offboarding event')
      await waitFor('the held request to be aborted', () => provider.held[0]!.req.destroyed || provider.held[0]!.res.destroyed)
      provider.release()
      assert.equal(provider.calls.length, callsAtReturn, 'no provider call after offboarding returned')
    } finally {
      provider.release()
      await worker.close()
      await api.close()
      await provider.close()
    }
  })
})
