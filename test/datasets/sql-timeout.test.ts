// Template SQL holds its deadline (issue 8 item 8): a recursive CTE that would run for minutes is
// stopped with QUERY_TIMEOUT near its deadline, and the process keeps serving meanwhile (timers fire
// during the query). Embedded: the query runs in a worker thread terminated at the deadline, from a
// small bounded pool; PostgreSQL: statement_timeout, SQLSTATE 57014 mapped to the same code.
import assert from 'node:assert/strict'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { openDatabase, type Db } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { createDataset, DatasetError, openDatasetWriter } from '../../src/core/datasets/index.js'
import { SQL_WORKERS_MAX, sqlWorkerCount } from '../../src/core/datasets/sql-worker.js'
import { createSqlTransformProcessor, validateSqlTransformConfig } from '../../src/core/processors/generic/sql-transform.js'
import { ProcessorError, type ProcessorContext } from '../../src/core/processors/types.js'
import { backendNames, freshBackend, type TestBackend } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { loadConfig } from '../../src/app/config.js'
import { testEnv } from '../helpers/backends.js'

/** Counts to two billion: minutes of work on either store. */
const ENDLESS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT count(*) AS n FROM c'
const DEADLINE_MS = 300
/** Far above the deadline and far below the query's own run time: "stopped near its deadline". */
const STOPPED_WITHIN_MS = 20_000

const code = (c: string) => (e: unknown) => e instanceof DatasetError && e.code === c

/** Runs `work` while a 10 ms interval ticks; returns how often it ticked and whether a 50 ms timer fired before `work` settled. */
async function whileTicking<T>(work: () => Promise<T>): Promise<{ ticks: number; timerFired: boolean; ms: number; result: PromiseSettledResult<T> }> {
  let ticks = 0
  let timerFired = false
  const interval = setInterval(() => ticks++, 10)
  const timer = setTimeout(() => (timerFired = true), 50)
  const t0 = performance.now()
  const [result] = await Promise.allSettled([work()])
  const ms = performance.now() - t0
  const seen = { ticks, timerFired }
  clearInterval(interval)
  clearTimeout(timer)
  return { ...seen, ms, result }
}

for (const backend of backendNames()) {
  describe(`template SQL deadline (${backend})`, () => {
    let b: TestBackend
    let db: Db
    let datasetId: string
    before(async () => {
      b = await freshBackend(backend)
      db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 8 })
      await migrateToLatest(db)
      datasetId = await createDataset(db, b.dataDir, 'slow-co')
      const w = openDatasetWriter(db, b.dataDir, { orgSlug: 'slow-co', datasetId })
      await w.ensureTable({ name: 'nums', columns: [{ name: 'k', type: 'integer' }], naturalKey: ['k'] })
      await w.upsertRows('nums', [{ k: 1 }, { k: 2 }, { k: 3 }])
    })
    after(async () => {
      await db.close()
      await b.cleanup()
    })
    const writer = (opts: { selectTimeoutMs?: number; signal?: AbortSignal } = {}) =>
      openDatasetWriter(db, b.dataDir, { orgSlug: 'slow-co', datasetId }, {
        selectTimeoutMs: opts.selectTimeoutMs,
        ...(opts.signal ? { fence: { signal: opts.signal } } : {}),
      })

    test('a recursive CTE is stopped with QUERY_TIMEOUT near its deadline while the event loop keeps running', async () => {
      const r = await whileTicking(() => writer({ selectTimeoutMs: DEADLINE_MS }).select(ENDLESS, {}, 10))
      assert.equal(r.result.status, 'rejected')
      assert.ok(code('QUERY_TIMEOUT')((r.result as PromiseRejectedResult).reason), 'QUERY_TIMEOUT')
      assert.ok(r.ms >= DEADLINE_MS - 5, `not stopped before its deadline (${r.ms} ms)`)
      assert.ok(r.ms < STOPPED_WITHIN_MS, `stopped near its deadline (${r.ms} ms)`)
      assert.ok(r.timerFired, 'a 50 ms timer fired while the query ran')
      assert.ok(r.ticks >= 3, `the interval kept ticking during the query (${r.ticks} ticks)`)
    })

    test('after a timeout the next query answers normally', async () => {
      await assert.rejects(writer({ selectTimeoutMs: DEADLINE_MS }).select(ENDLESS, {}, 10), code('QUERY_TIMEOUT'))
      assert.deepEqual(await writer().select('SELECT k FROM nums ORDER BY k', {}, 10), [{ k: 1 }, { k: 2 }, { k: 3 }])
    })

    test('generic.sql_transform fails the step with QUERY_TIMEOUT', async () => {
      const processor = createSqlTransformProcessor()
      const config = validateSqlTransformConfig({
        sql: ENDLESS,
        destination: { name: 'counted', columns: [{ name: 'n', type: 'integer' }], natural_key: ['n'] },
        max_rows: 10,
      })
      const ctx = { parameters: {}, dataset: writer({ selectTimeoutMs: DEADLINE_MS }) } as unknown as ProcessorContext
      await assert.rejects(processor.run(ctx, config), (e: unknown) => e instanceof ProcessorError && e.code === 'QUERY_TIMEOUT' && !e.retryable)
    })

    test('concurrent slow queries each end at their own deadline', async () => {
      const started = performance.now()
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => writer({ selectTimeoutMs: DEADLINE_MS }).select(ENDLESS, {}, 10)))
      assert.ok(results.every((x) => x.status === 'rejected' && code('QUERY_TIMEOUT')(x.reason)))
      assert.ok(performance.now() - started < STOPPED_WITHIN_MS)
      if (backend === 'sqlite') assert.ok(sqlWorkerCount() <= SQL_WORKERS_MAX, 'the worker pool stays bounded')
      assert.deepEqual(await writer().select('SELECT count(*) AS n FROM nums', {}, 10), [{ n: 3 }])
    })

    test('a stopped step stops its query at once', async () => {
      const control = new AbortController()
      const timer = setTimeout(() => control.abort(), 100)
      const r = await whileTicking(() => writer({ selectTimeoutMs: 600_000, signal: control.signal }).select(ENDLESS, {}, 10))
      clearTimeout(timer)
      assert.equal(r.result.status, 'rejected')
      assert.ok((r.result as PromiseRejectedResult).reason instanceof DatasetError)
      assert.ok(r.ms < STOPPED_WITHIN_MS, `stopped with its step (${r.ms} ms)`)
      assert.ok(r.ticks >= 3)
    })
  })
}

