import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { backendNames } from '../helpers/backends.js'
import { anthropicFake, hang, json, openaiFake, startUpstream, type Upstream } from './fakes.js'
import { dumpAllTables } from './setup.js'

const ACME_OPENAI = 'sk-proj-AcmeRouteOpenAIKey00000000001'
const GLOBEX_OPENAI = 'sk-proj-GlobexRouteOpenAIKey0000000002'
const ACME_ANTHROPIC = 'sk-ant-api03-AcmeRouteAnthropicKey0001'
const HTTP_TOKEN = 'route-generic-token-55667788'
let openai: Upstream, anthropic: Upstream, hanging: Upstream, redirecting: Upstream, elsewhere: Upstream

before(async () => {
  openai = await startUpstream((req, res) => {
    const key = (req.headers.authorization ?? '').slice(7)
    openaiFake(key === ACME_OPENAI || key === GLOBEX_OPENAI ? key : '\u0000')(req, res)
  })
  anthropic = await startUpstream(anthropicFake(ACME_ANTHROPIC))
  hanging = await startUpstream(hang)
  elsewhere = await startUpstream((_req, res) => json(res, 200, {}))
  redirecting = await startUpstream((_req, res) => {
    res.writeHead(302, { location: `${elsewhere.url}/collect` })
    res.end()
  })
})
after(async () => {
  for (const u of [openai, anthropic, hanging, redirecting, elsewhere]) await u.close()
})

