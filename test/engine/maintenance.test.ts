// Maintenance: expired idempotency keys are removed, and retention never drops a partition that still
// holds a PENDING/RUNNING run (that would lose the run and leak its concurrency slot).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { admitRun } from '../../src/app/dependencies/quota.js'
import { ensurePartitions } from '../../src/core/db/partitions.js'
import { runMaintenance } from '../../src/core/pipelines/maintenance.js'
import { finishRun, getRun } from '../../src/core/pipelines/runs.js'
import { backendNames, needsPostgres } from '../helpers/backends.js'
import { admitInput, createOrg, openStore, slotState } from './fixtures.js'
import type { Db } from '../../src/core/db/database.js'

const partitions = async (db: Db) =>
  (await sql<{ name: string }>`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'org_pipeline_runs' LIMIT 1000`.execute(db.kysely)).rows.map((r) => r.name)

for (const backend of backendNames()) {
  describe(`maintenance (${backend})`, () => {
    test('expired idempotency keys are deleted, live ones kept', async () => {
      const store = await openStore(backend)
      try {
        const now = Date.UTC(2026, 5, 15)
        const key = (k: string, expires_at: number) => ({ scope: 'trigger:acme', idempotency_key: k, request_hash: 'h', status_code: 202, response: '{}', created_at: now - 1, expires_at })
        await store.db.kysely.insertInto('org_idempotency_keys').values([key('old-1', now - 1000), key('old-2', now - 1), key('live', now + 1000)]).execute()
        const r = await runMaintenance(store.db, 90, now)
        assert.equal(r.idempotencyKeysDeleted, 2)
        const left = await store.db.kysely.selectFrom('org_idempotency_keys').select('idempotency_key').limit(10).execute()
        assert.deepEqual(left.map((k) => k.idempotency_key), ['live'])
      } finally {
        await store.cleanup()
      }
    })

    test('finished webhook deliveries older than retention are deleted; pending and recent ones kept', async () => {
      const store = await openStore(backend)
      try {
        const now = Date.UTC(2026, 5, 15)
        const day = 86_400_000
        const row = (id: string, status: 'PENDING' | 'DELIVERED' | 'FAILED', created_at: number) => ({
          delivery_id: id, org_slug: 'acme', webhook_id: 'whk_x', run_id: `run_${id}`, event: 'run.finished', payload: '{}', status, attempts: 1,
          next_attempt_at: created_at, lease_owner: null, lease_expires_at: null, last_status_code: null, last_error_code: null, delivered_at: null, created_at, updated_at: created_at,
        })
        await store.db.kysely.insertInto('org_webhook_deliveries').values([
          row('old_done', 'DELIVERED', now - 91 * day), row('old_failed', 'FAILED', now - 91 * day), row('old_pending', 'PENDING', now - 91 * day), row('recent', 'DELIVERED', now - day),
        ]).execute()
        const r = await runMaintenance(store.db, 90, now)
        assert.equal(r.webhookDeliveriesDeleted, 2)
        const left = await store.db.kysely.selectFrom('org_webhook_deliveries').select('delivery_id').orderBy('delivery_id').limit(10).execute()
        assert.deepEqual(left.map((d) => d.delivery_id), ['old_pending', 'recent'])
      } finally {
        await store.cleanup()
      }
    })
  })
}

describe('maintenance partitions (postgres)', { skip: needsPostgres() }, () => {
  test('retention keeps the partition of a run still PENDING; it drops it once the run is finished', async () => {
    const store = await openStore('postgres')
    try {
      const feb = Date.UTC(2026, 1, 10)
      const jun = Date.UTC(2026, 5, 15)
      await ensurePartitions(store.db, feb) // 2026-01 .. 2026-04
      await createOrg(store.db, 'slow')
      const r = await admitRun(store.db, admitInput('slow', 'test/basic/noop', {}, feb))
      assert.ok(r.kind === 'admitted')
      assert.equal(r.run.run_date, '2026-02-10')

      const first = await runMaintenance(store.db, 30, jun)
      assert.ok(first.partitionsDropped.includes('org_pipeline_runs_p202601'), 'older partitions still go')
      assert.ok(!first.partitionsDropped.includes('org_pipeline_runs_p202602'), 'the active run keeps its partition')
      assert.ok((await partitions(store.db)).includes('org_pipeline_runs_p202602'))
      assert.equal((await getRun(store.db, 'slow', r.run.run_id))?.status, 'PENDING')
      assert.deepEqual(await slotState(store.db, 'slow'), { running: 1, holding: 1, active: 1 })

      assert.ok(await finishRun(store.db, { runId: r.run.run_id, from: ['PENDING'], status: 'COMPLETED', now: jun }))
      const second = await runMaintenance(store.db, 30, jun)
      assert.ok(second.partitionsDropped.includes('org_pipeline_runs_p202602'))
      assert.equal(await getRun(store.db, 'slow', r.run.run_id), undefined)
      assert.equal((await slotState(store.db, 'slow')).running, 0)
    } finally {
      await store.cleanup()
    }
  })
})
