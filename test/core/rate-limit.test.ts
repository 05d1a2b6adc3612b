// Request rate limits: per org (plan), failed auth per IP, shared across instances on PostgreSQL/Redis.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames, freshBackend, needsPostgres, needsRedis, REDIS_URL } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { RateLimiterRes } from 'rate-limiter-flexible'
import { MemoryWindows } from '../../src/app/dependencies/rate-limit.js'

for (const backend of backendNames()) {
  describe(`rate limits (${backend})`, () => {
    test('per-org limit from the subscription: 429 with Retry-After and RateLimit headers', async () => {
      const t = await buildTestApp(backend)
      try {
        const key = await t.onboard('limited-org')
        const other = await t.onboard('other-org')
        const put = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/limited-org/subscription', headers: t.root, payload: { requests_per_minute: 5 } })
        assert.equal(put.statusCode, 200)
        const url = '/api/v1/organizations/limited-org/quota'
        const codes: number[] = []
        for (let i = 0; i < 7; i++) codes.push((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode)
        assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429])
        const res = await t.app.inject({ method: 'GET', url, headers: t.org(key) })
        assert.equal(res.json().code, 'ORG_RATE_LIMITED')
        assert.equal(res.json().detail, 'Rate limit exceeded')
        const retry = Number(res.headers['retry-after'])
        assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${res.headers['retry-after']}`)
        assert.match(String(res.headers['ratelimit-policy']), /q=5;w=60/)
        const ok = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/other-org/quota', headers: t.org(other) })
        assert.equal(ok.statusCode, 200, 'other orgs are not affected')
        assert.match(String(ok.headers.ratelimit), /r=\d+;t=\d+/)
      } finally {
        await t.close()
      }
    })

    test('failed authentications are limited per IP', async () => {
      const t = await buildTestApp(backend, { env: { FAILED_AUTH_PER_MINUTE: '3' } })
      try {
        const codes: number[] = []
        for (let i = 0; i < 5; i++) {
          const res = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: { 'x-ca-root-key': `wrong-root-key-attempt-${i}-xxxxxxxxxxxxxxxxxx` } })
          codes.push(res.statusCode)
        }
        assert.deepEqual(codes, [401, 401, 401, 429, 429])
        const blocked = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: { 'x-ca-root-key': 'wrong-root-key-attempt-again-xxxxxxxxxxxxxxxxxx' } })
        assert.equal(blocked.statusCode, 429, 'the IP stays blocked for failing attempts')
        assert.equal(blocked.json().code, 'AUTH_RATE_LIMITED')
        const missing = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations' })
        assert.equal(missing.json().code, 'AUTH_RATE_LIMITED', 'a missing key from a blocked address is refused too')
        const valid = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: t.root })
        assert.equal(valid.statusCode, 200, 'a valid key is never refused because of failures, even from the same address')
        const other = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: t.root, remoteAddress: '10.9.8.7' })
        assert.equal(other.statusCode, 200, 'another client is not blocked')
      } finally {
        await t.close()
      }
    })
  })
}

async function sharedAcrossInstances(env: Record<string, string>) {
  const backend = await freshBackend('postgres')
  const one = await buildTestApp('postgres', { backend, env })
  const two = await buildTestApp('postgres', { backend, env })
  try {
    // Redis outlives the test database: a fresh slug keeps counters from earlier runs apart.
    const slug = `shared-${Date.now().toString(36)}`
    const key = await one.onboard(slug)
    await one.app.inject({ method: 'PUT', url: `/api/v1/organizations/${slug}/subscription`, headers: one.root, payload: { requests_per_minute: 4 } })
    const url = `/api/v1/organizations/${slug}/quota`
    const codes: number[] = []
    for (let i = 0; i < 6; i++) {
      const t = i % 2 === 0 ? one : two
      codes.push((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode)
    }
    assert.deepEqual(codes, [200, 200, 200, 200, 429, 429])
  } finally {
    await one.close()
    await two.close()
    await backend.cleanup()
  }
}

describe('shared counters', () => {
  test('per-org limit is shared by two instances on PostgreSQL', { skip: needsPostgres() }, () => sharedAcrossInstances({}))
  test('per-org limit is shared by two instances through Redis', { skip: needsPostgres() || needsRedis() }, () =>
    sharedAcrossInstances({ REDIS_URL: REDIS_URL! }),
  )
})

test('memory windows: a fixed window per key from its first point, refusals say when it ends, and keys are bounded', () => {
  const w = new MemoryWindows(3, 60_000, 2)
  const t0 = 1_000_000
  assert.deepEqual([1, 2, 3].map((i) => w.takeNow('a', t0 + i).remainingPoints), [2, 1, 0])
  assert.throws(() => w.takeNow('a', t0 + 10), (err: unknown) => err instanceof RateLimiterRes && err.remainingPoints === 0 && err.msBeforeNext === 60_000 - 9)
  assert.equal(w.takeNow('b', t0 + 10).remainingPoints, 2, 'another key has its own window')
  assert.equal(w.takeNow('a', t0 + 1 + 60_000).remainingPoints, 2, 'a new window once the first has ended')
  // At most two keys: the least recently used one is dropped (and starts afresh).
  w.takeNow('c', t0 + 20)
  assert.equal(w.takeNow('b', t0 + 30).remainingPoints, 2, 'b was dropped for c and starts a new window')
})
