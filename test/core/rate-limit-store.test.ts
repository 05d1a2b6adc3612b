// The shared rate-limit store failing (issue 8 items 9 and 11, issue 9 "Redis unavailable"): a Redis
// that accepts and stays silent, or one that refuses connections, never hangs a request; the failure is logged, readiness says
// "degraded" with the reason, and limits fall back as configured. The PostgreSQL counter table is
// cleaned in bounded batches and a failed creation is retried.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { needsPostgres } from '../helpers/backends.js'
import type { Redis } from 'ioredis'
import { refusedRedisUrl, startSilentRedis } from '../helpers/silent-redis.js'
import { runMaintenance } from '../../src/core/pipelines/maintenance.js'
import { deleteExpiredRateLimitRows } from '../../src/core/db/rate-limit-table.js'

/** Fails (instead of hanging the suite) when a request does not answer within a generous bound. */
async function answers<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} hung`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

async function eventually(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function limitedOrg(t: TestApp, slug: string, perMinute: number): Promise<string> {
  const key = await t.onboard(slug)
  const put = await t.app.inject({ method: 'PUT', url: `/api/v1/organizations/${slug}/subscription`, headers: t.root, payload: { requests_per_minute: perMinute } })
  assert.equal(put.statusCode, 200)
  return key
}

describe('a Redis that accepts connections but never answers', () => {
  test('requests answer, the failure is logged, readiness is degraded, limits hold in memory', async () => {
    const redis = await startSilentRedis()
    const t = await buildTestApp('sqlite', { env: { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '200' } })
    try {
      const key = await limitedOrg(t, 'silent-redis-org', 3)
      // Once the handshake succeeded the client sends commands that are never answered: every request
      // (this public one included, through the per-IP limit) must still answer.
      await eventually(async () => {
        const r = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
        return /timed out/.test(r.json().reasons?.[0] ?? '')
      }, 'a command to time out')
      const url = '/api/v1/organizations/silent-redis-org/quota'
      const codes: number[] = []
      for (let i = 0; i < 5; i++) codes.push((await answers(t.app.inject({ method: 'GET', url, headers: t.org(key) }), 'org request')).statusCode)
      assert.deepEqual(codes, [200, 200, 200, 429, 429], 'the per-org limit still holds (per-process fallback)')
      assert.ok(redis.received() > 0, 'the client did talk to the silent server')

      const health = await answers(t.app.inject({ method: 'GET', url: '/health' }), '/health')
      assert.equal(health.statusCode, 200)
      const ready = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
      assert.equal(ready.statusCode, 200)
      const body = ready.json()
      assert.equal(body.status, 'degraded')
      assert.equal(body.checks.rate_limit_store, false)
      assert.equal(body.reasons.length, 1)
      assert.match(body.reasons[0], /redis/)
      assert.doesNotMatch(body.reasons[0], /127\.0\.0\.1/, 'the reason never names the Redis address')

      const errors = t.logs.map((l) => JSON.parse(l)).filter((l) => l.level === 'error' && /rate-limit store unavailable/.test(l.msg))
      assert.ok(errors.length >= 1, 'an error log line names the failure')
      assert.equal(errors[0].fallback, 'memory')
    } finally {
      await t.close()
      await redis.close()
    }
  })

  test('RATE_LIMIT_STORE_FALLBACK=deny: tenant requests fail closed with 503, health still answers', async () => {
    const redis = await startSilentRedis()
    const t = await buildTestApp('sqlite', { env: { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '200', RATE_LIMIT_STORE_FALLBACK: 'deny' } })
    try {
      // Onboarding uses the root key: admin traffic has no per-org limit, only the per-process ones.
      const key = await t.onboard('deny-org')
      await eventually(async () => {
        const r = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
        return /timed out/.test(r.json().reasons?.[0] ?? '')
      }, 'a command to time out')
      const res = await answers(t.app.inject({ method: 'GET', url: '/api/v1/organizations/deny-org/quota', headers: t.org(key) }), 'org request')
      assert.equal(res.statusCode, 503)
      assert.equal(res.json().code, 'SERVICE_UNAVAILABLE')
      assert.equal(res.json().detail, 'Service unavailable')
      const ready = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
      assert.equal(ready.statusCode, 200)
      assert.equal(ready.json().status, 'degraded')
    } finally {
      await t.close()
      await redis.close()
    }
  })
})

/** Counts the connection errors of the app's Redis client (private: there is no public hook for it). */
function countRedisErrors(t: TestApp): () => number {
  const client = (t.ctx.rateLimits as unknown as { redis: Redis | null }).redis
  assert.ok(client, 'the app uses a Redis client')
  let n = 0
  client.on('error', () => void n++)
  return () => n
}

describe('a Redis that refuses connections while the server runs', () => {
  test('requests answer, one error line without the address, readiness is degraded, limits hold in memory', async () => {
    const redis = await refusedRedisUrl()
    const t = await buildTestApp('sqlite', { env: { REDIS_URL: redis.url } })
    try {
      const errorsSeen = countRedisErrors(t)
      const key = await limitedOrg(t, 'refused-redis-org', 3)
      await eventually(async () => {
        const r = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
        return r.json().status === 'degraded'
      }, 'readiness to report the refused store')
      const url = '/api/v1/organizations/refused-redis-org/quota'
      const codes: number[] = []
      for (let i = 0; i < 5; i++) codes.push((await answers(t.app.inject({ method: 'GET', url, headers: t.org(key) }), 'org request')).statusCode)
      assert.deepEqual(codes, [200, 200, 200, 429, 429], 'the per-org limit still holds (per-process fallback)')
      // The client keeps reconnecting (and failing): the failure is still logged once, not per attempt.
      await eventually(async () => errorsSeen() >= 3, 'several refused reconnects')
      assert.equal((await answers(t.app.inject({ method: 'GET', url, headers: t.org(key) }), 'org request')).statusCode, 429)

      const ready = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
      assert.equal(ready.statusCode, 200)
      const body = ready.json()
      assert.equal(body.status, 'degraded')
      assert.equal(body.checks.rate_limit_store, false)
      assert.equal(body.reasons.length, 1)
      assert.match(body.reasons[0], /^rate-limit store \(redis\): (connection failed|not connected)$/)
      assert.equal((await answers(t.app.inject({ method: 'GET', url: '/health' }), '/health')).statusCode, 200)

      const lines = t.logs.map((l) => JSON.parse(l))
      const errors = lines.filter((l) => l.level === 'error' && /rate-limit store unavailable/.test(l.msg))
      assert.equal(errors.length, 1, 'one error line for the whole outage')
      assert.equal(errors[0].store, 'redis')
      assert.equal(errors[0].fallback, 'memory')
      assert.match(errors[0].reason, /connection failed|not connected/)
      // The driver's error text ("connect ECONNREFUSED 127.0.0.1:PORT") names the address: none of it is logged.
      for (const needle of [redis.url, `127.0.0.1:${redis.port}`, 'redis://', 'ECONNREFUSED']) {
        assert.ok(!t.logs.some((l) => l.includes(needle)), `no ${needle} in the logs`)
      }
    } finally {
      await t.close()
    }
  })

  test('RATE_LIMIT_STORE_FALLBACK=deny: tenant requests fail closed with 503, health still answers', async () => {
    const redis = await refusedRedisUrl()
    const t = await buildTestApp('sqlite', { env: { REDIS_URL: redis.url, RATE_LIMIT_STORE_FALLBACK: 'deny' } })
    try {
      const key = await t.onboard('refused-deny-org')
      await eventually(async () => {
        const r = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
        return r.json().status === 'degraded'
      }, 'readiness to report the refused store')
      for (let i = 0; i < 2; i++) {
        const res = await answers(t.app.inject({ method: 'GET', url: '/api/v1/organizations/refused-deny-org/quota', headers: t.org(key) }), 'org request')
        assert.equal(res.statusCode, 503)
        assert.equal(res.json().code, 'SERVICE_UNAVAILABLE')
      }
      const ready = await answers(t.app.inject({ method: 'GET', url: '/health/ready' }), '/health/ready')
      assert.equal(ready.statusCode, 200)
      assert.equal(ready.json().status, 'degraded')
      assert.equal((await answers(t.app.inject({ method: 'GET', url: '/health' }), '/health')).statusCode, 200)
      const errors = t.logs.map((l) => JSON.parse(l)).filter((l) => l.level === 'error' && /rate-limit store unavailable/.test(l.msg))
      assert.equal(errors.length, 1)
      assert.equal(errors[0].fallback, 'deny')
    } finally {
      await t.close()
    }
  })
})

describe('PostgreSQL rate-limit table', () => {
  test('maintenance deletes expired counter rows in bounded batches and keeps live ones', { skip: needsPostgres() }, async () => {
    const t = await buildTestApp('postgres')
    try {
      const key = await limitedOrg(t, 'table-org', 1000)
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/organizations/table-org/quota', headers: t.org(key) })).statusCode, 200)
      const db = t.ctx.db
      const past = Date.now() - 60_000
      await sql`INSERT INTO tenantflow_rate_limits (key, points, expire)
                SELECT 'expired-' || g, 1, ${past} FROM generate_series(1, 2500) AS g`.execute(db.kysely)
      const count = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM tenantflow_rate_limits`.execute(db.kysely)).rows[0]!.n)
      const live = (await count()) - 2500
      assert.ok(live >= 1, 'the request left a live counter row')

      assert.equal(await deleteExpiredRateLimitRows(db, Date.now(), 1000, 2), 2000, 'one call deletes at most batch × batches rows')
      assert.equal(await count(), live + 500)
      const r = await runMaintenance(db, 90, t.ctx.clock.now())
      assert.equal(r.rateLimitRowsDeleted, 500)
      assert.equal(await count(), live, 'live counters are kept')
    } finally {
      await t.close()
    }
  })

  test('a failed table creation is retried, not cached until restart', { skip: needsPostgres() }, async () => {
    const t = await buildTestApp('postgres')
    const db = t.ctx.db
    try {
      const key = await limitedOrg(t, 'retry-org', 1000)
      // Refuse CREATE TABLE in this database until the trigger is dropped.
      await sql.raw(`CREATE FUNCTION tf_deny_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'ddl refused'; END $$`).execute(db.kysely)
      await sql.raw(`CREATE EVENT TRIGGER tf_deny_create ON ddl_command_start WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION tf_deny_ddl()`).execute(db.kysely)
      const url = '/api/v1/organizations/retry-org/quota'
      const first = await t.app.inject({ method: 'GET', url, headers: t.org(key) })
      assert.equal(first.statusCode, 200, 'limits fall back to memory while the table cannot be created')
      const ready = await t.app.inject({ method: 'GET', url: '/health/ready' })
      assert.equal(ready.json().status, 'degraded')
      assert.match(ready.json().reasons[0], /postgres.*table could not be created/)

      await sql.raw('DROP EVENT TRIGGER tf_deny_create').execute(db.kysely)
      const tableExists = async () =>
        (await sql<{ t: string | null }>`SELECT to_regclass('tenantflow_rate_limits') AS t`.execute(db.kysely)).rows[0]?.t != null
      await eventually(async () => {
        assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode, 200)
        return tableExists()
      }, 'the table to be created on a later request')
      await eventually(async () => (await t.app.inject({ method: 'GET', url: '/health/ready' })).json().status === 'ready', 'readiness to recover')
    } finally {
      await t.close()
    }
  })
})
