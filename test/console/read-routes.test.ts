// The console's read routes on both backends: cost summary (sums match the rows written, window
// bounds, isolation), organizations overview (search with LIKE metacharacters, paging), system
// health and the audit log across orgs.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { openDatasetWriter } from '../../src/core/datasets/index.js'
import { OPENAI_COST_SPEC } from '../../src/core/processors/openai/cost.js'
import { ANTHROPIC_COST_SPEC } from '../../src/core/processors/anthropic/cost.js'

const day = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10)

for (const backend of backendNames()) {
  describe(`console read routes (${backend})`, () => {
    let t: TestApp
    let keyA = ''
    let keyB = ''
    before(async () => {
      t = await buildTestApp(backend)
      keyA = await t.onboard('org-a', 'STARTER', { company_name: 'Alpha 100%_off' })
      keyB = await t.onboard('org-b', 'STARTER', { company_name: 'Beta Corp' })
      for (let i = 0; i < 3; i++) await t.onboard(`org-x${i}`)
    })
    after(async () => t.close())

    test('cost summary sums the cost tables per day and model, inside the window, for the own org only', async () => {
      const empty = await t.app.inject({ url: '/api/v1/data/org-a/cost-summary', headers: t.org(keyA) })
      assert.equal(empty.statusCode, 200, empty.body)
      assert.deepEqual(empty.json().sources, [])
      assert.equal(empty.json().totals.total, 0)
      const w = openDatasetWriter(t.ctx.db, t.ctx.config.dataDir, await t.datasetOf('org-a'))
      await w.ensureTable(OPENAI_COST_SPEC)
      await w.ensureTable(ANTHROPIC_COST_SPEC)
      const o = (n: number, model: string, project: string, cost: number) => ({
        date: day(n), model, project_id: project, input_tokens: 1, cached_tokens: 0, output_tokens: 1, requests: 1,
        input_cost_usd: 0, cached_input_cost_usd: 0, output_cost_usd: 0, total_cost_usd: cost, price_model: model, price_effective_date: day(100),
      })
      const a = (n: number, cost: number) => ({
        date: day(n), model: 'claude', input_tokens: 1, cache_read_input_tokens: 0, cache_creation_tokens: 0, output_tokens: 1,
        input_cost_usd: 0, cache_read_cost_usd: 0, cache_write_cost_usd: 0, output_cost_usd: 0, total_cost_usd: cost, price_model: 'claude', price_effective_date: day(100),
      })
      await w.upsertRows('openai_cost_daily', [o(1, 'gpt-4o', 'p1', 1.5), o(1, 'gpt-4o', 'p2', 2.25), o(2, 'gpt-4o-mini', 'p1', 0.125), o(45, 'gpt-4o', 'p1', 10)])
      await w.upsertRows('anthropic_cost_daily', [a(0, 3), a(29, 4), a(30, 100)])
      const res = await t.app.inject({ url: '/api/v1/data/org-a/cost-summary?days=30', headers: t.org(keyA) })
      assert.equal(res.statusCode, 200, res.body)
      const body = res.json()
      assert.deepEqual(body.sources, ['openai', 'anthropic'])
      assert.equal(body.from, day(29))
      assert.deepEqual(body.totals.by_provider, { openai: 3.875, anthropic: 7 })
      assert.equal(body.totals.total, 10.875)
      const g = body.points.find((p: { date: string; model: string }) => p.date === day(1) && p.model === 'gpt-4o')
      assert.equal(g.cost, 3.75, 'two projects of one model on one day are summed')
      const wide = (await t.app.inject({ url: '/api/v1/data/org-a/cost-summary?days=90', headers: t.org(keyA) })).json()
      assert.deepEqual(wide.totals.by_provider, { openai: 13.875, anthropic: 107 })
      assert.equal((await t.app.inject({ url: '/api/v1/data/org-a/cost-summary?days=91', headers: t.org(keyA) })).statusCode, 400)
      assert.equal((await t.app.inject({ url: '/api/v1/data/org-a/cost-summary', headers: t.org(keyB) })).statusCode, 403)
      assert.deepEqual((await t.app.inject({ url: '/api/v1/data/org-b/cost-summary', headers: t.org(keyB) })).json().sources, [])
    })

    test('organizations overview: search matches slug or company, LIKE metacharacters match themselves, paging', async () => {
      const get = (q: string) => t.app.inject({ url: `/api/v1/admin/overview/organizations${q}`, headers: t.root })
      const pct = (await get('?q=' + encodeURIComponent('100%_'))).json()
      assert.deepEqual(pct.organizations.map((o: { org_slug: string }) => o.org_slug), ['org-a'])
      assert.deepEqual((await get('?q=' + encodeURIComponent('%'))).json().organizations.map((o: { org_slug: string }) => o.org_slug), ['org-a'])
      assert.deepEqual((await get('?q=BETA')).json().organizations.map((o: { org_slug: string }) => o.org_slug), ['org-b'])
      const p1 = (await get('?limit=2')).json()
      assert.equal(p1.organizations.length, 2)
      const p2 = (await get(`?limit=2&cursor=${p1.next_cursor}`)).json()
      assert.ok(p2.organizations[0].org_slug > p1.organizations[1].org_slug)
      assert.equal(p1.organizations[0].runs_today, 0)
      assert.equal(p1.organizations[0].last_run_at, null)
      assert.equal((await t.app.inject({ url: '/api/v1/admin/overview/organizations', headers: t.org(keyA) })).statusCode, 403)
    })

    test('system health and the audit log across orgs (root only)', async () => {
      const sys = await t.app.inject({ url: '/api/v1/admin/system', headers: t.root })
      assert.equal(sys.statusCode, 200, sys.body)
      assert.equal(sys.json().database.ok, true)
      assert.equal(sys.json().kms.ok, true)
      assert.deepEqual(sys.json().queue, { pending: 0, running: 0 })
      const audit = (await t.app.inject({ url: '/api/v1/admin/audit-logs?limit=3', headers: t.root })).json()
      assert.equal(audit.logs.length, 3)
      const rest = (await t.app.inject({ url: `/api/v1/admin/audit-logs?limit=100&cursor=${audit.next_cursor}`, headers: t.root })).json()
      const orgs = new Set([...audit.logs, ...rest.logs].map((l: { org_slug: string }) => l.org_slug))
      assert.ok(orgs.has('org-a') && orgs.has('org-b'))
      assert.equal((await t.app.inject({ url: '/api/v1/admin/audit-logs', headers: t.org(keyA) })).statusCode, 403)
    })
  })
}
