// Set-based schedule firing (issue 8 item 6): thousands of due schedules fire in chunks of a few
// statements each. Correctness, not speed (lateness is measured by `npm run bench`): every due
// schedule fires exactly once even with two passes racing, next_run_at advances, quotas are never
// over-admitted (refusals recorded with their code in last_status / last_error_code), duplicates
// within a chunk deduplicate, and a broken schedule is recorded as an error without stopping the rest.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { ManualClock } from '../../src/core/clock.js'
import { Scheduler, type ScheduleRow } from '../../src/core/pipelines/scheduler.js'
import { backendNames } from '../helpers/backends.js'
import { createOrg, openStore, silentLogger, slotState, testEngine } from './fixtures.js'

const ORGS = 30
const PER_ORG = 80

for (const backend of backendNames()) {
  describe(`set-based schedule firing (${backend})`, () => {
    test(`${ORGS * PER_ORG} due schedules: each fires exactly once, quotas hold, refusals are recorded`, async () => {
      const store = await openStore(backend)
      const T = Date.UTC(2026, 5, 10, 8, 30)
      const clock = new ManualClock(T - 5 * 60_000)
      const { engine } = testEngine(store.db, clock)
      // Small batches and chunks on purpose: many batches per pass, many chunks per batch.
      const scheduler = new Scheduler(store.db, engine.catalog, clock, silentLogger, {}, { tickMs: 1000, batchSize: 300, firesPerTransaction: 40 })
      try {
        const rows: ScheduleRow[] = []
        const mk = (org: string, id: string, pipeline: string, params: Record<string, unknown>): ScheduleRow => ({
          schedule_id: id, name: null, org_slug: org, pipeline_id: pipeline, cron: '* * * * *', timezone: 'UTC', parameters: JSON.stringify(params),
          is_active: 1, next_run_at: T, last_run_at: null, last_run_id: null, last_status: null, last_error_code: null, created_at: clock.now(), updated_at: clock.now(),
        })
        for (let o = 0; o < ORGS; o++) {
          const org = `sb-${o}`
          // org 0: 5 runs a day; org 1: 3 at once; the others: room for every fire.
          await createOrg(store.db, org, o === 0 ? { daily_limit: 5, concurrent_limit: 500 } : o === 1 ? { concurrent_limit: 3 } : { concurrent_limit: 500, daily_limit: 5000 })
          for (let i = 0; i < PER_ORG; i++) rows.push(mk(org, `sch_sb${o}_${String(i).padStart(3, '0')}`, 'test/basic/wait', { gate: 'g', n: i }))
        }
        // Two schedules of one org with the same parameters: one run, the other deduplicated onto it.
        rows.push(mk('sb-2', 'sch_dup_a', 'test/basic/wait', { gate: 'dup', n: 1 }), mk('sb-2', 'sch_dup_b', 'test/basic/wait', { gate: 'dup', n: 1 }))
        // A schedule whose template is gone: recorded, the rest still fire.
        rows.push(mk('sb-3', 'sch_broken', 'test/basic/nope', {}))
        // Not due yet, and paused: untouched.
        rows.push({ ...mk('sb-4', 'sch_later', 'test/basic/wait', { gate: 'later' }), next_run_at: T + 30_000 })
        rows.push({ ...mk('sb-4', 'sch_paused', 'test/basic/wait', { gate: 'paused' }), is_active: 0 })
        for (let i = 0; i < rows.length; i += 200) await store.db.kysely.insertInto('org_schedules').values(rows.slice(i, i + 200)).execute()
        const due = rows.length - 2

        clock.set(T)
        // Two passes racing over the same due schedules: compare-and-set (and SKIP LOCKED) let each fire once.
        const [a, b] = await Promise.all([scheduler.tick(), scheduler.tick()])
        const fired = new Map<string, string>()
        for (const out of [a, b]) {
          for (const [id, r] of Object.entries(out)) {
            if (r === 'skipped') continue
            assert.ok(!fired.has(id), `${id} fired once, not twice`)
            fired.set(id, r)
          }
        }
        assert.equal(fired.size, due, 'every due schedule fired')
        assert.ok(!fired.has('sch_later') && !fired.has('sch_paused'))

        const runs = await sql<{ schedule_id: string; n: number | string }>`
          SELECT schedule_id, count(*) AS n FROM org_pipeline_runs WHERE trigger_type = 'schedule' GROUP BY schedule_id`.execute(store.db.kysely)
        assert.ok(runs.rows.every((r) => Number(r.n) === 1), 'at most one run per schedule')
        const admitted = [...fired.values()].filter((r) => r === 'admitted').length
        assert.equal(runs.rows.length, admitted, 'one run row per admitted fire')
        // sb-0: 5 a day; sb-1: 3 at once; 28 orgs × 80 + the duplicate's first.
        assert.equal(admitted, 5 + 3 + (ORGS - 2) * PER_ORG + 1)

        const all = await store.db.kysely.selectFrom('org_schedules').selectAll().limit(5000).execute()
        const byId = new Map(all.map((s) => [s.schedule_id, s]))
        for (const [id] of fired) {
          const s = byId.get(id)!
          assert.equal(Number(s.next_run_at), T + 60_000, `${id}: next_run_at advanced to the next minute`)
          assert.equal(Number(s.last_run_at), T)
          assert.ok(s.last_status !== null)
        }
        const statuses = (org: string) => {
          const out: Record<string, number> = {}
          for (const s of all) if (s.org_slug === org && s.schedule_id.startsWith('sch_sb')) out[`${s.last_status}:${s.last_error_code ?? ''}`] = (out[`${s.last_status}:${s.last_error_code ?? ''}`] ?? 0) + 1
          return out
        }
        assert.deepEqual(statuses('sb-0'), { 'ADMITTED:': 5, 'REFUSED:DAILY_QUOTA_EXCEEDED': PER_ORG - 5 })
        assert.deepEqual(statuses('sb-1'), { 'ADMITTED:': 3, 'REFUSED:CONCURRENT_LIMIT_EXCEEDED': PER_ORG - 3 })
        assert.deepEqual(statuses('sb-9'), { 'ADMITTED:': PER_ORG })
        const dupA = byId.get('sch_dup_a')!
        const dupB = byId.get('sch_dup_b')!
        assert.deepEqual([dupA.last_status, dupB.last_status].sort(), ['ADMITTED', 'DEDUPLICATED'])
        assert.equal(dupA.last_run_id, dupB.last_run_id, 'the duplicate points at the same run')
        assert.equal(byId.get('sch_broken')!.last_status, 'ERROR')
        assert.equal(byId.get('sch_broken')!.last_error_code, 'TEMPLATE_NOT_FOUND')
        assert.equal(byId.get('sch_later')!.last_status, null)
        assert.equal(byId.get('sch_paused')!.last_status, null)

        // Counters match the runs: no over-admission, slot counts equal the runs holding a slot.
        const usage = await store.db.kysely.selectFrom('org_usage_quotas').select(['org_slug', 'runs_started']).where('period', '=', 'day').limit(100).execute()
        const started = new Map(usage.map((u) => [u.org_slug, Number(u.runs_started)]))
        assert.equal(started.get('sb-0'), 5)
        assert.equal(started.get('sb-1'), 3)
        assert.equal(started.get('sb-9'), PER_ORG)
        for (const org of ['sb-0', 'sb-1', 'sb-2', 'sb-9']) {
          const st = await slotState(store.db, org)
          assert.equal(st.running, st.holding, `${org}: slot counter = runs holding a slot`)
        }

        assert.deepEqual(await scheduler.tick(), {}, 'the same minute never fires twice')
        clock.set(T + 60_000)
        const again = await scheduler.tick()
        assert.ok(Object.keys(again).length >= due, 'the next minute fires them all again')
      } finally {
        await scheduler.stop()
        await engine.stop(0)
        await store.cleanup()
      }
    })
  })
}
