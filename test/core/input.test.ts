// Bad input gets a clear 400 with the standard detail and changes nothing.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const good = { org_slug: 'valid-org', company_name: 'Valid Inc', admin_email: 'a@valid.example.com', subscription_plan: 'STARTER' }

for (const backend of backendNames()) {
  describe(`input rejection (${backend})`, () => {
    let t: TestApp
    let keyA: string
    before(async () => {
      t = await buildTestApp(backend)
      keyA = await t.onboard('org-a')
    })
    after(async () => t.close())

    async function counts() {
      const r = await sql<{ n: number }>`SELECT (SELECT count(*) FROM org_profiles) + (SELECT count(*) FROM org_api_keys) + (SELECT count(*) FROM org_audit_logs) AS n`.execute(t.ctx.db.kysely)
      return Number(r.rows[0]!.n)
    }

    async function expect400(payload: unknown, why: string, raw = false) {
      const before = await counts()
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/onboard',
        headers: { ...t.root, 'content-type': 'application/json' },
        payload: raw ? (payload as string) : JSON.stringify(payload),
      })
      assert.equal(res.statusCode, 400, `${why}: ${res.body}`)
      const body = res.json()
      assert.equal(body.detail, 'Invalid request format')
      assert.equal(body.status, 400)
      assert.ok(body.code)
      // Never echo the submitted value.
      if (typeof payload === 'object' && payload && 'org_slug' in payload) {
        const slug = String((payload as { org_slug: unknown }).org_slug)
        if (slug.length > 3) assert.ok(!res.body.includes(slug), `${why}: body echoes input`)
      }
      assert.equal(await counts(), before, `${why}: state changed`)
    }

    test('bad slugs', async () => {
      for (const slug of ['../x', 'a', 'ABC', 'a;drop', 'x'.repeat(65), 'ünï-code', 'nul\u0000byte', 'a/b', '..', 'ab', '-abc', 'abc def']) {
        await expect400({ ...good, org_slug: slug }, `slug ${JSON.stringify(slug)}`)
      }
    })

    test('unknown fields, oversize strings, wrong types, malformed JSON', async () => {
      await expect400({ ...good, is_admin: true }, 'unknown field')
      await expect400({ ...good, company_name: 'x'.repeat(201) }, 'oversize company')
      await expect400({ ...good, admin_email: 'not-an-email' }, 'bad email')
      await expect400({ ...good, subscription_plan: 'ENTERPRISE' }, 'enterprise not onboardable')
      await expect400({ ...good, subscription_plan: 7 }, 'wrong type')
      await expect400({ ...good, trial_days: '5' }, 'string for integer')
      await expect400({ ...good, trial_days: 10_000 }, 'out of bounds')
      await expect400('{"org_slug": "x",', 'malformed json', true)
      await expect400([good], 'array body')
      const { org_slug: _drop, ...missing } = good
      await expect400(missing, 'missing field')
    })

    test('validation errors list field paths but never values', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/onboard',
        headers: t.root,
        payload: { ...good, company_name: 'S3CRET-VALUE-'.repeat(30) },
      })
      assert.equal(res.statusCode, 400)
      assert.ok(!res.body.includes('S3CRET-VALUE'))
      assert.deepEqual(res.json().errors, [{ path: 'body/company_name', message: 'must be at most 200 characters' }])
    })

    test('subscription and rotate bounds', async () => {
      const put = async (payload: unknown) =>
        t.app.inject({ method: 'PUT', url: '/api/v1/organizations/org-a/subscription', headers: t.root, payload: payload as object })
      for (const p of [{ daily_limit: 0 }, { daily_limit: -1 }, { concurrent_limit: 1e9 }, { status: 'GODMODE' }, { plan_name: 'FREE' }, { extra: 1 }]) {
        const res = await put(p)
        assert.equal(res.statusCode, 400, JSON.stringify(p))
      }
      const sub = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/org-a/subscription', headers: t.org(keyA) })
      assert.equal(sub.json().daily_limit, 6)
      const rot = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/org-a/api-key/rotate',
        headers: t.org(keyA),
        payload: { grace_seconds: 86401 },
      })
      assert.equal(rot.statusCode, 400)
      const still = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/org-a/quota', headers: t.org(keyA) })
      assert.equal(still.statusCode, 200)
    })

    test('list limits and cursors are bounded', async () => {
      for (const q of ['limit=0', 'limit=101', 'limit=abc', 'cursor=%00', 'cursor=bm90LWpzb24', 'unknown=1']) {
        const res = await t.app.inject({ method: 'GET', url: `/api/v1/admin/organizations?${q}`, headers: t.root })
        assert.equal(res.statusCode, 400, q)
      }
      const ok = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations?limit=1', headers: t.root })
      assert.equal(ok.statusCode, 200)
      assert.equal(ok.json().organizations.length, 1)
    })

    test('unknown query fields and bodies on routes that take none are 400 before any work', async () => {
      const cases: [string, string, object | undefined][] = [
        ['GET', '/api/v1/organizations/org-a/quota?foo=1', undefined],
        ['GET', '/api/v1/integrations/org-a?provider=openai', undefined],
        ['POST', '/api/v1/integrations/org-a/openai/validate', { force: true }],
        ['DELETE', '/api/v1/integrations/org-a/openai', { everything: true }],
      ]
      for (const [method, url, payload] of cases) {
        const before = await counts()
        const res = await t.app.inject({ method: method as 'GET', url, headers: t.org(keyA), ...(payload ? { payload } : {}) })
        assert.equal(res.statusCode, 400, `${method} ${url}: ${res.body}`)
        assert.deepEqual([res.json().detail, res.json().code], ['Invalid request format', 'VALIDATION_FAILED'])
        assert.equal(await counts(), before, `${method} ${url}: state changed`)
      }
    })

    test('oversize bodies and wrong media types are refused before any work', async () => {
      const before = await counts()
      const big = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/onboard',
        headers: { ...t.root, 'content-type': 'application/json' },
        payload: JSON.stringify({ ...good, company_name: 'x'.repeat(1024 * 1024 + 10) }),
      })
      assert.equal(big.statusCode, 413)
      assert.equal(big.json().code, 'PAYLOAD_TOO_LARGE')
      const xml = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/onboard',
        headers: { ...t.root, 'content-type': 'application/xml' },
        payload: '<org/>',
      })
      assert.equal(xml.statusCode, 415)
      assert.equal(xml.json().code, 'UNSUPPORTED_MEDIA_TYPE')
      assert.equal(await counts(), before)
    })

    test('offboarding needs the matching confirmation', async () => {
      const res = await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/org-a', headers: t.root, payload: { confirm_org_slug: 'org-b' } })
      assert.equal(res.statusCode, 400)
      assert.equal(res.json().code, 'CONFIRMATION_MISMATCH')
      const still = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/org-a/quota', headers: t.org(keyA) })
      assert.equal(still.statusCode, 200)
    })
  })
}
