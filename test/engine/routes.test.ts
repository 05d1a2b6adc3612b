import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { buildApp } from '../../src/app/server.js'
import { pipelineRoutes } from '../../src/app/routers/pipelines.js'
import { schedulerRoutes } from '../../src/app/routers/scheduler.js'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { writeTemplates } from './fixtures.js'

// A template made of a built-in processor with no integration (runs stay PENDING: workers are not started here).
const templateDir = writeTemplates({
  'tests/local/summary.yml': `
description: route test template
parameters:
  date: { type: date, default: yesterday }
  n: { type: integer, min: 0, max: 1000 }
steps:
  - id: summarize
    processor: generic.sql_transform
    config:
      sql: SELECT order_date, COUNT(*) AS orders FROM orders WHERE order_date = :date GROUP BY order_date
      destination:
        name: orders_summary
        columns:
          - { name: order_date, type: date }
          - { name: orders, type: integer }
        natural_key: [order_date]
      max_rows: 100
`,
})

/** The lead registers these routes in server.ts; until then the test mounts them on a second app over the same runtime. */
async function build(backend: 'sqlite' | 'postgres'): Promise<TestApp> {
  const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
  if (t.app.hasRoute({ method: 'GET', url: '/api/v1/pipelines' })) return t
  const app = await buildApp(t.ctx, { routes: [pipelineRoutes, schedulerRoutes] })
  const close = t.close
  return Object.assign(t, { app, close: async () => (await app.close(), await close()) })
}

