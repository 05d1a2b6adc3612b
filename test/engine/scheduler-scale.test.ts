// Scheduler throughput (issue 8 item 6): with ten orgs at their schedule cap, one tick fires every
// due schedule (not a bounded 100), oldest first, so another org's per-minute schedule is not pushed
// to a later tick. The clock is controlled; the lateness in real time is measured by `npm run bench`.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../src/core/clock.js'
import { createSchedule, MAX_SCHEDULES_PER_ORG, Scheduler, type ScheduleRow } from '../../src/core/pipelines/scheduler.js'
import { backendNames } from '../helpers/backends.js'
import { createOrg, openStore, silentLogger, testEngine } from './fixtures.js'

for (const backend of backendNames()) {
  describe(`scheduler at scale (${backend})`, () => {
    test('one tick fires all 1,001 due schedules of 11 orgs, oldest first', async () => {
      const store = await openStore(backend)
      const T = Date.UTC(2026, 4, 4, 12, 0)
      const clock = new ManualClock(T - 10 * 60_000)
      const { engine } = testEngine(store.db, clock)
      // Small batches on purpose: the tick has to keep reading until nothing is due.
      const scheduler = new Scheduler(store.db, engine.catalog, clock, silentLogger, {}, { tickMs: 1000, batchSize: 64 })
      try {
        const rows: ScheduleRow[] = []
        for (let o = 0; o < 10; o++) {
          const org = `busy-${o}`
          await createOrg(store.db, org, { concurrent_limit: 5 })
          for (let i = 0; i < MAX_SCHEDULES_PER_ORG; i++) {
            rows.push({
              schedule_id: `sch_busy${o}_${String(i).padStart(3, '0')}`, org_slug: org, pipeline_id: 'test/basic/wait',
              cron: '* * * * *', timezone: 'UTC', parameters: JSON.stringify({ gate: 'g', n: i }), is_active: 1,
              next_run_at: T, last_run_at: null, last_run_id: null, last_status: null, last_error_code: null, created_at: clock.now(), updated_at: clock.now(),
            } as ScheduleRow)
          }
        }
        for (let i = 0; i < rows.length; i += 100) await store.db.kysely.insertInto('org_schedules').values(rows.slice(i, i + 100)).execute()
        await createOrg(store.db, 'quiet')
        clock.set(T - 2 * 60_000)
        const quiet = await createSchedule(store.db, engine.catalog, 'quiet', { pipeline_id: 'test/basic/noop', cron: '* * * * *', timezone: 'UTC' }, clock.now())
        // Its tick came a minute before everyone else's (a tick missed while the scheduler was down).
        assert.equal(quiet.next_run_at, T - 60_000)

        clock.set(T)
        const out = await scheduler.tick()
        assert.equal(Object.keys(out).length, 1001, 'every due schedule fired in this tick')
        assert.equal(Object.keys(out)[0], quiet.schedule_id, 'the oldest due schedule fired first')
        assert.equal(out[quiet.schedule_id], 'admitted')
        const counts: Record<string, number> = {}
        for (const r of Object.values(out)) counts[r] = (counts[r] ?? 0) + 1
        assert.deepEqual(counts, { admitted: 51, refused: 950 }, 'each busy org admits up to its concurrency, the rest are refused')

        const left = await store.db.kysely.selectFrom('org_schedules').select('schedule_id').where('next_run_at', '<=', T).limit(10).execute()
        assert.deepEqual(left, [], 'nothing is left due')
        const fired = await store.db.kysely.selectFrom('org_schedules').select(['last_run_at', 'next_run_at', 'last_status']).limit(2000).execute()
        assert.ok(fired.every((f) => Number(f.last_run_at) === T && Number(f.next_run_at) === T + 60_000 && f.last_status !== null))
        assert.deepEqual(await scheduler.tick(), {}, 'the same minute never fires twice')
      } finally {
        await scheduler.stop()
        await engine.stop(0)
        await store.cleanup()
      }
    })
  })
}