for (const backend of backendNames()) {
  test(`integration routes on ${backend}`, async (t) => {
    const env = { OPENAI_BASE_URL: openai.url, ANTHROPIC_BASE_URL: hanging.url, EGRESS_TIMEOUT_MS: '400' }
    const ta: TestApp = await buildTestApp(backend, { env })
    t.after(() => ta.close())
    const acme = ta.org(await ta.onboard('acme'))
    const globex = ta.org(await ta.onboard('globex'))
    const inject = ta.app.inject.bind(ta.app)

    await t.test('setup: 200 with status, id and fingerprint only; no-store', async () => {
      const res = await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/setup', headers: acme, payload: { credential: ACME_OPENAI, credential_name: 'prod key' } })
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.headers['cache-control'], 'no-store')
      const body = res.json()
      assert.deepEqual(Object.keys(body).sort(), ['credential_id', 'fingerprint', 'provider', 'status'])
      assert.deepEqual([body.provider, body.status, body.fingerprint], ['openai', 'VALID', ACME_OPENAI.slice(-4)])
      assert.ok(!res.body.includes(ACME_OPENAI.slice(0, -4)))
      const g = await inject({ method: 'POST', url: '/api/v1/integrations/globex/openai/setup', headers: globex, payload: { credential: GLOBEX_OPENAI } })
      assert.equal(g.json().status, 'VALID')
    })

    await t.test('a wrong key is refused 422 CREDENTIAL_REJECTED reason UNAUTHORIZED, the VALID one stays; never the upstream text', async () => {
      const res = await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/setup', headers: acme, payload: { credential: 'sk-proj-WrongRouteKey000000000000' } })
      assert.equal(res.statusCode, 422, res.body)
      assert.deepEqual([res.json().code, res.json().reason], ['CREDENTIAL_REJECTED', 'UNAUTHORIZED'])
      assert.ok(!res.body.includes('Incorrect'))
      const get = await inject({ method: 'GET', url: '/api/v1/integrations/acme/openai', headers: acme })
      assert.deepEqual([get.json().status, get.json().fingerprint], ['VALID', ACME_OPENAI.slice(-4)])
      const stored = await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/setup', headers: acme, payload: { credential: 'sk-proj-WrongRouteKey000000000000', store_invalid: true } })
      assert.equal(stored.json().status, 'INVALID')
      const after = await inject({ method: 'GET', url: '/api/v1/integrations/acme/openai', headers: acme })
      assert.deepEqual([after.json().status, after.json().last_error_code], ['INVALID', 'UNAUTHORIZED'])
      assert.ok(!after.body.includes('Incorrect'))
      await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/setup', headers: acme, payload: { credential: ACME_OPENAI } })
    })

    await t.test('never-answering provider → 422 reason TIMEOUT within the configured bound, nothing stored', async () => {
      const t0 = Date.now()
      const res = await inject({ method: 'POST', url: '/api/v1/integrations/acme/anthropic/setup', headers: acme, payload: { credential: ACME_ANTHROPIC } })
      assert.ok(Date.now() - t0 < 3000)
      assert.deepEqual([res.statusCode, res.json().code, res.json().reason], [422, 'CREDENTIAL_REJECTED', 'TIMEOUT'])
      const get = await inject({ method: 'GET', url: '/api/v1/integrations/acme/anthropic', headers: acme })
      assert.equal(get.json().status, 'NOT_CONFIGURED')
      const stored = await inject({ method: 'POST', url: '/api/v1/integrations/acme/anthropic/setup', headers: acme, payload: { credential: ACME_ANTHROPIC, store_invalid: true } })
      assert.deepEqual([stored.statusCode, stored.json().status], [200, 'INVALID'])
      assert.equal((await inject({ method: 'GET', url: '/api/v1/integrations/acme/anthropic', headers: acme })).json().last_error_code, 'TIMEOUT')
    })

    await t.test('redirect from a validation URL is refused; the other host gets nothing', async () => {
      const res = await inject({
        method: 'POST', url: '/api/v1/integrations/acme/http/setup', headers: acme,
        payload: { credential: HTTP_TOKEN, metadata: { auth_type: 'bearer', base_url: redirecting.url, validation_url: `${redirecting.url}/me` } },
      })
      assert.deepEqual([res.statusCode, res.json().reason], [422, 'UPSTREAM_ERROR'])
      assert.equal(elsewhere.requests.length, 0)
    })

    await t.test('400s: unknown fields, bounds, bad format, unknown provider — field paths, never values', async () => {
      const cases: [string, unknown, string][] = [
        ['/api/v1/integrations/acme/openai/setup', { credential: ACME_OPENAI, extra: 1 }, 'VALIDATION_FAILED'],
        ['/api/v1/integrations/acme/openai/setup', { credential: 'short' }, 'VALIDATION_FAILED'],
        ['/api/v1/integrations/acme/openai/setup', { credential: ACME_OPENAI, metadata: { 'Bad-Key': 'x' } }, 'VALIDATION_FAILED'],
        ['/api/v1/integrations/acme/openai/setup', { credential: 'pk-not-an-openai-key-123456' }, 'INVALID_CREDENTIAL_FORMAT'],
        ['/api/v1/integrations/acme/http/setup', { credential: HTTP_TOKEN, metadata: { auth_type: 'bearer', base_url: 'http://169.254.169.254/' } }, 'DESTINATION_NOT_ALLOWED'],
        ['/api/v1/integrations/acme/gemini/setup', { credential: ACME_OPENAI }, 'VALIDATION_FAILED'],
      ]
      for (const [url, payload, code] of cases) {
        const res = await inject({ method: 'POST', url, headers: acme, payload: payload as object })
        assert.equal(res.statusCode, 400, `${url} ${res.body}`)
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
        const body = res.json()
        assert.equal(body.code, code, res.body)
        assert.equal(body.detail, 'Invalid request format')
        assert.ok(!res.body.includes('pk-not-an-openai') && !res.body.includes('169.254') && !res.body.includes(ACME_OPENAI))
      }
      const fmt = await inject({ method: 'POST', url: '/api/v1/integrations/acme/http/setup', headers: acme, payload: { credential: HTTP_TOKEN, metadata: { auth_type: 'bearer', base_url: 'ftp://x.example' } } })
      assert.deepEqual(fmt.json().errors, [{ path: 'body/metadata/base_url', message: 'is invalid' }])
    })

    await t.test('auth: no key 401, another org 403, another org via its own path sees only its own', async () => {
      assert.equal((await inject({ method: 'GET', url: '/api/v1/integrations/acme' })).statusCode, 401)
      assert.equal((await inject({ method: 'GET', url: '/api/v1/integrations/acme', headers: ta.root })).statusCode, 401)
      for (const [method, url] of [['GET', '/api/v1/integrations/acme'], ['GET', '/api/v1/integrations/acme/openai'], ['POST', '/api/v1/integrations/acme/openai/validate'], ['DELETE', '/api/v1/integrations/acme/openai']] as const) {
        const res = await inject({ method, url, headers: globex })
        assert.equal(res.statusCode, 403, `${method} ${url}`)
        assert.equal(res.json().code, 'ORG_MISMATCH')
      }
      const res = await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/setup', headers: globex, payload: { credential: GLOBEX_OPENAI } })
      assert.equal(res.statusCode, 403)
    })

    await t.test('list and get', async () => {
      const res = await inject({ method: 'GET', url: '/api/v1/integrations/acme', headers: acme })
      assert.equal(res.statusCode, 200)
      const body = res.json()
      assert.deepEqual(body.integrations.map((i: { provider: string; status: string }) => [i.provider, i.status]), [['openai', 'VALID'], ['anthropic', 'INVALID'], ['gcp', 'NOT_CONFIGURED'], ['http', 'NOT_CONFIGURED']])
      assert.deepEqual(body.providers_configured, ['openai', 'anthropic'])
      assert.equal(body.all_valid, false)
      const gcp = await inject({ method: 'GET', url: '/api/v1/integrations/acme/gcp', headers: acme })
      assert.deepEqual([gcp.statusCode, gcp.json().status, gcp.json().credential_id], [200, 'NOT_CONFIGURED', null])
      const oa = (await inject({ method: 'GET', url: '/api/v1/integrations/acme/openai', headers: acme })).json()
      assert.equal(oa.credential_name, null)
      assert.match(oa.last_validated_at, /^\d{4}-\d\d-\d\dT/)
    })

    await t.test('validate: 200 with the new status; 404 when nothing is configured', async () => {
      const res = await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/validate', headers: acme })
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.json().status, 'VALID')
      const none = await inject({ method: 'POST', url: '/api/v1/integrations/acme/gcp/validate', headers: acme })
      assert.deepEqual([none.statusCode, none.json().code], [404, 'NOT_FOUND'])
    })

    await t.test('ciphertext swapped between orgs → 409 CREDENTIAL_UNUSABLE, no details', async () => {
      const k = ta.ctx.db.kysely
      const g = await k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'globex').where('provider', '=', 'openai').where('is_active', '=', 1).executeTakeFirstOrThrow()
      await k.updateTable('org_integration_credentials').set({ ciphertext: g.ciphertext, wrapped_key: g.wrapped_key, kms_key_version: g.kms_key_version })
        .where('org_slug', '=', 'acme').where('provider', '=', 'openai').where('is_active', '=', 1).execute()
      const res = await inject({ method: 'POST', url: '/api/v1/integrations/acme/openai/validate', headers: acme })
      assert.equal(res.statusCode, 409)
      const body = res.json()
      assert.deepEqual([body.code, body.detail], ['CREDENTIAL_UNUSABLE', 'Conflict'])
      assert.deepEqual(Object.keys(body).sort(), ['code', 'detail', 'request_id', 'status', 'title', 'type'])
      const get = (await inject({ method: 'GET', url: '/api/v1/integrations/acme/openai', headers: acme })).json()
      // A decrypt failure is never a provider verdict: the status is not changed (it is audited instead).
      assert.equal(get.status, 'VALID')
    })

    await t.test('no plaintext credential in any table or log line', async () => {
      const dump = await dumpAllTables(ta.ctx.db)
      const logs = ta.logs.join('')
      assert.ok(logs.length > 0)
      for (const s of [ACME_OPENAI, GLOBEX_OPENAI, ACME_ANTHROPIC, HTTP_TOKEN, 'sk-proj-WrongRouteKey000000000000']) {
        assert.ok(!dump.includes(s), `dump leaks ${s.slice(0, 10)}`)
        assert.ok(!logs.includes(s), `logs leak ${s.slice(0, 10)}`)
      }
    })

    await t.test('delete crypto-shreds; a second delete is 404; offboarding destroys the rest', async () => {
      const res = await inject({ method: 'DELETE', url: '/api/v1/integrations/acme/openai', headers: acme })
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.json().deleted, true)
      assert.ok(res.json().credentials_destroyed >= 1)
      const rows = await ta.ctx.db.kysely.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'acme').where('provider', '=', 'openai').limit(50).execute()
      assert.ok(rows.every((r) => r.ciphertext === null && r.wrapped_key === null))
      assert.equal((await inject({ method: 'GET', url: '/api/v1/integrations/acme/openai', headers: acme })).json().status, 'NOT_CONFIGURED')
      assert.equal((await inject({ method: 'DELETE', url: '/api/v1/integrations/acme/openai', headers: acme })).statusCode, 404)
      const off = await inject({ method: 'DELETE', url: '/api/v1/organizations/globex', headers: ta.root, payload: { confirm_org_slug: 'globex' } })
      assert.equal(off.statusCode, 200, off.body)
      assert.ok(off.json().credentials_destroyed >= 1)
      const left = await ta.ctx.db.kysely.selectFrom('org_integration_credentials').select('credential_id').where('org_slug', '=', 'globex').where('ciphertext', 'is not', null).limit(5).execute()
      assert.equal(left.length, 0)
    })

    await t.test('audit trail records setup, validation, decrypts and deletion without secrets', async () => {
      const rows = await ta.ctx.db.kysely.selectFrom('org_audit_logs').select(['action', 'details', 'actor']).where('org_slug', '=', 'acme').limit(1000).execute()
      const actions = new Set(rows.map((r) => r.action))
      for (const a of ['credential.setup', 'credential.validated', 'credential.decrypted', 'credential.decrypt_failed', 'credential.deleted']) assert.ok(actions.has(a), a)
      assert.ok(rows.filter((r) => r.action.startsWith('credential.')).every((r) => r.actor.startsWith('key:')))
      assert.ok(!JSON.stringify(rows).includes(ACME_OPENAI))
    })
  })
}
