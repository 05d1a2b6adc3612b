// End to end with org datasets on BigQuery (the local fake): onboarding creates the org's BigQuery
// dataset with its seeded price table, the shipped OpenAI usage+cost pipeline runs through the engine
// against a local OpenAI, the data API reads the rows back from BigQuery, a re-run of the day merges,
// and offboarding deletes the dataset. The system tables stay on SQLite/PostgreSQL.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { bigQueryDatasetOf } from '../../src/core/datasets/identifiers.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { backendNames } from '../helpers/backends.js'
import { fakeBigQueryEnv, startFakeBigQuery, UPSTREAM_DETAIL, type FakeBigQuery } from '../helpers/fake-bigquery.js'
import { json, startUpstream, type Upstream } from '../integrations/fakes.js'

const ADMIN_KEY = 'sk-admin-BigQueryE2E-0123456789abcdef'
const DATE = '2026-11-27'
const START = Date.parse(`${DATE}T00:00:00Z`) / 1000
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'TIMEOUT', 'CANCELLED'])

const result = (model: string, project: string, i: number, o: number, c: number, n: number) => ({
  object: 'organization.usage.completions.result', input_tokens: i, output_tokens: o, input_cached_tokens: c, num_model_requests: n,
  project_id: project, user_id: null, api_key_id: null, model, batch: null,
})

function openai(): Promise<Upstream> {
  return startUpstream((req, res) => {
    if (req.headers.authorization !== `Bearer ${ADMIN_KEY}`) return json(res, 401, { error: { message: 'bad key' } })
    const u = new URL(req.path, 'http://x')
    if (u.pathname === '/v1/models') return json(res, 200, { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created: 1, owned_by: 'system' }] })
    if (u.pathname.startsWith('/v1/organization/users')) return json(res, 200, { object: 'list', data: [], first_id: null, last_id: null, has_more: false })
    if (u.pathname !== '/v1/organization/usage/completions') return json(res, 404, { error: { message: 'not found' } })
    const page = u.searchParams.get('page')
    const results = page ? [result('gpt-4o-mini', 'proj_b', 500, 100, 0, 2)] : [result('gpt-4o-2024-08-06', 'proj_a', 1_000_000, 200_000, 400_000, 50), result('gpt-4o-mini', 'proj_a', 500, 100, 0, 3)]
    json(res, 200, { object: 'page', data: [{ object: 'bucket', start_time: START, end_time: START + 86_400, results }], has_more: !page, next_page: page ? null : 'page_2' })
  })
}

