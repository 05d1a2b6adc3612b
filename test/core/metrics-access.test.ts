// /metrics takes a dedicated scrape token (METRICS_TOKEN) instead of the root key; `tenantflow worker`
// serves health and metrics on WORKER_HTTP_PORT; run counters carry the org label.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../src/app/config.js'
import { startWorker } from '../../src/app/worker.js'
import { backendNames, testEnv } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { PRICE_SUMMARY_TEMPLATE, writeTemplates } from '../engine/fixtures.js'

const TOKEN = 'scrape-token-0123456789-abcdefghijklmnopqrstuvwxyz'
const templateDir = writeTemplates({ 'ops/local/prices.yml': PRICE_SUMMARY_TEMPLATE })

for (const backend of backendNames()) {
  describe(`metrics access (${backend})`, () => {
    test('METRICS_TOKEN reads /metrics without the root key, and nothing else', async () => {
      const t = await buildTestApp(backend, { env: { METRICS_TOKEN: TOKEN } })
      try {
        const ok = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
        assert.equal(ok.statusCode, 200)
        assert.match(ok.body, /tenantflow_http_requests_total/)
        const wrong = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}x` } })
        assert.deepEqual([wrong.statusCode, wrong.json().code, wrong.json().detail], [401, 'INVALID_METRICS_TOKEN', 'Invalid or inactive API key'])
        const basic = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } })
        assert.equal(basic.statusCode, 401)
        assert.equal((await t.app.inject({ method: 'GET', url: '/metrics', headers: t.root })).statusCode, 200, 'the root key still works')
        const admin = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: { authorization: `Bearer ${TOKEN}` } })
        assert.deepEqual([admin.statusCode, admin.json().code], [401, 'MISSING_ROOT_KEY'], 'the token grants /metrics only')
        assert.ok(!t.logs.join('').includes(TOKEN), 'the token never reaches a log line')
      } finally {
        await t.close()
      }
    })

    test('without METRICS_TOKEN a bearer token is refused', async () => {
      const t = await buildTestApp(backend)
      try {
        const res = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
        assert.deepEqual([res.statusCode, res.json().code], [401, 'INVALID_METRICS_TOKEN'])
      } finally {
        await t.close()
      }
    })

    test('tenantflow worker serves /health/live, /health/ready and /metrics (per-org run counter) on WORKER_HTTP_PORT', async () => {
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
      const config = loadConfig(
        testEnv(t.backend, { PIPELINE_CONFIG_DIRS: templateDir, WORKER_POLL_MS: '50', SCHEDULER_ENABLED: 'false', WORKER_HTTP_PORT: '0', METRICS_TOKEN: TOKEN }),
      )
      const worker = await startWorker(config)
      try {
        assert.ok(worker.port && worker.port > 0)
        const base = `http://127.0.0.1:${worker.port}`
        assert.equal((await fetch(`${base}/health/live`)).status, 200)
        const ready = await fetch(`${base}/health/ready`)
        assert.equal(ready.status, 200)
        assert.equal(((await ready.json()) as { status: string }).status, 'ready')
        assert.equal((await fetch(`${base}/api/v1/plans`)).status, 404, 'the worker port serves no API route')
        assert.equal((await fetch(`${base}/metrics`)).status, 401)

        const key = await t.onboard('ops-co')
        const trig = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/ops-co/ops/local/prices', headers: t.org(key), payload: { parameters: { n: 1 } } })
        assert.equal(trig.statusCode, 202, trig.body)
        const runId = trig.json().run_id as string
        const deadline = Date.now() + 30_000
        let status = 'PENDING'
        while (Date.now() < deadline && (status === 'PENDING' || status === 'RUNNING')) {
          await new Promise((r) => setTimeout(r, 50))
          status = (await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/ops-co/runs/${runId}`, headers: t.org(key) })).json().status
        }
        assert.equal(status, 'COMPLETED')
        const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
        assert.equal(metrics.status, 200)
        const text = await metrics.text()
        assert.match(text, /tenantflow_runs_finished_total\{status="COMPLETED",org="ops-co"\} 1/)
        assert.match(text, /tenantflow_process_cpu/, 'process metrics of the worker itself')
      } finally {
        await worker.stop()
        await t.close()
      }
    })
  })
}