for (const backend of backendNames()) {
  describe(`pipeline routes (${backend})`, () => {
    test('catalogue, trigger order, dedup, idempotency, quota 429, runs, steps, cancel and org isolation', async () => {
      const t = await build(backend)
      try {
        const alpha = t.org(await t.onboard('alpha'))
        const beta = t.org(await t.onboard('beta'))
        const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>, payload?: unknown) =>
          t.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

        const cat = await inject('GET', '/api/v1/pipelines', alpha)
        assert.equal(cat.statusCode, 200)
        const summary = cat.json().pipelines.find((p: { id: string }) => p.id === 'tests/local/summary')
        assert.ok(summary)
        assert.equal(summary.required_integration, null)
        assert.deepEqual(Object.keys(summary.parameters).sort(), ['date', 'n'])

        const run = (org: string, path: string, body: unknown, headers = alpha) => inject('POST', `/api/v1/pipelines/run/${org}/${path}`, headers, body)
        assert.equal((await run('beta', 'tests/local/summary', {}, alpha)).statusCode, 403)
        const missing = await run('alpha', 'tests/local/nothing', {})
        assert.equal(missing.statusCode, 404)
        assert.equal(missing.json().code, 'TEMPLATE_NOT_FOUND')
        const badParams = await run('alpha', 'tests/local/summary', { parameters: { n: 5000, nope: 'x' } })
        assert.equal(badParams.statusCode, 400)
        assert.equal(badParams.json().code, 'INVALID_PARAMETERS')
        assert.deepEqual(badParams.json().errors.map((e: { path: string }) => e.path).sort(), ['parameters.n', 'parameters.nope'])
        assert.deepEqual(
          Object.fromEntries(badParams.json().errors.map((e: { path: string; message: string }) => [e.path, e.message])),
          { 'parameters.n': 'must be an integer between 0 and 1000', 'parameters.nope': 'is not a parameter of this pipeline' },
        )
        assert.equal(badParams.json().title, 'Pipeline parameters are invalid')
        assert.ok(!badParams.body.includes('5000'), 'submitted values are never echoed')
        const noCred = await run('alpha', 'openai/usage/daily', {})
        assert.equal(noCred.statusCode, 400)
        assert.equal(noCred.json().code, 'INTEGRATION_NOT_CONFIGURED')
        assert.equal((await run('alpha', 'tests/local/summary', { parameters: {}, extra: 1 })).statusCode, 400)

        const first = await run('alpha', 'tests/local/summary', { parameters: { n: 1 } })
        assert.equal(first.statusCode, 202)
        assert.equal(first.json().status, 'PENDING')
        assert.equal(first.json().deduplicated, false)
        const dup = await run('alpha', 'tests/local/summary', { parameters: { n: 1 } })
        assert.equal(dup.statusCode, 200)
        assert.deepEqual(dup.json(), { ...first.json(), deduplicated: true })

        const idem = { ...alpha, 'idempotency-key': 'trigger-key-0001' }
        const i1 = await run('alpha', 'tests/local/summary', { parameters: { n: 2 } }, idem)
        assert.equal(i1.statusCode, 202)
        const i2 = await run('alpha', 'tests/local/summary', { parameters: { n: 2 } }, idem)
        assert.equal(i2.statusCode, 202)
        assert.equal(i2.headers['idempotent-replayed'], 'true')
        assert.deepEqual(i2.json(), i1.json())
        assert.equal((await run('alpha', 'tests/local/summary', { parameters: { n: 3 } }, idem)).statusCode, 409)

        // Racing requests with one key: one admission, every answer identical to it, nothing else admitted.
        const racing = { ...alpha, 'idempotency-key': 'trigger-key-race' }
        const raced = await Promise.all(Array.from({ length: 8 }, () => run('alpha', 'tests/local/summary', { parameters: { n: 4 } }, racing)))
        const runIds = new Set(raced.map((r) => r.json().run_id))
        assert.equal(runIds.size, 1, raced.map((r) => r.body).join('\n'))
        assert.ok(raced.every((r) => r.statusCode === 202), raced.map((r) => r.statusCode).join(','))
        const clash = await Promise.all([
          run('alpha', 'tests/local/summary', { parameters: { n: 5 } }, { ...alpha, 'idempotency-key': 'trigger-key-clash' }),
          run('alpha', 'tests/local/summary', { parameters: { n: 6 } }, { ...alpha, 'idempotency-key': 'trigger-key-clash' }),
        ])
        assert.deepEqual(clash.map((r) => r.statusCode).sort(), [202, 409], 'the loser of a clash is refused and admits nothing')

        // STARTER: 6 runs a day. Four admitted so far (n = 1, 2, 4 and the winner of the clash).
        for (let n = 10; n < 12; n++) assert.equal((await run('alpha', 'tests/local/summary', { parameters: { n } })).statusCode, 202)
        const over = await run('alpha', 'tests/local/summary', { parameters: { n: 99 } })
        assert.equal(over.statusCode, 429)
        assert.equal(over.json().code, 'DAILY_QUOTA_EXCEEDED')
        assert.ok(Number(over.headers['retry-after']) > 0)

        const page1 = await inject('GET', '/api/v1/pipelines/alpha/runs?limit=4', alpha)
        assert.equal(page1.statusCode, 200)
        assert.equal(page1.json().runs.length, 4)
        const page2 = await inject('GET', `/api/v1/pipelines/alpha/runs?limit=4&cursor=${page1.json().next_cursor}`, alpha)
        assert.equal(page2.json().runs.length, 2)
        assert.equal(page2.json().next_cursor, null)
        assert.equal((await inject('GET', '/api/v1/pipelines/alpha/runs?cursor=bm9wZQ', alpha)).statusCode, 400)
        assert.equal((await inject('GET', '/api/v1/pipelines/beta/runs', beta)).json().runs.length, 0)

        const runId = first.json().run_id
        const detail = await inject('GET', `/api/v1/pipelines/alpha/runs/${runId}`, alpha)
        assert.equal(detail.statusCode, 200)
        assert.equal(detail.json().parameters.n, 1)
        assert.equal(detail.json().trigger_type, 'api')
        assert.equal((await inject('GET', `/api/v1/pipelines/alpha/runs/${runId}/steps`, alpha)).json().steps.length, 0)

        // Another org's run id: 404 on detail, steps and cancel (and the org match guard first).
        for (const [method, suffix] of [['GET', ''], ['GET', '/steps'], ['POST', '/cancel']] as const) {
          const r = await inject(method, `/api/v1/pipelines/beta/runs/${runId}${suffix}`, beta)
          assert.equal(r.statusCode, 404, `${method} ${suffix}`)
          assert.equal(r.json().detail, 'Resource not found')
          assert.equal((await inject(method, `/api/v1/pipelines/alpha/runs/${runId}${suffix}`, beta)).statusCode, 403)
        }

        const cancel = await inject('POST', `/api/v1/pipelines/alpha/runs/${runId}/cancel`, alpha)
        assert.equal(cancel.statusCode, 202)
        assert.equal(cancel.json().status, 'CANCELLED')
        assert.equal((await inject('POST', `/api/v1/pipelines/alpha/runs/${runId}/cancel`, alpha)).statusCode, 409)
        const slot = await t.ctx.db.kysely.selectFrom('org_run_slots').select('running').where('org_slug', '=', 'alpha').executeTakeFirst()
        assert.equal(slot!.running, 5)
      } finally {
        await t.close()
      }
    })

    test('schedules: create, validate, list and org-scoped delete', async () => {
      const t = await build(backend)
      try {
        const alpha = t.org(await t.onboard('alpha'))
        const beta = t.org(await t.onboard('beta'))
        const url = '/api/v1/scheduler/alpha/schedules'
        const created = await t.app.inject({ method: 'POST', url, headers: alpha, payload: { pipeline_id: 'tests/local/summary', cron: '0 3 * * *', timezone: 'Europe/Berlin', parameters: { n: 4 } } })
        assert.equal(created.statusCode, 201)
        assert.equal(created.json().is_active, true)
        assert.ok(created.json().next_run_at)
        const badCron = await t.app.inject({ method: 'POST', url, headers: alpha, payload: { pipeline_id: 'tests/local/summary', cron: '61 * * * *' } })
        assert.equal(badCron.statusCode, 400)
        const badTz = await t.app.inject({ method: 'POST', url, headers: alpha, payload: { pipeline_id: 'tests/local/summary', cron: '@daily', timezone: 'Nowhere/Land' } })
        assert.equal(badTz.statusCode, 400)
        const noTpl = await t.app.inject({ method: 'POST', url, headers: alpha, payload: { pipeline_id: 'tests/local/none', cron: '@daily' } })
        assert.equal(noTpl.statusCode, 404)
        const list = await t.app.inject({ method: 'GET', url, headers: alpha })
        assert.equal(list.json().schedules.length, 1)
        assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/scheduler/beta/schedules', headers: beta })).json().schedules.length, 0)
        const id = created.json().schedule_id
        assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/v1/scheduler/beta/schedules/${id}`, headers: beta })).statusCode, 404)
        assert.equal((await t.app.inject({ method: 'DELETE', url: `${url}/${id}`, headers: beta })).statusCode, 403)
        assert.equal((await t.app.inject({ method: 'DELETE', url: `${url}/${id}`, headers: alpha })).statusCode, 200)
        assert.equal((await t.app.inject({ method: 'DELETE', url: `${url}/${id}`, headers: alpha })).statusCode, 404)
      } finally {
        await t.close()
      }
    })
  })
}
