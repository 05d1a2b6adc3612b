// Idempotency-Key records belong to one org incarnation (issue 8 item 2): offboarding deletes them,
// and a re-onboarded org with the same slug gets its own trigger and its own onboarding, never a replay
// of the old org's.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { PRICE_SUMMARY_TEMPLATE, writeTemplates } from '../engine/fixtures.js'

const templateDir = writeTemplates({ 'idem/local/prices.yml': PRICE_SUMMARY_TEMPLATE })
const onboardBody = { org_slug: 'idem-org', company_name: 'Idem Inc', admin_email: 'a@idem.example.com', subscription_plan: 'STARTER' }

for (const backend of backendNames()) {
  describe(`idempotency records and offboarding (${backend})`, () => {
    let t: TestApp
    before(async () => {
      t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
    })
    after(async () => t.close())

    const onboard = () => t.app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: { ...t.root, 'idempotency-key': 'onboard-key-0001' }, payload: onboardBody })
    const trigger = (key: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/pipelines/run/idem-org/idem/local/prices',
        headers: { ...t.org(key), 'idempotency-key': 'trigger-key-0001' },
        payload: { parameters: { n: 1 } },
      })
    const records = async () =>
      (await t.ctx.db.kysely.selectFrom('org_idempotency_keys').select(['scope', 'org_slug']).execute()).filter(
        (r) => r.org_slug === 'idem-org' || r.scope.includes('idem-org') || r.scope === 'onboard',
      )

    test('offboarding deletes the org records; the next incarnation neither replays nor is refused', async () => {
      const first = await onboard()
      assert.equal(first.statusCode, 201, first.body)
      const oldKey = first.json().api_key as string
      const oldRun = await trigger(oldKey)
      assert.equal(oldRun.statusCode, 202, oldRun.body)
      assert.equal((await trigger(oldKey)).headers['idempotent-replayed'], 'true', 'a replay within the incarnation')
      assert.equal((await records()).length, 2)

      const off = await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/idem-org', headers: t.root, payload: { confirm_org_slug: 'idem-org' } })
      assert.equal(off.statusCode, 200, off.body)
      assert.deepEqual(await records(), [], 'no idempotency record of the old org survives')

      const second = await onboard()
      assert.equal(second.statusCode, 201, second.body)
      assert.equal(second.headers['idempotent-replayed'], undefined, 'a new onboarding, not a replay')
      const newKey = second.json().api_key as string
      assert.match(newKey, /^tf_/)
      assert.notEqual(second.json().dataset_id, first.json().dataset_id, 'a new incarnation, a new dataset id')
      const newRun = await trigger(newKey)
      assert.equal(newRun.statusCode, 202, newRun.body)
      assert.equal(newRun.headers['idempotent-replayed'], undefined)
      assert.notEqual(newRun.json().run_id, oldRun.json().run_id)
    })
  })
}
