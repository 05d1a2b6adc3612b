// An org reads its own audit log (including the decrypt of its credential by its run) and never
// another org's; it reads and replaces its model_prices through the API, validated and bounded.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { backendNames } from '../helpers/backends.js'
import { eventually } from '../engine/fixtures.js'

const DAY = '2026-11-27'

/** A JSON API for generic/http/example: one page of two orders, and a validation endpoint. */
async function ordersApi(token: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.headers.authorization !== `Bearer ${token}`) return res.writeHead(401).end('{}')
    if (req.url === '/v1/me') return res.end('{"ok":true}')
    if (req.url?.startsWith('/v1/orders')) {
      return res.end(JSON.stringify({ data: [
        { id: 'o1', status: 'paid', amount: 10, currency: 'USD', created_at: `${DAY}T10:00:00Z`, customer: { name: 'A' } },
        { id: 'o2', status: 'paid', amount: 5, currency: 'USD', created_at: `${DAY}T11:00:00Z`, customer: { name: 'B' } },
      ], next_cursor: null }))
    }
    res.writeHead(404).end('{}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) }
}

for (const backend of backendNames()) {
  describe(`org audit log and model prices (${backend})`, () => {
    let t: TestApp
    let api: Awaited<ReturnType<typeof ordersApi>>
    let keyA: string
    let keyB: string
    const TOKEN = 'tok_orders_0123456789'
    before(async () => {
      api = await ordersApi(TOKEN)
      t = await buildTestApp(backend)
      keyA = await t.onboard('audit-a')
      keyB = await t.onboard('audit-b')
    })
    after(async () => {
      await t.close()
      await api.close()
    })

    const get = (url: string, headers: Record<string, string>) => t.app.inject({ method: 'GET', url, headers })
    /** The app's own error log lines, so a 500 explains itself in the assertion message. */
    const serverErrors = () => '\n' + t.logs.filter((l) => l.includes('unhandled error')).join('\n').slice(0, 2000)

    test("an org reads its own log, including its run's credential decrypt; never another org's", async () => {
      const setup = await t.app.inject({
        method: 'POST',
        url: '/api/v1/integrations/audit-a/http/setup',
        headers: t.org(keyA),
        payload: { credential: TOKEN, metadata: { base_url: api.url, auth_type: 'bearer', validation_url: `${api.url}/v1/me` } },
      })
      assert.equal(setup.statusCode, 200, setup.body)
      assert.equal(setup.json().status, 'VALID')
      t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
      const trig = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/audit-a/generic/http/example', headers: t.org(keyA), payload: { parameters: { date: DAY } } })
      assert.equal(trig.statusCode, 202, trig.body + serverErrors())
      const runId = trig.json().run_id as string
      const status = await eventually(async () => {
        const s = (await get(`/api/v1/pipelines/audit-a/runs/${runId}`, t.org(keyA))).json().status as string
        return ['PENDING', 'RUNNING'].includes(s) ? undefined : s
      }, 'the run to finish')
      assert.equal(status, 'COMPLETED')

      const decrypts = await get('/api/v1/organizations/audit-a/audit-logs?action=credential.decrypted', t.org(keyA))
      assert.equal(decrypts.statusCode, 200, decrypts.body)
      const entry = decrypts.json().logs.find((l: { details: { run_id?: string } }) => l.details.run_id === runId)
      assert.ok(entry, 'a decrypt entry for the run')
      assert.equal(entry.action, 'credential.decrypted')
      assert.equal(entry.resource_type, 'integration')
      assert.equal(entry.resource_id, setup.json().credential_id)
      assert.equal(entry.details.provider, 'http')
      assert.ok(!JSON.stringify(decrypts.json()).includes(TOKEN), 'no secret in the log')

      const all = (await get('/api/v1/organizations/audit-a/audit-logs?limit=100', t.org(keyA))).json()
      const actions = new Set(all.logs.map((l: { action: string }) => l.action))
      for (const a of ['org.onboarded', 'credential.decrypted', 'pipeline.triggered']) assert.ok(actions.has(a), `${a} in ${[...actions]}`)

      // Isolation: B cannot read A's log; B's own log holds none of A's entries; the root key reads A's.
      const cross = await get('/api/v1/organizations/audit-a/audit-logs', t.org(keyB))
      assert.equal(cross.statusCode, 403)
      assert.equal(cross.json().code, 'ORG_MISMATCH')
      const own = (await get('/api/v1/organizations/audit-b/audit-logs?limit=100', t.org(keyB))).json()
      const aIds = new Set(all.logs.map((l: { audit_id: string }) => l.audit_id))
      assert.ok(own.logs.length > 0)
      assert.ok(own.logs.every((l: { audit_id: string; details: { run_id?: string } }) => !aIds.has(l.audit_id) && l.details.run_id !== runId))
      assert.equal((await get('/api/v1/organizations/audit-a/audit-logs', t.root)).statusCode, 200)
      assert.equal((await get('/api/v1/organizations/no-such-org/audit-logs', t.root)).json().code, 'ORG_NOT_FOUND')
    })

    test('paged by keyset with a bounded limit; a bad cursor or action is a 400', async () => {
      const seen: string[] = []
      let cursor: string | null = null
      for (let i = 0; i < 50; i++) {
        const res = await get(`/api/v1/organizations/audit-a/audit-logs?limit=2${cursor ? `&cursor=${cursor}` : ''}`, t.org(keyA))
        assert.equal(res.statusCode, 200, res.body + serverErrors())
        const page = res.json()
        assert.ok(page.logs.length <= 2)
        seen.push(...page.logs.map((l: { audit_id: string }) => l.audit_id))
        cursor = page.next_cursor
        if (!cursor) break
      }
      const full = (await get('/api/v1/organizations/audit-a/audit-logs?limit=100', t.org(keyA))).json().logs.map((l: { audit_id: string }) => l.audit_id)
      assert.deepEqual(seen, full, 'pages walk the whole log once, newest first')
      assert.ok(seen.length >= 3)
      for (const q of ['limit=5000', 'limit=0', 'cursor=not*valid', 'action=DROP%20TABLE', 'other=1']) {
        const res = await get(`/api/v1/organizations/audit-a/audit-logs?${q}`, t.org(keyA))
        assert.equal(res.statusCode, 400, q)
      }
      assert.equal((await get('/api/v1/organizations/audit-a/audit-logs?cursor=WzEsMiwzXQ', t.org(keyA))).json().code, 'INVALID_CURSOR')
    })

    test('model prices: read the seeded table, replace it whole, bad input changes nothing', async () => {
      const url = '/api/v1/organizations/audit-a/model-prices'
      const seeded = await get(url, t.org(keyA))
      assert.equal(seeded.statusCode, 200, seeded.body)
      assert.ok(seeded.json().total > 0, 'seeded at onboarding')
      const prices = [
        { provider: 'openai', model: 'gpt-4o', input_per_1m: 2.5, output_per_1m: 10, cached_input_per_1m: 1.25, effective_date: '2026-01-01' },
        { provider: 'anthropic', model: 'claude-x', input_per_1m: 3, output_per_1m: 15, cache_write_5m_per_1m: 3.75, effective_date: '2026-02-01' },
      ]
      const put = await t.app.inject({ method: 'PUT', url, headers: t.org(keyA), payload: { prices } })
      assert.equal(put.statusCode, 200, put.body)
      const stored = put.json()
      assert.equal(stored.total, 2)
      assert.deepEqual(stored.prices[0], { provider: 'anthropic', model: 'claude-x', input_per_1m: 3, output_per_1m: 15, cached_input_per_1m: null, cache_write_5m_per_1m: 3.75, cache_write_1h_per_1m: null, effective_date: '2026-02-01' })
      assert.deepEqual((await get(url, t.org(keyA))).json(), stored)
      // The data API sees the same table; org B's prices are untouched.
      const rows = (await get('/api/v1/data/audit-a/tables/model_prices/rows', t.org(keyA))).json().rows
      assert.equal(rows.length, 2)
      assert.equal((await get('/api/v1/organizations/audit-b/model-prices', t.org(keyB))).json().total, seeded.json().total)

      const bad = [
        { prices: [{ ...prices[0], input_per_1m: -1 }] },
        { prices: [{ ...prices[0], effective_date: '2026-02-30' }] },
        { prices: [prices[0], prices[0]] },
        { prices: [{ ...prices[0], model: "x'; DROP TABLE model_prices; --" }] },
        { prices: [{ ...prices[0], extra: 1 }] },
        { prices: Array.from({ length: 2001 }, (_, i) => ({ ...prices[0], model: `m-${i}` })) },
        {},
      ]
      for (const payload of bad) {
        const res = await t.app.inject({ method: 'PUT', url, headers: t.org(keyA), payload })
        assert.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 80))
        assert.equal(res.json().code, 'VALIDATION_FAILED')
      }
      const dup = await t.app.inject({ method: 'PUT', url, headers: t.org(keyA), payload: bad[2] })
      assert.deepEqual(dup.json().errors.map((e: { path: string }) => e.path), ['body/prices/1'])
      assert.deepEqual((await get(url, t.org(keyA))).json(), stored, 'refused bodies changed nothing')
      assert.equal((await t.app.inject({ method: 'PUT', url, headers: t.org(keyB), payload: { prices } })).statusCode, 403)
      // Replacing with an empty list empties the table; the audit log records each replacement.
      assert.equal((await t.app.inject({ method: 'PUT', url, headers: t.org(keyA), payload: { prices: [] } })).json().total, 0)
      const replaced = (await get('/api/v1/organizations/audit-a/audit-logs?action=model_prices.replaced', t.org(keyA))).json().logs
      assert.deepEqual(replaced.map((l: { details: { rows: number } }) => l.details.rows), [0, 2])
    })
  })
}
