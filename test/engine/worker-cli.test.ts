// `tenantflow worker` runs pipelines without an HTTP server, next to an API process on the same
// store, and stops cleanly on SIGTERM.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { backendNames, testEnv } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { PRICE_SUMMARY_TEMPLATE, writeTemplates } from './fixtures.js'

const templateDir = writeTemplates({ 'cli/local/prices.yml': PRICE_SUMMARY_TEMPLATE })

for (const backend of backendNames()) {
  describe(`tenantflow worker (${backend})`, () => {
    test('a separate worker process runs a run admitted by the API process, then exits on SIGTERM', async () => {
      // The API process here runs no workers (the test app never starts the engine).
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
      let worker: ReturnType<typeof spawn> | null = null
      try {
        const key = await t.onboard('cli-co')
        const trig = await t.app.inject({
          method: 'POST',
          url: '/api/v1/pipelines/run/cli-co/cli/local/prices',
          headers: t.org(key),
          payload: { parameters: { n: 1 } },
        })
        assert.equal(trig.statusCode, 202, trig.body)
        const runId = trig.json().run_id as string
        const env = { ...process.env, ...testEnv(t.backend, { LOG_LEVEL: 'warn', PIPELINE_CONFIG_DIRS: templateDir, WORKER_POLL_MS: '100', SCHEDULER_ENABLED: 'false' }) }
        worker = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], { env, stdio: ['ignore', 'ignore', 'inherit'] })
        // Long-poll (?wait=) rather than tight polling: a slow worker start must not exhaust the rate limit.
        const deadline = Date.now() + 90_000
        let status = 'PENDING'
        while (Date.now() < deadline) {
          const res = await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/cli-co/runs/${runId}?wait=10&since=${status}`, headers: t.org(key) })
          assert.equal(res.statusCode, 200, res.body)
          status = res.json().status
          if (status !== 'PENDING' && status !== 'RUNNING') break
        }
        assert.equal(status, 'COMPLETED')
        const rows = await t.app.inject({ method: 'GET', url: '/api/v1/data/cli-co/tables/price_summary/rows', headers: t.org(key) })
        assert.equal(rows.statusCode, 200)
        assert.ok(rows.json().rows.length >= 1)
        const quota = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/cli-co/quota', headers: t.org(key) })
        assert.deepEqual([quota.json().concurrent.running, quota.json().succeeded_today], [0, 1])
        worker.kill('SIGTERM')
        const [code] = await once(worker, 'exit')
        assert.equal(code, 0)
      } finally {
        if (worker && worker.exitCode === null) worker.kill('SIGKILL')
        await t.close()
      }
    })
  })
}
