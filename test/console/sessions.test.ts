// Console sessions through the real guards (inject): cookie flags, CSRF, isolation, and every way a
// session ends (sign-out, idle, absolute expiry, rotation with and without grace, suspension, offboarding, console off).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, TEST_ROOT_KEY, type TestApp } from '../helpers/app.js'
import { ManualClock } from '../../src/core/clock.js'
import { buildConsole, consoleIsCurrent, CONSOLE_OUT } from '../../scripts/build-console.js'

interface Signed {
  cookie: string
  csrf: string
  setCookie: string
  body: Record<string, unknown>
  raw: string
}

async function signIn(t: TestApp, key: string, headers: Record<string, string> = {}): Promise<Signed> {
  const res = await t.app.inject({ method: 'POST', url: '/console/api/session', payload: { key }, headers })
  assert.equal(res.statusCode, 201, res.body)
  const setCookie = String(res.headers['set-cookie'])
  const cookie = setCookie.split(';')[0]!
  return { cookie, csrf: res.json().csrf_token, setCookie, body: res.json(), raw: res.body }
}

for (const backend of backendNames()) {
  describe(`console sessions (${backend})`, () => {
    let t: TestApp
    const clock = new ManualClock(Date.now())
    let keyA = ''
    let keyB = ''

    before(async () => {
      t = await buildTestApp(backend, { clock })
      keyA = await t.onboard('org-a')
      keyB = await t.onboard('org-b')
    })
    after(async () => t.close())

    const get = (url: string, cookie: string) => t.app.inject({ method: 'GET', url, headers: { cookie } })

    test('sign-in sets a strict HttpOnly cookie, returns no key, and the cookie works through the same guards', async () => {
      const s = await signIn(t, keyA)
      assert.match(s.setCookie, /^tf_session=[A-Za-z0-9_-]{43}; /)
      for (const flag of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert.ok(s.setCookie.includes(flag), flag)
      assert.ok(!s.setCookie.includes('Secure'), 'plain HTTP: no Secure flag')
      assert.ok(!s.raw.includes(keyA), 'the key is not echoed')
      assert.equal(s.body.principal, 'org')
      assert.equal(s.body.org_slug, 'org-a')
      const again = await get('/console/api/session', s.cookie)
      assert.equal(again.statusCode, 200)
      assert.equal(again.json().csrf_token, s.csrf)
      assert.ok(!again.body.includes(keyA))
      assert.equal((await get('/api/v1/organizations/org-a/quota', s.cookie)).statusCode, 200)
      // Isolation: the other org's resources and the operator routes stay closed.
      for (const url of ['/api/v1/organizations/org-b/quota', '/api/v1/pipelines/org-b/runs', '/api/v1/integrations/org-b', '/api/v1/data/org-b/tables', '/api/v1/scheduler/org-b/schedules']) {
        const res = await get(url, s.cookie)
        assert.equal(res.statusCode, 403, url)
        assert.equal(res.json().code, 'ORG_MISMATCH')
      }
      const admin = await get('/api/v1/admin/organizations', s.cookie)
      assert.equal(admin.statusCode, 403)
      assert.equal(admin.json().code, 'ADMIN_REQUIRED')
      // Console headers.
      const page = await t.app.inject({ method: 'GET', url: '/console/' })
      assert.equal(page.statusCode, 200)
      assert.equal(page.headers['cache-control'], 'no-cache')
      const csp = String(page.headers['content-security-policy'])
      assert.ok(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'") && !csp.includes('unsafe'), csp)
      assert.equal(page.headers['x-content-type-options'], 'nosniff')
      assert.equal(page.headers['referrer-policy'], 'no-referrer')
      const token = s.cookie.split('=')[1]!
      const logs = t.logs.join('\n')
      assert.ok(logs.length > 0)
      assert.ok(!logs.includes(token) && !logs.includes(keyA) && !logs.includes(s.csrf), 'no session token, key or CSRF token in the logs')
      const stored = await t.ctx.db.kysely.selectFrom('console_sessions').selectAll().execute()
      assert.ok(!JSON.stringify(stored).includes(token), 'the store keeps only a hash of the token')
    })

    test('a mutation with the cookie needs the CSRF header; a cross-site sign-in is refused', async () => {
      const s = await signIn(t, keyA)
      const trigger = (headers: Record<string, string>) =>
        t.app.inject({ method: 'POST', url: '/api/v1/scheduler/org-a/schedules', headers: { cookie: s.cookie, ...headers }, payload: { pipeline_id: 'openai/usage/daily', cron: '0 3 * * *' } })
      const none = await trigger({})
      assert.equal(none.statusCode, 403)
      assert.equal(none.json().code, 'CSRF_TOKEN_INVALID')
      const wrong = await trigger({ 'x-tf-csrf': 'A'.repeat(43) })
      assert.equal(wrong.json().code, 'CSRF_TOKEN_INVALID')
      const count = await t.ctx.db.kysely.selectFrom('org_schedules').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      assert.equal(Number(count.n), 0, 'refused mutations change nothing')
      const ok = await trigger({ 'x-tf-csrf': s.csrf })
      assert.notEqual(ok.statusCode, 403, ok.body)
      const evil = await t.app.inject({ method: 'POST', url: '/console/api/session', payload: { key: keyA }, headers: { origin: 'https://evil.example' } })
      assert.equal(evil.statusCode, 403)
      assert.equal(evil.headers['set-cookie'], undefined)
    })

    test('a wrong key gets no cookie; sign-out ends the session', async () => {
      const bad = await t.app.inject({ method: 'POST', url: '/console/api/session', payload: { key: 'tf_nope' } })
      assert.equal(bad.statusCode, 401)
      assert.equal(bad.headers['set-cookie'], undefined)
      const s = await signIn(t, keyA)
      const noCsrf = await t.app.inject({ method: 'DELETE', url: '/console/api/session', headers: { cookie: s.cookie } })
      assert.equal(noCsrf.statusCode, 403)
      const out = await t.app.inject({ method: 'DELETE', url: '/console/api/session', headers: { cookie: s.cookie, 'x-tf-csrf': s.csrf } })
      assert.equal(out.statusCode, 200)
      assert.match(String(out.headers['set-cookie']), /Max-Age=0/)
      const after = await get('/api/v1/organizations/org-a/quota', s.cookie)
      assert.equal(after.statusCode, 401)
      assert.equal(after.json().code, 'SESSION_EXPIRED')
    })

    test('idle and absolute expiry', async () => {
      const s = await signIn(t, keyA)
      clock.advance(29 * 60_000)
      assert.equal((await get('/console/api/session', s.cookie)).statusCode, 200)
      clock.advance(31 * 60_000)
      assert.equal((await get('/console/api/session', s.cookie)).statusCode, 401, 'idle for 31 minutes')
      const s2 = await signIn(t, keyA)
      for (let i = 0; i < 25; i++) {
        clock.advance(29 * 60_000)
        const res = await get('/console/api/session', s2.cookie)
        if (i < 24) assert.equal(res.statusCode, 200, `after ${(i + 1) * 29} min`)
        else assert.equal(res.statusCode, 401, 'past the 12 h absolute limit')
      }
    })

    test('rotation (even with grace) and suspension end the session at the next request', async () => {
      const key = await t.onboard('org-rot')
      const s = await signIn(t, key)
      assert.equal((await get('/api/v1/organizations/org-rot/quota', s.cookie)).statusCode, 200)
      const rot = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/org-rot/api-key/rotate', headers: t.org(key), payload: { grace_seconds: 3600 } })
      assert.equal(rot.statusCode, 200)
      assert.equal((await get('/api/v1/organizations/org-rot/quota', s.cookie)).json().code, 'SESSION_EXPIRED')
      const fresh = await signIn(t, rot.json().api_key)
      const sus = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/org-rot/subscription', headers: t.root, payload: { status: 'SUSPENDED' } })
      assert.equal(sus.statusCode, 200)
      assert.equal((await get('/api/v1/organizations/org-rot/quota', fresh.cookie)).statusCode, 401)
      const gone = await t.ctx.db.kysely.selectFrom('console_sessions').select('session_hash').where('org_slug', '=', 'org-rot').execute()
      assert.equal(gone.length, 0, 'ended sessions are deleted')
    })

    test('rotation without grace revokes the old key: the session opened with it is refused on its next request', async () => {
      const key = await t.onboard('org-revoke')
      const s = await signIn(t, key)
      assert.equal((await get('/api/v1/organizations/org-revoke/quota', s.cookie)).statusCode, 200, 'the session works (and its key is cached)')
      const rot = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/org-revoke/api-key/rotate', headers: t.org(key), payload: { grace_seconds: 0 } })
      assert.equal(rot.statusCode, 200, rot.body)
      assert.equal(rot.json().grace_seconds, 0)
      // The old key itself is refused at once: revoked, not kept for a grace period.
      const oldKey = await t.app.inject({ url: '/api/v1/organizations/org-revoke/quota', headers: t.org(key) })
      assert.equal(oldKey.statusCode, 401, oldKey.body)
      const refused = await get('/api/v1/organizations/org-revoke/quota', s.cookie)
      assert.equal(refused.statusCode, 401)
      assert.equal(refused.json().code, 'SESSION_EXPIRED')
      assert.equal((await get('/console/api/session', s.cookie)).statusCode, 401, 'the session routes refuse it too')
      const mutation = await t.app.inject({ method: 'POST', url: '/api/v1/scheduler/org-revoke/schedules', headers: { cookie: s.cookie, 'x-tf-csrf': s.csrf }, payload: { pipeline_id: 'openai/usage/daily', cron: '0 3 * * *' } })
      assert.equal(mutation.statusCode, 401, 'a mutation with the CSRF token is refused as well')
      const rows = await t.ctx.db.kysely.selectFrom('org_schedules').select('schedule_id').where('org_slug', '=', 'org-revoke').execute()
      assert.equal(rows.length, 0)
      assert.equal((await t.app.inject({ method: 'POST', url: '/console/api/session', payload: { key } })).statusCode, 401, 'no new session with the old key')
      const fresh = await signIn(t, rot.json().api_key)
      assert.equal((await get('/api/v1/organizations/org-revoke/quota', fresh.cookie)).statusCode, 200, 'the new key opens a session')
    })

    test('offboarding ends the session', async () => {
      const key = await t.onboard('org-off')
      const s = await signIn(t, key)
      const del = await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/org-off', headers: t.root, payload: { confirm_org_slug: 'org-off' } })
      assert.equal(del.statusCode, 200, del.body)
      assert.equal((await get('/api/v1/organizations/org-off/quota', s.cookie)).statusCode, 401)
    })

    test('operator session: admin routes and every org, not org-only routes', async () => {
      const s = await signIn(t, TEST_ROOT_KEY)
      assert.equal(s.body.principal, 'admin')
      assert.ok(!s.raw.includes(TEST_ROOT_KEY))
      assert.equal((await get('/api/v1/admin/organizations', s.cookie)).statusCode, 200)
      assert.equal((await get('/api/v1/organizations/org-a/quota', s.cookie)).statusCode, 200)
      assert.equal((await get('/api/v1/organizations/org-b/quota', s.cookie)).statusCode, 200)
      assert.equal((await get('/api/v1/pipelines/org-a/runs', s.cookie)).statusCode, 401, 'org-only routes need the org key')
      const sus = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/org-b/subscription', headers: { cookie: s.cookie }, payload: { daily_limit: 5 } })
      assert.equal(sus.json().code, 'CSRF_TOKEN_INVALID')
      const ok = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/org-b/subscription', headers: { cookie: s.cookie, 'x-tf-csrf': s.csrf }, payload: { daily_limit: 5 } })
      assert.equal(ok.statusCode, 200, ok.body)
      void keyB
    })
  })

  describe(`console configuration (${backend})`, () => {
    test('CONSOLE_COOKIE_SECURE gives a __Host- Secure cookie', async () => {
      const t = await buildTestApp(backend, { env: { CONSOLE_COOKIE_SECURE: 'true' } })
      try {
        const key = await t.onboard('org-sec')
        const s = await signIn(t, key)
        assert.match(s.setCookie, /^__Host-tf_session=/)
        assert.ok(s.setCookie.includes('; Secure'))
        assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/organizations/org-sec/quota', headers: { cookie: s.cookie } })).statusCode, 200)
      } finally {
        await t.close()
      }
    })

    test('hashed assets are cached for a year (immutable); index.html and unknown names are not', async () => {
      if (!consoleIsCurrent()) await buildConsole()
      const t = await buildTestApp(backend)
      try {
        for (const url of ['/console', '/console/']) {
          const page = await t.app.inject({ method: 'GET', url })
          assert.equal(page.statusCode, 200, url)
          assert.equal(page.headers['cache-control'], 'no-cache', url)
        }
        const index = (await t.app.inject({ method: 'GET', url: '/console/' })).body
        const urls = [...index.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]!)
        assert.ok(urls.some((u) => u.endsWith('.js')) && urls.some((u) => u.endsWith('.css')), `index.html names its script and stylesheet: ${urls.join(', ')}`)
        for (const url of urls) {
          const name = url.split('/').pop()!
          assert.match(name, /^[a-z]+-[A-Z0-9]{6,}\.(js|css)$/, 'the name carries a content hash')
          const res = await t.app.inject({ method: 'GET', url })
          assert.equal(res.statusCode, 200, url)
          assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable', url)
          assert.match(String(res.headers['content-type']), name.endsWith('.js') ? /^text\/javascript/ : /^text\/css/)
          assert.equal(res.headers['x-content-type-options'], 'nosniff')
          assert.ok(res.rawPayload.equals(readFileSync(join(CONSOLE_OUT, 'assets', name))), 'the built file is served as is')
        }
        // A name that is not a built file must not be cached: it may exist after the next deploy.
        const missing = await t.app.inject({ method: 'GET', url: '/console/assets/app-NOPE0000.js' })
        assert.equal(missing.statusCode, 404)
        assert.doesNotMatch(String(missing.headers['cache-control'] ?? ''), /immutable|max-age=31536000/)
      } finally {
        await t.close()
      }
    })

    test('CONSOLE_ENABLED=false: no /console and cookies are ignored', async () => {
      const t = await buildTestApp(backend, { env: { CONSOLE_ENABLED: 'false' } })
      try {
        assert.equal((await t.app.inject({ method: 'GET', url: '/console/' })).statusCode, 404)
        assert.equal((await t.app.inject({ method: 'POST', url: '/console/api/session', payload: { key: 'x' } })).statusCode, 404)
        const res = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: { cookie: 'tf_session=' + 'A'.repeat(43) } })
        assert.equal(res.json().code, 'MISSING_ROOT_KEY')
      } finally {
        await t.close()
      }
    })
  })
}
