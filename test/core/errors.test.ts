// The error catalogue speaks plainly: a title per code, every failing field with the rule it broke
// (never the value), credential states told apart, and docs/errors.md in step with the catalogue.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ERROR_CODES, ERROR_TITLES, STANDARD_DETAIL, problem, type ErrorCode } from '../../src/app/errors.js'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'

const CODES = Object.keys(ERROR_CODES) as ErrorCode[]

describe('error catalogue', () => {
  test('every code has its own plain title and a standard detail for its status', () => {
    const httpTitles = new Set(['Bad Request', 'Unauthorized', 'Forbidden', 'Not Found', 'Internal Server Error'])
    for (const code of CODES) {
      const title = ERROR_TITLES[code]
      assert.ok(typeof title === 'string' && title.length >= 5 && title.length <= 100, `${code} has a title`)
      assert.ok(!httpTitles.has(title), `${code}'s title says more than the status name`)
      assert.ok(STANDARD_DETAIL[ERROR_CODES[code]], `${code}'s status ${ERROR_CODES[code]} has a standard detail`)
      const body = problem(code, 'req-1')
      assert.deepEqual([body.title, body.status, body.detail], [title, ERROR_CODES[code], STANDARD_DETAIL[ERROR_CODES[code]]])
    }
    assert.equal(new Set(CODES.map((c) => ERROR_TITLES[c])).size, CODES.length, 'titles are distinct')
    // The seed's standard sentences stay.
    assert.deepEqual([400, 401, 403, 404, 429, 500].map((s) => STANDARD_DETAIL[s]), [
      'Invalid request format',
      'Invalid or inactive API key',
      'Cannot access another organization',
      'Resource not found',
      'Rate limit exceeded',
      'Internal error. Check server logs.',
    ])
  })

  test('docs/errors.md lists every code with its status and title, and nothing else', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
    const rows = new Map<string, string[]>()
    for (const line of doc.split('\n')) {
      const cells = line.split('|').slice(1, -1).map((c) => c.trim())
      if (cells.length === 4 && /^[A-Z][A-Z0-9_]+$/.test(cells[0]!)) rows.set(cells[0]!, cells)
    }
    for (const code of CODES) {
      const row = rows.get(code)
      assert.ok(row, `docs/errors.md has a row for ${code}`)
      assert.equal(row[1], String(ERROR_CODES[code]), `${code} status in the doc`)
      assert.equal(row[2], ERROR_TITLES[code], `${code} title in the doc`)
      assert.ok(row[3]!.length > 5, `${code} says what to do`)
    }
    assert.deepEqual([...rows.keys()].filter((c) => !(c in ERROR_CODES)), [], 'the doc lists no code the catalogue lacks')
  })

  test('field errors are bounded', () => {
    const body = problem('VALIDATION_FAILED', 'r', Array.from({ length: 50 }, (_, i) => ({ path: `body/f${i}`, message: 'is required' })))
    assert.equal(body.errors?.length, 20)
    assert.deepEqual(problem('INVALID_PARAMETERS', 'r', ['parameters.n']).errors, [{ path: 'parameters.n', message: 'is invalid' }])
  })
})

