// Onboarding, idempotency, races, rotation, subscription, quota and offboarding through the API.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames, needsPostgres, freshBackend } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const body = (slug: string) => ({ org_slug: slug, company_name: 'Race Inc', admin_email: 'a@race.example.com', subscription_plan: 'PROFESSIONAL' })

for (const backend of backendNames()) {
  describe(`organizations (${backend})`, () => {
    let t: TestApp
    before(async () => {
      t = await buildTestApp(backend)
    })
    after(async () => t.close())

    test('onboard returns the key once; profile, subscription, dataset and audit exist', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: t.root, payload: body('acme-co') })
      assert.equal(res.statusCode, 201)
      const b = res.json()
      assert.match(b.api_key, /^tf_[0-9A-Za-z]{36}$/)
      assert.equal(b.api_key_fingerprint, b.api_key.slice(-4))
      assert.equal(b.subscription_plan, 'PROFESSIONAL')
      assert.equal(res.headers['cache-control'], 'no-store')
      const row = await t.ctx.db.kysely.selectFrom('org_api_keys').selectAll().where('org_slug', '=', 'acme-co').executeTakeFirstOrThrow()
      assert.notEqual(row.key_hash, b.api_key)
      assert.ok(!row.encrypted_key.includes(b.api_key))
      const sub = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/acme-co/subscription', headers: t.org(b.api_key) })
      assert.deepEqual([sub.json().daily_limit, sub.json().monthly_limit, sub.json().concurrent_limit], [25, 750, 20])
      const audit = await t.app.inject({ method: 'GET', url: '/api/v1/admin/audit-logs/acme-co', headers: t.root })
      assert.equal(audit.json().logs[0].action, 'org.onboarded')
      const again = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: t.root, payload: body('acme-co') })
      assert.equal(again.statusCode, 409)
      assert.equal(again.json().detail, 'Conflict')
    })

    test('dry run checks and creates nothing', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/dryrun', headers: t.root, payload: body('dry-org') })
      assert.equal(res.statusCode, 200)
      assert.equal(res.json().ready_for_onboarding, true)
      const taken = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/dryrun', headers: t.root, payload: body('acme-co') })
      assert.equal(taken.json().ready_for_onboarding, false)
      const row = await t.ctx.db.kysely.selectFrom('org_profiles').select('org_slug').where('org_slug', '=', 'dry-org').executeTakeFirst()
      assert.equal(row, undefined)
    })

    test('50 parallel onboardings of one slug: exactly one 201', async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: t.root, payload: body('race-org') })),
      )
      const codes = results.map((r) => r.statusCode)
      assert.equal(codes.filter((c) => c === 201).length, 1, codes.join(','))
      assert.equal(codes.filter((c) => c === 409).length, 49)
      const keys = await t.ctx.db.kysely.selectFrom('org_api_keys').select('key_id').where('org_slug', '=', 'race-org').execute()
      assert.equal(keys.length, 1)
    })

    test('Idempotency-Key replays the same body with the key redacted', async () => {
      const headers = { ...t.root, 'idempotency-key': 'onboard-idem-0001' }
      const [a, b] = await Promise.all([
        t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers, payload: body('idem-org') }),
        t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers, payload: body('idem-org') }),
      ])
      // A replay also answers 201; the original is the one not marked as replayed.
      const created = [a, b].find((r) => r.statusCode === 201 && r.headers['idempotent-replayed'] !== 'true')!
      assert.ok(created, `${a.statusCode} ${b.statusCode}`)
      const replay = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers, payload: body('idem-org') })
      assert.equal(replay.statusCode, 201)
      assert.equal(replay.headers['idempotent-replayed'], 'true')
      const { api_key, ...rest } = created.json()
      const { api_key: redacted, ...restReplay } = replay.json()
      assert.deepEqual(restReplay, rest)
      assert.notEqual(redacted, api_key)
      assert.ok(!replay.body.includes(api_key))
      const conflict = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers, payload: body('idem-other') })
      assert.equal(conflict.statusCode, 409)
      assert.equal(conflict.json().code, 'IDEMPOTENCY_CONFLICT')
    })

    test('rotation under concurrent use with a grace period, then revocation', async () => {
      const oldKey = await t.onboard('rotate-org')
      const url = '/api/v1/organizations/rotate-org/quota'
      const inflight = Array.from({ length: 40 }, () => t.app.inject({ method: 'GET', url, headers: t.org(oldKey) }))
      const rot = await t.app.inject({
        method: 'POST',
        url: '/api/v1/organizations/rotate-org/api-key/rotate',
        headers: t.org(oldKey),
        payload: { grace_seconds: 60 },
      })
      assert.equal(rot.statusCode, 200)
      const { api_key: newKey, previous_key_expires_at } = rot.json()
      assert.ok(previous_key_expires_at)
      for (const r of await Promise.all(inflight)) assert.equal(r.statusCode, 200)
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(oldKey) })).statusCode, 200, 'old key works in grace')
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(newKey) })).statusCode, 200)
      const info = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/rotate-org/api-key', headers: t.org(newKey) })
      assert.equal(info.json().fingerprint, newKey.slice(-4))
      const rot2 = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/rotate-org/api-key/rotate', headers: t.root, payload: { grace_seconds: 0 } })
      assert.equal(rot2.statusCode, 200)
      assert.equal(rot2.json().grace_seconds, 0)
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(oldKey) })).statusCode, 401)
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(newKey) })).statusCode, 401)
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(rot2.json().api_key) })).statusCode, 200)
    })

    test('rotation without grace_seconds keeps the old key for the default hour and says until when', async () => {
      const oldKey = await t.onboard('default-grace-org')
      const url = '/api/v1/organizations/default-grace-org/quota'
      const before = Date.now()
      const rot = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/default-grace-org/api-key/rotate', headers: t.org(oldKey) })
      assert.equal(rot.statusCode, 200, rot.body)
      assert.equal(rot.json().grace_seconds, 3600)
      const until = Date.parse(rot.json().previous_key_expires_at)
      assert.ok(until >= before + 3600_000 && until <= Date.now() + 3600_000, rot.json().previous_key_expires_at)
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(oldKey) })).statusCode, 200, 'the old key keeps working')
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(rot.json().api_key) })).statusCode, 200)
    })

    test('API_KEY_ROTATION_GRACE_SECONDS=0 makes a bare rotation revoke the old key at once', async () => {
      const z = await buildTestApp(backend, { env: { API_KEY_ROTATION_GRACE_SECONDS: '0' } })
      try {
        const oldKey = await z.onboard('zero-grace-org')
        const rot = await z.app.inject({ method: 'POST', url: '/api/v1/organizations/zero-grace-org/api-key/rotate', headers: z.org(oldKey), payload: {} })
        assert.equal(rot.json().grace_seconds, 0)
        const res = await z.app.inject({ method: 'GET', url: '/api/v1/organizations/zero-grace-org/quota', headers: z.org(oldKey) })
        assert.equal(res.statusCode, 401)
      } finally {
        await z.close()
      }
    })

    test('quota reports limits and zero usage; root may read any existing org, unknown org is 404', async () => {
      const key = await t.onboard('quota-org')
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/quota-org/quota', headers: t.org(key) })
      assert.equal(res.statusCode, 200)
      const q = res.json()
      assert.deepEqual([q.daily.used, q.daily.limit, q.monthly.limit, q.concurrent.running], [0, 6, 180, 0])
      const missing = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/no-such-org/quota', headers: t.root })
      assert.equal(missing.statusCode, 404)
      assert.equal(missing.json().detail, 'Resource not found')
    })

    test('suspension evicts cached keys immediately', async () => {
      const key = await t.onboard('suspend-org')
      const url = '/api/v1/organizations/suspend-org/quota'
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode, 200)
      await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/suspend-org/subscription', headers: t.root, payload: { status: 'SUSPENDED' } })
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode, 401)
      await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/suspend-org/subscription', headers: t.root, payload: { status: 'ACTIVE' } })
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode, 200)
    })

    test('trial end is enforced', async () => {
      const key = await t.onboard('trial-org', 'STARTER', { trial_days: 3 })
      const url = '/api/v1/organizations/trial-org/quota'
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode, 200)
      await t.app.inject({
        method: 'PUT',
        url: '/api/v1/organizations/trial-org/subscription',
        headers: t.root,
        payload: { trial_end_date: new Date(Date.now() - 1000).toISOString() },
      })
      assert.equal((await t.app.inject({ method: 'GET', url, headers: t.org(key) })).statusCode, 401)
    })

    test('offboarding revokes keys, drops the dataset and leaves a deletion record', async () => {
      const key = await t.onboard('leaving-org')
      const setup = await t.app.inject({
        method: 'POST',
        url: '/api/v1/integrations/leaving-org/openai/setup',
        headers: t.org(key),
        payload: { credential: 'sk-leaving-org-secret-0123456789', skip_validation: true },
      })
      assert.equal(setup.statusCode, 200, setup.body)
      const res = await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/leaving-org', headers: t.root, payload: { confirm_org_slug: 'leaving-org' } })
      assert.equal(res.statusCode, 200, res.body)
      const rec = res.json()
      assert.equal(rec.api_keys_revoked, 1)
      assert.equal(rec.credentials_destroyed, 1)
      assert.equal(rec.dataset_dropped, true)
      const left = await t.ctx.db.kysely.selectFrom('org_integration_credentials').select('credential_id').where('org_slug', '=', 'leaving-org').execute()
      assert.equal(left.length, 0, 'no ciphertext of the org remains')
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/organizations/leaving-org/quota', headers: t.org(key) })).statusCode, 401)
      const audit = await t.app.inject({ method: 'GET', url: '/api/v1/admin/audit-logs/leaving-org', headers: t.root })
      assert.equal(audit.json().logs[0].action, 'org.offboarded')
      const gone = await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations/leaving-org', headers: t.root })
      assert.equal(gone.statusCode, 404)
    })

    test('admin listing pages with a cursor', async () => {
      const seen: string[] = []
      let cursor: string | null = null
      do {
        const res: Awaited<ReturnType<typeof t.app.inject>> = await t.app.inject({ method: 'GET', url: `/api/v1/admin/organizations?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: t.root })
        assert.equal(res.statusCode, 200)
        seen.push(...res.json().organizations.map((o: { org_slug: string }) => o.org_slug))
        cursor = res.json().next_cursor
      } while (cursor)
      assert.deepEqual(seen, [...seen].sort())
      assert.equal(new Set(seen).size, seen.length)
      assert.ok(seen.includes('acme-co') && seen.includes('race-org'))
    })
  })
}

describe('cross-instance cache eviction (postgres)', { skip: needsPostgres() }, () => {
  test('a key revoked on instance 1 stops working on instance 2 within 1 s', async () => {
    const backend = await freshBackend('postgres')
    const one = await buildTestApp('postgres', { backend })
    const two = await buildTestApp('postgres', { backend })
    try {
      const key = await one.onboard('evict-org')
      const url = '/api/v1/organizations/evict-org/quota'
      assert.equal((await two.app.inject({ method: 'GET', url, headers: two.org(key) })).statusCode, 200) // cached on two
      const rot = await one.app.inject({ method: 'POST', url: '/api/v1/organizations/evict-org/api-key/rotate', headers: one.root, payload: { grace_seconds: 0 } })
      assert.equal(rot.statusCode, 200)
      const deadline = Date.now() + 1000
      let status = 200
      while (Date.now() < deadline) {
        status = (await two.app.inject({ method: 'GET', url, headers: two.org(key) })).statusCode
        if (status === 401) break
        await new Promise((r) => setTimeout(r, 20))
      }
      assert.equal(status, 401)
    } finally {
      await one.close()
      await two.close()
      await backend.cleanup()
    }
  })
})
