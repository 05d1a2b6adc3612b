// Grouped admissions (issue 12 item 3): concurrent admissions for one org in one process are decided
// together, in arrival order, without changing any decision; a call with a hook runs alone.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { AdmissionQueue } from '../../src/core/orgs/admission-queue.js'
import { admitBatchInTransaction, admitRun, type AdmitInput, type AdmitResult } from '../../src/core/orgs/admission.js'
import { backendNames } from '../helpers/backends.js'
import { admitInput, createOrg, openStore } from './fixtures.js'

const input = (org: string, n: number): AdmitInput => admitInput(org, 'test/basic/noop', { n }, Date.now())
const fake = (input: AdmitInput): AdmitResult => ({ kind: 'refused', code: 'DAILY_QUOTA_EXCEEDED', retryAfterSeconds: Number(input.parameters.n) })

describe('admission queue', () => {
  test('the first call goes alone; calls arriving meanwhile form one group, in order; hooks and other orgs stay apart', async () => {
    const calls: string[] = []
    let releaseFirst!: () => void
    const firstHeld = new Promise<void>((r) => (releaseFirst = r))
    const q = new AdmissionQueue(
      async (i, hook) => {
        calls.push(`alone ${i.org_slug}:${i.parameters.n}${hook ? ' hook' : ''}`)
        if (i.parameters.n === 0) await firstHeld
        return fake(i)
      },
      async (inputs) => {
        calls.push(`group ${inputs.map((i) => `${i.org_slug}:${i.parameters.n}`).join(',')}`)
        return inputs.map(fake)
      },
      3,
    )
    const hook = async () => undefined
    const pending = [
      q.admit(input('a', 0)),
      q.admit(input('a', 1)),
      q.admit(input('b', 9)),
      q.admit(input('a', 2)),
      q.admit(input('a', 3)),
      q.admit(input('a', 4)),
      q.admit(input('a', 5), hook),
      q.admit(input('a', 6)),
    ]
    releaseFirst()
    const results = await Promise.all(pending)
    // Each caller gets its own decision.
    assert.deepEqual(results.map((r) => (r.kind === 'refused' ? r.retryAfterSeconds : -1)), [0, 1, 9, 2, 3, 4, 5, 6])
    assert.deepEqual(calls, ['alone a:0', 'alone b:9', 'group a:1,a:2,a:3', 'alone a:4', 'alone a:5 hook', 'alone a:6'])
  })

  test('a storage error fails the group it happened in, and the next group is decided', async () => {
    let n = 0
    let releaseFirst!: () => void
    const firstHeld = new Promise<void>((r) => (releaseFirst = r))
    const q = new AdmissionQueue(
      async (i) => {
        if (n++ === 0) await firstHeld
        return fake(i)
      },
      async () => {
        throw new Error('disk I/O error')
      },
    )
    const first = q.admit(input('a', 0))
    const grouped = [q.admit(input('a', 1)), q.admit(input('a', 2))]
    releaseFirst()
    assert.equal((await first).kind, 'refused')
    for (const g of grouped) await assert.rejects(g, /disk I\/O error/)
    assert.equal((await q.admit(input('a', 3))).kind, 'refused', 'the queue is not stuck')
  })
})