for (const backend of backendNames()) {
  describe(`error bodies (${backend})`, () => {
    test('titles per code, every failing field with its rule, never the value', async () => {
      const t = await buildTestApp(backend)
      try {
        const key = await t.onboard('err-org')
        const inject = t.app.inject.bind(t.app)

        const noKey = await inject({ method: 'GET', url: '/api/v1/organizations/err-org/subscription' })
        assert.deepEqual([noKey.statusCode, noKey.json().code, noKey.json().title], [401, 'MISSING_API_KEY', 'API key missing'])
        assert.equal(noKey.json().detail, 'Invalid or inactive API key')
        const orgOnAdmin = await inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: t.org(key) })
        assert.deepEqual([orgOnAdmin.statusCode, orgOnAdmin.json().code, orgOnAdmin.json().title], [403, 'ADMIN_REQUIRED', 'Admin key required'])

        // Four bad onboarding fields (and one unknown) → all reported, each with the rule, no value echoed.
        const bad = {
          org_slug: 'BadSlugValue!',
          company_name: 'Q',
          admin_email: 'not-an-email-address-value',
          subscription_plan: 'PLATINUM_PLAN_VALUE',
          trial_days: 4242,
        }
        const res = await inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: t.root, payload: bad })
        assert.equal(res.statusCode, 400)
        const body = res.json()
        assert.deepEqual([body.code, body.title, body.detail], ['VALIDATION_FAILED', 'Request fields are invalid', 'Invalid request format'])
        const byPath = Object.fromEntries((body.errors as { path: string; message: string }[]).map((e) => [e.path, e.message]))
        assert.deepEqual(Object.keys(byPath).sort(), ['body/admin_email', 'body/company_name', 'body/org_slug', 'body/subscription_plan', 'body/trial_days'])
        assert.equal(byPath['body/subscription_plan'], 'must be one of: STARTER, PROFESSIONAL, SCALE')
        assert.equal(byPath['body/trial_days'], 'must be <= 90')
        assert.equal(byPath['body/company_name'], 'must be at least 2 characters')
        assert.equal(byPath['body/admin_email'], 'must be a valid email')
        assert.match(byPath['body/org_slug']!, /^must match the pattern /)
        assert.equal(body.errors.length, 5, 'one message per field (no anyOf noise)')
        for (const v of Object.values(bad)) assert.ok(!res.body.includes(String(v)), `the body never echoes ${v}`)

        const limit = await inject({ method: 'GET', url: '/api/v1/pipelines/err-org/runs?limit=5000', headers: t.org(key) })
        assert.equal(limit.statusCode, 400)
        assert.deepEqual(limit.json().errors, [{ path: 'querystring/limit', message: 'must be <= 100' }])
        assert.ok(!limit.body.includes('5000'))

        const provider = await inject({ method: 'GET', url: '/api/v1/integrations/err-org/nosuchprovider', headers: t.org(key) })
        assert.equal(provider.statusCode, 400)
        assert.deepEqual(provider.json().errors, [{ path: 'params/provider', message: 'must be one of: openai, anthropic, gcp, http' }])

        const unknown = await inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: t.root, payload: { org_slug: 'fine-slug', surprise_field: 1 } })
        const unknownErrors = unknown.json().errors as { path: string; message: string }[]
        assert.ok(unknownErrors.some((e) => e.path === 'body/surprise_field' && e.message === 'is not an allowed field'))
        assert.ok(unknownErrors.some((e) => e.path === 'body/company_name' && e.message === 'is required'))
      } finally {
        await t.close()
      }
    })

    test('a trigger tells a missing, an INVALID and a refused PENDING credential apart', async () => {
      const t = await buildTestApp(backend)
      try {
        const org = t.org(await t.onboard('cred-org'))
        const trigger = () => t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/cred-org/openai/usage/daily', headers: org, payload: {} })
        const missing = await trigger()
        assert.deepEqual([missing.statusCode, missing.json().code, missing.json().title], [400, 'INTEGRATION_NOT_CONFIGURED', 'Integration not configured'])
        const setup = await t.app.inject({
          method: 'POST',
          url: '/api/v1/integrations/cred-org/openai/setup',
          headers: org,
          payload: { credential: 'sk-proj-ErrorsTestKey0000000000001', skip_validation: true },
        })
        assert.equal(setup.statusCode, 200, setup.body)
        const k = t.ctx.db.kysely
        // PENDING is validated at the trigger; the provider is not reachable from this test, so it is refused with a reason.
        const pending = await trigger()
        assert.deepEqual([pending.statusCode, pending.json().code, pending.json().title, pending.json().detail], [422, 'CREDENTIAL_REJECTED', 'Credential rejected by the provider', 'Invalid request format'])
        assert.ok(['UNAUTHORIZED', 'TIMEOUT', 'UNREACHABLE', 'UPSTREAM_ERROR'].includes(pending.json().reason), pending.body)
        const invalid = await trigger()
        assert.deepEqual([invalid.statusCode, invalid.json().code, invalid.json().title, invalid.json().detail], [400, 'CREDENTIAL_INVALID', 'Credential is INVALID', 'Invalid request format'])
        assert.equal(invalid.json().reason, pending.json().reason, 'the stored verdict is the reason')
        await k.updateTable('org_integration_credentials').set({ last_error_code: null }).where('org_slug', '=', 'cred-org').where('is_active', '=', 1).execute()
        assert.equal((await trigger()).json().reason, undefined, 'no reason when none is stored')
      } finally {
        await t.close()
      }
    })
  })
}