for (const backend of backendNames()) {
  describe(`OpenAI usage+cost pipeline with datasets on BigQuery (system store ${backend})`, () => {
    let fake: FakeBigQuery
    let upstream: Upstream
    let t: TestApp
    let key: string
    before(async () => {
      fake = await startFakeBigQuery()
      upstream = await openai()
      t = await buildTestApp(backend, { env: { ...fakeBigQueryEnv(fake), OPENAI_BASE_URL: upstream.url } })
      t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
      key = await t.onboard('acme-bq')
    })
    after(async () => {
      await t.close()
      await upstream.close()
      await fake.close()
    })

    const get = async (url: string) => {
      const res = await t.app.inject({ method: 'GET', url, headers: t.org(key) })
      assert.equal(res.statusCode, 200, res.body)
      return res.json()
    }
    async function runDay(): Promise<Record<string, unknown>> {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/acme-bq/openai/usage/daily', headers: t.org(key), payload: { parameters: { date: DATE } } })
      assert.equal(res.statusCode, 202, res.body)
      const runId = res.json().run_id as string
      let run: Record<string, unknown> = { status: 'PENDING' }
      // Long-poll on the status; the bound is generous (nothing here depends on speed).
      for (let i = 0; i < 120 && !TERMINAL.has(run.status as string); i++) run = await get(`/api/v1/pipelines/acme-bq/runs/${runId}?wait=30&since=${run.status}`)
      return run
    }

    test('onboarding created the org dataset in BigQuery with the seeded price table', async () => {
      const { datasetId } = await t.datasetOf('acme-bq')
      const d = fake.dataset(bigQueryDatasetOf(datasetId))!
      assert.ok(d, 'the BigQuery dataset exists')
      assert.ok(t.logs.some((l) => l.includes('org datasets on BigQuery: project reachable')), 'the startup probe ran')
      assert.equal(d.labels.tenantflow_org, 'acme-bq')
      assert.ok(d.tables.has('model_prices'))
      assert.equal(existsSync(join(t.ctx.config.dataDir, 'datasets', `${datasetId}.db`)), false, 'no local dataset file')
      const setup = await t.app.inject({ method: 'POST', url: '/api/v1/integrations/acme-bq/openai/setup', headers: t.org(key), payload: { credential: ADMIN_KEY } })
      assert.equal(setup.json().status, 'VALID', setup.body)
    })

    test('the pipeline runs end to end; the data API reads the rows from BigQuery; a re-run of the day merges', async () => {
      const run = await runDay()
      assert.equal(run.status, 'COMPLETED', JSON.stringify(run))
      const tables = (await get('/api/v1/data/acme-bq/tables')).tables as { name: string; row_count: number }[]
      const count = (name: string) => tables.find((x) => x.name === name)?.row_count
      assert.equal(count('openai_usage_daily'), 3)
      assert.equal(count('openai_cost_daily'), 3)
      assert.ok((count('model_prices') ?? 0) > 10)
      const usage = (await get('/api/v1/data/acme-bq/tables/openai_usage_daily/rows?limit=2')) as { rows: Record<string, unknown>[]; next_cursor: string | null }
      assert.equal(usage.rows.length, 2)
      const rest = await get(`/api/v1/data/acme-bq/tables/openai_usage_daily/rows?limit=2&cursor=${usage.next_cursor}`)
      const all = [...usage.rows, ...rest.rows]
      assert.deepEqual(all.map((r) => `${r.model}|${r.project_id}|${r.requests}`).sort(), ['gpt-4o-2024-08-06|proj_a|50', 'gpt-4o-mini|proj_a|3', 'gpt-4o-mini|proj_b|2'])
      const cost = (await get(`/api/v1/data/acme-bq/tables/openai_cost_daily/rows?date_from=${DATE}&date_to=${DATE}`)).rows as Record<string, unknown>[]
      const big = cost.find((r) => r.model === 'gpt-4o-2024-08-06')!
      assert.deepEqual([big.input_cost_usd, big.cached_input_cost_usd, big.output_cost_usd, big.total_cost_usd, big.price_model], [1.5, 0.5, 2, 4, 'gpt-4o'])
      const summary = await get('/api/v1/data/acme-bq/cost-summary?days=90')
      assert.ok(summary.sources.includes('openai'))

      const again = await runDay()
      assert.equal(again.status, 'COMPLETED')
      const after = (await get('/api/v1/data/acme-bq/tables')).tables as { name: string; row_count: number }[]
      assert.equal(after.find((x) => x.name === 'openai_usage_daily')!.row_count, 3, 'the same day twice is one set of rows')
      assert.equal(after.find((x) => x.name === 'openai_cost_daily')!.row_count, 3)

      const { datasetId } = await t.datasetOf('acme-bq')
      const own = bigQueryDatasetOf(datasetId)
      const queries = fake.jobs.filter((j) => j.kind === 'query')
      assert.ok(queries.length > 10)
      assert.ok(queries.every((j) => j.defaultDataset === own && j.maximumBytesBilled && j.jobTimeoutMs))
      assert.ok(fake.jobs.filter((j) => j.kind === 'load').every((j) => j.destination!.startsWith(`${own}.tenantflow_stage_`)))
      assert.ok(queries.every((j) => !j.sql!.includes(DATE) && !j.sql!.includes('proj_a')), 'values only as parameters')
    })

    test('an unreachable warehouse is 503 DATASET_UNAVAILABLE on the data API, without upstream text', async () => {
      fake.fail(1000, { status: 503, reason: 'backendError' })
      try {
        for (const url of ['/api/v1/data/acme-bq/tables/openai_usage_daily/rows', '/api/v1/data/acme-bq/cost-summary']) {
          const res = await t.app.inject({ method: 'GET', url, headers: t.org(key) })
          assert.equal(res.statusCode, 503, res.body)
          assert.equal(res.json().code, 'DATASET_UNAVAILABLE')
          assert.ok(!res.body.includes(UPSTREAM_DETAIL) && !res.body.includes('backendError'))
        }
        const logs = t.logs.join('')
        assert.ok(!logs.includes(UPSTREAM_DETAIL), 'no upstream text in the logs either')
        const pem = (JSON.parse(fake.serviceAccount.json) as { private_key: string }).private_key.split('\n')[1]!
        assert.ok(!logs.includes(pem), 'the service-account key is never logged')
      } finally {
        fake.clearFailures()
      }
    })

    test('offboarding deletes the BigQuery dataset with its contents and records its tables', async () => {
      const { datasetId } = await t.datasetOf('acme-bq')
      const res = await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/acme-bq', headers: t.root, payload: { confirm_org_slug: 'acme-bq' } })
      assert.ok(res.statusCode === 200 || res.statusCode === 202, res.body)
      assert.equal(res.json().dataset_dropped, true)
      assert.equal(res.json().dataset_tables_deleted, 3)
      assert.equal(fake.dataset(bigQueryDatasetOf(datasetId)), undefined)
    })
  })
}