for (const backend of backendNames()) {
  describe(`grouped admissions (${backend})`, () => {
    test('120 concurrent admissions at one org: limits, dedup and audit rows hold as if decided one by one', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'hot', { concurrent_limit: 1000, daily_limit: 50 })
        await createOrg(store.db, 'other', { concurrent_limit: 1000 })
        const now = Date.now()
        const audit = { actor: 'test', action: 'pipeline.triggered', details: { via: 'test' }, request_id: 'req-1' }
        // 100 distinct runs (the daily limit admits 50), and 10 copies of one run (deduplicated to it).
        const distinct = Array.from({ length: 100 }, (_, i) => admitRun(store.db, { ...admitInput('hot', 'test/basic/noop', { n: i }, now), audit }))
        const copies = Array.from({ length: 10 }, () => admitRun(store.db, { ...admitInput('other', 'test/basic/noop', { same: true }, now), audit }))
        const results = await Promise.all([...distinct, ...copies])
        const hot = results.slice(0, 100)
        assert.equal(hot.filter((r) => r.kind === 'admitted').length, 50)
        assert.deepEqual([...new Set(hot.filter((r) => r.kind === 'refused').map((r) => (r.kind === 'refused' ? r.code : '')))], ['DAILY_QUOTA_EXCEEDED'])
        // Arrival order is kept: the first 50 callers are the admitted ones.
        assert.ok(hot.slice(0, 50).every((r) => r.kind === 'admitted'))
        const same = results.slice(100)
        assert.equal(same.filter((r) => r.kind === 'admitted').length, 1)
        assert.equal(same.filter((r) => r.kind === 'deduplicated').length, 9)
        assert.equal(new Set(same.map((r) => (r.kind === 'refused' ? '' : r.run.run_id))).size, 1)

        const usage = await store.db.kysely.selectFrom('org_usage_quotas').select(['org_slug', 'period', 'runs_started']).orderBy('org_slug').orderBy('period').execute()
        assert.deepEqual(usage.map((u) => [u.org_slug, u.period, Number(u.runs_started)]), [['hot', 'day', 50], ['hot', 'month', 50], ['other', 'day', 1], ['other', 'month', 1]])
        const slots = await store.db.kysely.selectFrom('org_run_slots').select(['org_slug', 'running']).orderBy('org_slug').execute()
        assert.deepEqual(slots.map((s) => [s.org_slug, Number(s.running)]), [['hot', 50], ['other', 1]])
        const runs = await store.db.kysely.selectFrom('org_pipeline_runs').select(['run_id', 'org_slug']).limit(1000).execute()
        assert.equal(runs.length, 51)
        // One audit row per admitted run, naming it; none for refusals or duplicates.
        const audits = await store.db.kysely.selectFrom('org_audit_logs').selectAll().where('action', '=', 'pipeline.triggered').limit(1000).execute()
        assert.deepEqual(audits.map((a) => a.resource_id).sort(), runs.map((r) => r.run_id).sort())
        for (const a of audits) {
          assert.equal(a.resource_type, 'run')
          assert.equal(a.request_id, 'req-1')
          assert.deepEqual(JSON.parse(a.details), { via: 'test' })
        }
        // The admitted run rows are what the callers were given.
        const admitted = results.filter((r) => r.kind === 'admitted')
        const stored = await store.db.kysely.selectFrom('org_pipeline_runs').selectAll().where('run_id', '=', admitted[0]!.kind === 'admitted' ? admitted[0]!.run.run_id : '').execute()
        assert.ok(admitted[0]!.kind === 'admitted')
        assert.deepEqual({ ...stored[0], run_date: String(stored[0]!.run_date) }, { ...admitted[0]!.run, run_date: String(admitted[0]!.run.run_date) })
      } finally {
        await store.cleanup()
      }
    })

    test('one batch across midnight at month end: each day and month is counted, and the concurrent limit binds inside the batch', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'edge', { concurrent_limit: 3, daily_limit: 100 })
        const before = Date.parse('2026-01-31T23:59:59.500Z')
        const after = Date.parse('2026-02-01T00:00:00.500Z')
        const inputs = [before, before, after, after, after].map((now, n) => admitInput('edge', 'test/basic/noop', { n }, now))
        const results = await store.db.kysely.transaction().execute((trx) => admitBatchInTransaction(trx, store.db.dialect, inputs))
        assert.deepEqual(results.map((r) => (r.kind === 'refused' ? r.code : r.kind)), ['admitted', 'admitted', 'admitted', 'CONCURRENT_LIMIT_EXCEEDED', 'CONCURRENT_LIMIT_EXCEEDED'])
        const usage = await store.db.kysely.selectFrom('org_usage_quotas').select(['period', 'period_start', 'runs_started']).where('org_slug', '=', 'edge').orderBy('period_start').execute()
        assert.deepEqual(usage.map((u) => [u.period, String(u.period_start).slice(0, 10), Number(u.runs_started)]), [
          ['month', '2026-01', 2], ['day', '2026-01-31', 2], ['month', '2026-02', 1], ['day', '2026-02-01', 1],
        ])
        const slots = await store.db.kysely.selectFrom('org_run_slots').select('running').where('org_slug', '=', 'edge').execute()
        assert.deepEqual(slots.map((s) => Number(s.running)), [3])
      } finally {
        await store.cleanup()
      }
    })
  })
}