for (const backend of backendNames()) {
  describe(`template SQL deadline through a run (${backend})`, () => {
    test('TEMPLATE_SQL_TIMEOUT_MS: the run fails QUERY_TIMEOUT and /health/live answers throughout', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tf-sqltpl-'))
      mkdirSync(join(dir, 'slow', 'sql'), { recursive: true })
      writeFileSync(join(dir, 'slow', 'sql', 'endless.yml'), `description: a query that would run for minutes
steps:
  - id: count
    processor: generic.sql_transform
    config:
      sql: ${ENDLESS}
      destination:
        name: counted
        columns: [{ name: n, type: integer }]
        natural_key: [n]
`)
      const DEADLINE = 3000
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: dir, TEMPLATE_SQL_TIMEOUT_MS: String(DEADLINE) } })
      const delay = monitorEventLoopDelay({ resolution: 10 })
      try {
        const key = await t.onboard('sql-slow')
        t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
        const res = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/sql-slow/slow/sql/endless', headers: t.org(key), payload: {} })
        assert.equal(res.statusCode, 202, res.body)
        const runId = res.json().run_id as string
        delay.enable()
        let answered = 0
        let finished: { status: string; error_code: string | null } | undefined
        const deadline = Date.now() + 120_000
        while (Date.now() < deadline) {
          const health = await t.app.inject({ method: 'GET', url: '/health/live' })
          assert.equal(health.statusCode, 200)
          answered++
          const run = await t.ctx.db.kysely.selectFrom('org_pipeline_runs').select(['status', 'error_code']).where('run_id', '=', runId).executeTakeFirst()
          if (run && run.status !== 'PENDING' && run.status !== 'RUNNING') {
            finished = run
            break
          }
          await new Promise((r) => setTimeout(r, 50))
        }
        delay.disable()
        assert.ok(finished, 'the run finished')
        assert.equal(finished.status, 'FAILED')
        assert.equal(finished.error_code, 'QUERY_TIMEOUT')
        const step = await t.ctx.db.kysely.selectFrom('org_step_logs').select(['status', 'error_code']).where('run_id', '=', runId).executeTakeFirstOrThrow()
        assert.deepEqual(step, { status: 'FAILED', error_code: 'QUERY_TIMEOUT' })
        assert.ok(answered >= 5, `/health/live answered ${answered} times while the query ran`)
        const maxDelayMs = delay.max / 1e6
        assert.ok(maxDelayMs < DEADLINE / 2, `the event loop was never blocked for long (max delay ${maxDelayMs.toFixed(0)} ms)`)
      } finally {
        delay.disable()
        await t.close()
      }
    })
  })
}

describe('TEMPLATE_SQL_TIMEOUT_MS', () => {
  test('is read and validated', async () => {
    const b = await freshBackend('sqlite')
    try {
      assert.equal(loadConfig(testEnv(b)).datasets.sqlTimeoutMs, 60_000)
      assert.equal(loadConfig(testEnv(b, { TEMPLATE_SQL_TIMEOUT_MS: '250' })).datasets.sqlTimeoutMs, 250)
      assert.throws(() => loadConfig(testEnv(b, { TEMPLATE_SQL_TIMEOUT_MS: '5' })), /TEMPLATE_SQL_TIMEOUT_MS/)
    } finally {
      await b.cleanup()
    }
  })
})
