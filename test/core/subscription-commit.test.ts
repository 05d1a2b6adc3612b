// PUT …/subscription: timestamps the code cannot represent (leap seconds, Feb 30) are a 400 that
// changes nothing, and a request that answers 5xx commits nothing (issue 8 item 13).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

for (const backend of backendNames()) {
  describe(`subscription dates and commits (${backend})`, () => {
    let t: TestApp
    let key: string
    const url = '/api/v1/organizations/trial-co/subscription'
    before(async () => {
      t = await buildTestApp(backend)
      key = await t.onboard('trial-co', 'STARTER', { trial_days: 14 })
    })
    after(async () => t.close())

    const current = async () => (await t.app.inject({ method: 'GET', url, headers: t.org(key) })).json()

    test('a leap second or an impossible date is a 400 naming the field; the trial end is kept', async () => {
      const before = await current()
      assert.ok(before.trial_end_date)
      for (const bad of ['2026-12-31T23:59:60Z', '2026-02-30T00:00:00Z', '2026-02-29T12:00:00Z', '2026-01-01T24:00:00Z', '2026-06-01T00:00:00+24:00']) {
        const res = await t.app.inject({ method: 'PUT', url, headers: t.root, payload: { trial_end_date: bad, daily_limit: 9 } })
        assert.equal(res.statusCode, 400, bad)
        assert.equal(res.json().code, 'VALIDATION_FAILED')
        assert.deepEqual([...new Set(res.json().errors.map((e: { path: string }) => e.path))], ['body/trial_end_date'])
      }
      const afterBad = await current()
      assert.equal(afterBad.trial_end_date, before.trial_end_date)
      assert.equal(afterBad.daily_limit, before.daily_limit)
    })

    test('a representable timestamp with an offset is stored as its instant', async () => {
      const res = await t.app.inject({ method: 'PUT', url, headers: t.root, payload: { trial_end_date: '2026-12-31T23:59:59.5+01:00' } })
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.json().trial_end_date, '2026-12-31T22:59:59.500Z')
      assert.equal((await current()).trial_end_date, '2026-12-31T22:59:59.500Z')
    })

    test('a failure after the update (the audit insert) answers 500 and commits nothing', async () => {
      const before = await current()
      await sql`ALTER TABLE org_audit_logs RENAME TO org_audit_logs_away`.execute(t.ctx.db.kysely)
      try {
        const res = await t.app.inject({ method: 'PUT', url, headers: t.root, payload: { daily_limit: before.daily_limit + 1, trial_end_date: null } })
        assert.equal(res.statusCode, 500)
      } finally {
        await sql`ALTER TABLE org_audit_logs_away RENAME TO org_audit_logs`.execute(t.ctx.db.kysely)
      }
      const afterFail = await current()
      assert.equal(afterFail.daily_limit, before.daily_limit)
      assert.equal(afterFail.trial_end_date, before.trial_end_date)
    })
  })
}
