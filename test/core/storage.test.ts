// Migrations under concurrent starts, PostgreSQL partitions, batched last_used_at, health and metrics.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { sql } from 'kysely'
import { backendNames, freshBackend, needsPostgres, testEnv } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { openDatabase } from '../../src/core/db/database.js'
import { listTables } from '../../src/core/db/migrate.js'
import { dropExpiredPartitions, ensurePartitions } from '../../src/core/db/partitions.js'

function runMigrate(env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'migrate'], { env: { ...process.env, ...env }, stdio: 'ignore' })
    child.on('exit', (code) => resolve(code ?? 1))
  })
}

for (const backend of backendNames()) {
  describe(`storage (${backend})`, () => {
    test('three processes migrating at once apply each migration exactly once', async () => {
      const b = await freshBackend(backend)
      try {
        const env = testEnv(b)
        const codes = await Promise.all([runMigrate(env), runMigrate(env), runMigrate(env)])
        assert.deepEqual(codes, [0, 0, 0])
        const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir })
        try {
          const tables = await listTables(db)
          for (const t of ['org_profiles', 'org_api_keys', 'org_pipeline_runs', 'org_step_logs', 'org_audit_logs', 'plans']) assert.ok(tables.includes(t), t)
          const m = await sql<{ n: number }>`SELECT count(*) AS n FROM tenantflow_migrations`.execute(db.kysely)
          const distinct = await sql<{ n: number }>`SELECT count(DISTINCT name) AS n FROM tenantflow_migrations`.execute(db.kysely)
          assert.equal(Number(m.rows[0]!.n), Number(distinct.rows[0]!.n))
          const plans = await db.kysely.selectFrom('plans').selectAll().orderBy('plan_name').execute()
          assert.deepEqual(plans.map((p) => [p.plan_name, p.daily_limit, p.monthly_limit]), [
            ['ENTERPRISE', 999999, 999999],
            ['PROFESSIONAL', 25, 750],
            ['SCALE', 100, 3000],
            ['STARTER', 6, 180],
          ])
        } finally {
          await db.close()
        }
      } finally {
        await b.cleanup()
      }
    })

    test('last_used_at is written in batches, not per request', async () => {
      const t = await buildTestApp(backend, { env: { AUTH_LAST_USED_FLUSH_MS: '600000' } })
      try {
        const key = await t.onboard('used-org')
        for (let i = 0; i < 5; i++) await t.app.inject({ method: 'GET', url: '/api/v1/organizations/used-org/quota', headers: t.org(key) })
        const before = await t.ctx.db.kysely.selectFrom('org_api_keys').select('last_used_at').where('org_slug', '=', 'used-org').executeTakeFirstOrThrow()
        assert.equal(before.last_used_at, null, 'not written per request')
        assert.equal(await t.ctx.auth.flushLastUsed(), 1)
        const info = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/used-org/api-key', headers: t.org(key) })
        assert.ok(info.json().last_used_at)
        assert.equal(t.ctx.auth.lookups, 1, 'one database lookup, the rest from the cache')
      } finally {
        await t.close()
      }
    })

    test('health, readiness and metrics', async () => {
      const t = await buildTestApp(backend)
      try {
        assert.equal((await t.app.inject({ method: 'GET', url: '/health/live' })).json().status, 'alive')
        const ready = await t.app.inject({ method: 'GET', url: '/health/ready' })
        assert.deepEqual(ready.json(), { status: 'ready', checks: { database: true, shutdown: false, rate_limit_store: true }, reasons: [] })
        const metrics = await t.app.inject({ method: 'GET', url: '/metrics', headers: t.root })
        assert.equal(metrics.statusCode, 200)
        assert.match(metrics.body, /tenantflow_http_requests_total/)
        const key = await t.onboard('metrics-org')
        assert.equal((await t.app.inject({ method: 'GET', url: '/metrics', headers: t.org(key) })).statusCode, 403)
        t.ctx.state.shuttingDown = true
        assert.equal((await t.app.inject({ method: 'GET', url: '/health/live' })).statusCode, 503)
        assert.equal((await t.app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 503)
      } finally {
        await t.close()
      }
    })

    test('a route without a guard stops startup', async () => {
      const { buildApp } = await import('../../src/app/server.js')
      const t = await buildTestApp(backend)
      try {
        await assert.rejects(
          buildApp(t.ctx, { routes: [(app) => app.get('/api/v1/unguarded', async () => ({ ok: true }))] }),
          /does not declare a guard/,
        )
      } finally {
        await t.close()
      }
    })
  })
}

describe('PostgreSQL partitions', { skip: needsPostgres() }, () => {
  test('runs and step logs are range-partitioned by date, made ahead, expired ones dropped', async () => {
    const b = await freshBackend('postgres')
    const t = await buildTestApp('postgres', { backend: b })
    try {
      const parts = await sql<{ parent: string; child: string }>`
        SELECT p.relname AS parent, c.relname AS child FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('org_pipeline_runs', 'org_step_logs') ORDER BY 2`.execute(t.ctx.db.kysely)
      const now = new Date()
      const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1))
      const name = (d: Date) => `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`
      const children = parts.rows.map((r) => r.child)
      for (const table of ['org_pipeline_runs', 'org_step_logs']) {
        assert.ok(children.includes(`${table}_p${name(now)}`), `${table} current month`)
        assert.ok(children.includes(`${table}_p${name(next)}`), `${table} next month`)
      }
      const future = Date.UTC(now.getUTCFullYear() + 2, 5, 15)
      const created = await ensurePartitions(t.ctx.db, future, 0)
      assert.ok(created.length >= 2)
      // A partition attached under a name this module did not make is never fed into DROP TABLE.
      const evil = 'x" CASCADE; DROP TABLE org_profiles; --_p200001'
      await sql`CREATE TABLE ${sql.table(evil)} PARTITION OF org_step_logs FOR VALUES FROM ('2000-01-01') TO ('2000-02-01')`.execute(t.ctx.db.kysely)
      const dropped = await dropExpiredPartitions(t.ctx.db, 90, future)
      assert.ok(dropped.includes(`org_pipeline_runs_p${name(now)}`))
      assert.ok(!dropped.includes(evil))
      const profiles = await sql<{ n: number }>`SELECT count(*)::int AS n FROM org_profiles LIMIT 1`.execute(t.ctx.db.kysely)
      assert.ok(profiles.rows[0]!.n >= 0, 'org_profiles still exists')
    } finally {
      await t.close()
      await b.cleanup()
    }
  })
})
