// Route × credential matrix over every registered route: new routes are covered automatically.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, TEST_ROOT_KEY, type TestApp } from '../helpers/app.js'
import { generateApiKey } from '../../src/core/security/api-keys.js'

const SAMPLE: Record<string, string> = {
  provider: 'openai',
  domain: 'usage',
  pipeline: 'daily',
  run_id: 'run_0000000000000000000000',
  schedule_id: 'sch_0000000000000000000000',
  table: 'openai_usage_daily',
}

function fill(url: string, org: string): string {
  return url.replace(/:([a-z_]+)/g, (_m, name: string) => (name === 'org_slug' ? org : SAMPLE[name] ?? 'sample'))
}

for (const backend of backendNames()) {
  describe(`auth matrix (${backend})`, () => {
    let t: TestApp
    const keys: Record<string, string> = {}

    before(async () => {
      t = await buildTestApp(backend)
      keys.a = await t.onboard('org-a')
      keys.b = await t.onboard('org-b')
      await t.onboard('org-c')
      keys.revoked = await t.onboard('org-revoked')
      const rot = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/org-revoked/api-key/rotate',
        headers: t.org(keys.revoked),
        payload: { grace_seconds: 0 },
      })
      assert.equal(rot.statusCode, 200)
      keys.suspended = await t.onboard('org-suspended')
      const sus = await t.app.inject({
        method: 'PUT',
        url: '/api/v1/organizations/org-suspended/subscription',
        headers: t.root,
        payload: { status: 'SUSPENDED' },
      })
      assert.equal(sus.statusCode, 200)
      // A key past its expiry (e.g. the old key after a rotation grace period) and a trial that ended.
      keys.expired = await t.onboard('org-expired')
      await t.ctx.db.kysely.updateTable('org_api_keys').set({ expires_at: Date.now() - 1000 }).where('org_slug', '=', 'org-expired').execute()
      keys.trialOver = await t.onboard('org-trial-over', 'STARTER', { trial_days: 1 })
      const trial = await t.app.inject({
        method: 'PUT',
        url: '/api/v1/organizations/org-trial-over/subscription',
        headers: t.root,
        payload: { trial_end_date: new Date(Date.now() - 1000).toISOString() },
      })
      assert.equal(trial.statusCode, 200, trial.body)
      assert.equal(trial.json().status, 'TRIAL')
      const good = keys.a!
      const last = good.at(-1)!
      keys.badChecksum = good.slice(0, -1) + (last === 'A' ? 'B' : 'A')
    })
    after(async () => t.close())

    const call = (method: string, url: string, headers: Record<string, string>) =>
      t.app.inject({ method: method as 'GET', url, headers, ...(method === 'GET' ? {} : { payload: {} }) })

    test('every route declares a guard and the table is not empty', () => {
      assert.ok(t.app.routeTable.length >= 12)
      for (const r of t.app.routeTable) assert.ok(['admin', 'org', 'org_or_admin', 'public'].includes(r.auth), `${r.method} ${r.url}`)
      const publicRoutes = t.app.routeTable.filter((r) => r.auth === 'public')
      // The console's page, its hashed assets and its sign-in (which takes the key in its body) are public.
      const consolePublic = ['GET /console', 'GET /console/', 'GET /console/assets/:file', 'POST /console/api/session']
      for (const r of publicRoutes) {
        assert.ok(r.url.startsWith('/health') || r.url.startsWith('/docs') || consolePublic.includes(`${r.method} ${r.url}`), `public route ${r.method} ${r.url}`)
      }
    })

    test('credentials × routes', async () => {
      let checked = 0
      for (const route of t.app.routeTable) {
        if (route.auth === 'public') continue
        const hasOrg = route.url.includes(':org_slug')
        const urlA = fill(route.url, 'org-a')
        const label = `${route.method} ${route.url}`
        const expect401 = async (headers: Record<string, string>, why: string) => {
          const res = await call(route.method, urlA, headers)
          const wanted = route.auth === 'admin' && headers['x-api-key'] ? 403 : 401
          assert.equal(res.statusCode, wanted, `${label} ${why}: ${res.body}`)
          const body = res.json()
          assert.equal(body.detail, wanted === 401 ? 'Invalid or inactive API key' : 'Cannot access another organization')
          assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
          assert.ok(body.request_id)
        }
        await expect401({}, 'no key')
        await expect401({ 'x-api-key': 'tf_short' }, 'malformed key')
        await expect401({ 'x-api-key': 'x'.repeat(5000) }, 'oversize key')
        await expect401({ 'x-api-key': keys.badChecksum! }, 'wrong checksum')
        await expect401({ 'x-api-key': generateApiKey() }, 'unknown well-formed key')
        await expect401({ 'x-api-key': keys.revoked! }, 'revoked key')
        await expect401({ 'x-api-key': keys.suspended! }, 'suspended org key')
        await expect401({ 'x-api-key': keys.expired! }, 'expired key')
        await expect401({ 'x-api-key': keys.trialOver! }, 'ended trial')
        await expect401({ 'x-ca-root-key': 'wrong-root-key-wrong-root-key-wrong-root-key' }, 'wrong root key')

        if (route.auth === 'admin') {
          const res = await call(route.method, urlA, { 'x-api-key': keys.a! })
          assert.equal(res.statusCode, 403, `${label} org key on admin route`)
          assert.equal(res.json().code, 'ADMIN_REQUIRED')
        }
        if (route.auth === 'org') {
          const res = await call(route.method, fill(route.url, 'org-c'), { 'x-ca-root-key': TEST_ROOT_KEY })
          assert.equal(res.statusCode, 401, `${label} root key refused on org route`)
        }
        if (route.auth !== 'admin' && hasOrg) {
          const res = await call(route.method, urlA, { 'x-api-key': keys.b! })
          assert.equal(res.statusCode, 403, `${label} other org's key`)
          assert.deepEqual([res.json().detail, res.json().code], ['Cannot access another organization', 'ORG_MISMATCH'])
        }
        if (route.auth !== 'org') {
          const res = await call(route.method, fill(route.url, 'org-c'), { 'x-ca-root-key': TEST_ROOT_KEY })
          assert.ok(![401, 403].includes(res.statusCode), `${label} root key allowed: ${res.statusCode} ${res.body}`)
        }
        if (route.auth === 'org_or_admin' && hasOrg) {
          // The root key may act on any existing org, never on one that does not exist.
          const res = await call(route.method, fill(route.url, 'org-missing'), { 'x-ca-root-key': TEST_ROOT_KEY })
          assert.equal(res.statusCode, 404, `${label} root key on a missing org: ${res.body}`)
        }
        if (route.auth !== 'admin') {
          const res = await call(route.method, urlA, { 'x-api-key': keys.a! })
          assert.ok(![401, 403].includes(res.statusCode), `${label} own key allowed: ${res.statusCode} ${res.body}`)
          if (route.url.endsWith('/api-key/rotate')) keys.a = res.json().api_key
        }
        checked++
      }
      assert.ok(checked >= 10)
    })

    test('api key in the query string is not accepted', async () => {
      const res = await t.app.inject({ method: 'GET', url: `/api/v1/organizations/org-b/quota?api_key=${keys.b}` })
      assert.equal(res.statusCode, 401)
    })
  })
}
