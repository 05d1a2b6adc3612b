// Key rotation and offboarding with an injected failure at each step (issue 8 item 3): every failure
// leaves a usable state (the org keeps a working key, or can no longer act at all) and a retry finishes
// the job; offboarding never leaves a dataset behind that no retry can reach.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'kysely'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const boom = () => {
  throw new Error('injected failure')
}

/** Replaces obj[key] until the returned function restores it. */
function inject<T extends object, K extends keyof T>(obj: T, key: K, replacement: T[K]): () => void {
  const original = obj[key]
  obj[key] = replacement
  return () => {
    obj[key] = original
  }
}

async function withAuditTableAway<T>(t: TestApp, fn: () => Promise<T>): Promise<T> {
  await sql`ALTER TABLE org_audit_logs RENAME TO org_audit_logs_away`.execute(t.ctx.db.kysely)
  try {
    return await fn()
  } finally {
    await sql`ALTER TABLE org_audit_logs_away RENAME TO org_audit_logs`.execute(t.ctx.db.kysely)
  }
}

for (const backend of backendNames()) {
  describe(`failure at each step (${backend})`, () => {
    let t: TestApp
    before(async () => {
      t = await buildTestApp(backend)
    })
    after(async () => t.close())

    const quota = (slug: string, key: string) => t.app.inject({ method: 'GET', url: `/api/v1/organizations/${slug}/quota`, headers: t.org(key) })
    const rotate = (slug: string, key: string) =>
      t.app.inject({ method: 'POST', url: `/api/v1/organizations/${slug}/api-key/rotate`, headers: t.org(key), payload: { grace_seconds: 0 } })
    const offboard = (slug: string) => t.app.inject({ method: 'DELETE', url: `/api/v1/organizations/${slug}`, headers: t.root, payload: { confirm_org_slug: slug } })
    const keyRows = async (slug: string) =>
      Number((await t.ctx.db.kysely.selectFrom('org_api_keys').select((eb) => eb.fn.countAll<number>().as('n')).where('org_slug', '=', slug).executeTakeFirstOrThrow()).n)
    const datasetExists = async (datasetId: string) => {
      if (backend === 'sqlite') return existsSync(join(t.ctx.config.dataDir, 'datasets', `${datasetId}.db`))
      const r = await sql<{ n: number }>`SELECT COUNT(*)::int AS n FROM pg_namespace WHERE nspname = ${datasetId}`.execute(t.ctx.db.kysely)
      return r.rows[0]!.n === 1
    }

    test('rotation: a KMS or database failure keeps the old key; an eviction failure still delivers the new one', async () => {
      const key = await t.onboard('rot-org')
      let restore = inject(t.ctx.kms, 'wrap', boom)
      try {
        assert.equal((await rotate('rot-org', key)).statusCode, 500)
      } finally {
        restore()
      }
      assert.equal((await quota('rot-org', key)).statusCode, 200, 'old key still works after a KMS failure')
      assert.equal(await keyRows('rot-org'), 1)

      await withAuditTableAway(t, async () => assert.equal((await rotate('rot-org', key)).statusCode, 500))
      assert.equal((await quota('rot-org', key)).statusCode, 200, 'old key still works after a failed transaction')
      assert.equal(await keyRows('rot-org'), 1)

      restore = inject(t.ctx.bus, 'publish', async () => boom())
      let res
      try {
        res = await rotate('rot-org', key)
      } finally {
        restore()
      }
      assert.equal(res.statusCode, 200, res.body)
      const fresh = res.json().api_key as string
      assert.equal((await quota('rot-org', fresh)).statusCode, 200, 'the new key was delivered and works')
      assert.equal((await quota('rot-org', key)).statusCode, 401, 'the old key is revoked here')
    })

    test('offboarding: a failure in the first transaction leaves the org whole', async () => {
      const key = await t.onboard('off-tx')
      const restore = inject(t.ctx.credentials, 'destroyOrg', async () => boom())
      try {
        assert.equal((await offboard('off-tx')).statusCode, 500)
      } finally {
        restore()
      }
      assert.equal((await quota('off-tx', key)).statusCode, 200)
      assert.equal((await offboard('off-tx')).statusCode, 200)
    })

    for (const step of ['broadcast', 'dataset drop', 'final transaction'] as const) {
      test(`offboarding: after a failed ${step} the org can no longer act and a retry completes it`, async () => {
        const slug = `off-${step.split(' ')[0]}`
        const key = await t.onboard(slug)
        const { datasetId } = await t.datasetOf(slug)
        assert.ok(await datasetExists(datasetId))
        const fail = async () => {
          if (step === 'final transaction') return withAuditTableAway(t, () => offboard(slug))
          const restore =
            step === 'broadcast' ? inject(t.ctx.bus, 'publish', async () => boom()) : inject(t.ctx.datasets, 'drop', async () => boom())
          try {
            return await offboard(slug)
          } finally {
            restore()
          }
        }
        assert.equal((await fail()).statusCode, 500)
        assert.equal((await quota(slug, key)).statusCode, 401, 'the org key no longer works')
        const reonboard = await t.app.inject({
          method: 'POST',
          url: '/api/v1/organizations/onboard',
          headers: t.root,
          payload: { org_slug: slug, company_name: 'Again Inc', admin_email: 'a@again.example.com', subscription_plan: 'STARTER' },
        })
        assert.equal(reonboard.statusCode, 409, 'the slug stays taken until offboarding completes')

        const retry = await offboard(slug)
        assert.equal(retry.statusCode, 200, retry.body)
        assert.equal(await datasetExists(datasetId), false, 'no dataset left behind')
        assert.equal((await offboard(slug)).statusCode, 404)
        const leftovers = await t.ctx.db.kysely.selectFrom('org_dataset_tables').select('table_name').where('dataset_id', '=', datasetId).execute()
        assert.deepEqual(leftovers, [])
        await t.onboard(slug)
      })
    }
  })
}
