import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { ManualClock, systemClock } from '../../src/core/clock.js'
import { admitRun, releaseRun, type AdmitResult } from '../../src/app/dependencies/quota.js'
import { readUsage } from '../../src/core/orgs/usage.js'
import { finishRun } from '../../src/core/pipelines/runs.js'
import { backendNames, needsPostgres } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, openStore, runStatus, slotState, testEngine } from './fixtures.js'

const kinds = (rs: AdmitResult[]) => ({
  admitted: rs.filter((r) => r.kind === 'admitted'),
  refused: rs.filter((r) => r.kind === 'refused'),
  deduplicated: rs.filter((r) => r.kind === 'deduplicated'),
})

for (const backend of backendNames()) {
  describe(`admission (${backend})`, () => {
    test('200 parallel admissions with concurrent limit 3: exactly 3 admitted; releasing one admits exactly one more', async () => {
      const store = await openStore(backend)
      const { engine, gates } = testEngine(store.db, systemClock)
      try {
        await createOrg(store.db, 'acme', { concurrent_limit: 3 })
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const now = Date.now()
        const first = kinds(
          await Promise.all(Array.from({ length: 200 }, (_, i) => engine.admit(admitInput('acme', 'test/basic/wait', { gate: `g${i}`, n: i }, now)))),
        )
        assert.equal(first.admitted.length, 3)
        assert.equal(first.refused.length, 197)
        for (const r of first.refused) {
          assert.ok(r.kind === 'refused')
          assert.equal(r.code, 'CONCURRENT_LIMIT_EXCEEDED')
          assert.ok(r.retryAfterSeconds > 0)
        }
        const ids = first.admitted.map((r) => (r.kind === 'admitted' ? r.run.run_id : ''))
        await eventually(async () => (await Promise.all(ids.map((id) => runStatus(store.db, id)))).every((s) => s === 'RUNNING'), 'three RUNNING runs')
        assert.deepEqual(await slotState(store.db, 'acme'), { running: 3, holding: 3, active: 3 })

        const firstRun = first.admitted[0]!
        assert.ok(firstRun.kind === 'admitted')
        gates.open(JSON.parse(firstRun.run.parameters).gate)
        await eventually(async () => (await runStatus(store.db, firstRun.run.run_id)) === 'COMPLETED', 'first run completed')
        assert.equal((await slotState(store.db, 'acme')).running, 2)

        const second = kinds(
          await Promise.all(Array.from({ length: 50 }, (_, i) => engine.admit(admitInput('acme', 'test/basic/wait', { gate: `h${i}`, n: 1000 + i }, Date.now())))),
        )
        assert.equal(second.admitted.length, 1)
        assert.equal(second.refused.length, 49)
        assert.equal((await slotState(store.db, 'acme')).running, 3)
      } finally {
        gates.openAll()
        await engine.stop(5000)
        const s = await slotState(store.db, 'acme')
        assert.equal(s.running, s.holding)
        await store.cleanup()
      }
    })

    test('daily and monthly limits, month roll-over, and the first run of a new day', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'dayco', { daily_limit: 2, monthly_limit: 3, concurrent_limit: 100 })
        const clock = new ManualClock(Date.UTC(2026, 0, 30, 23, 0, 0)) // 2026-01-30 23:00 UTC
        let n = 0
        const admit = () => admitRun(store.db, admitInput('dayco', 'test/basic/noop', { n: n++ }, clock.now()))

        assert.equal((await admit()).kind, 'admitted')
        assert.equal((await admit()).kind, 'admitted')
        const daily = await admit()
        assert.ok(daily.kind === 'refused')
        assert.equal(daily.code, 'DAILY_QUOTA_EXCEEDED')
        assert.equal(daily.retryAfterSeconds, 3600) // until UTC midnight

        clock.set(Date.UTC(2026, 0, 31, 0, 0, 5)) // a new day: its first run succeeds
        assert.equal((await admit()).kind, 'admitted')
        const monthly = await admit()
        assert.ok(monthly.kind === 'refused')
        assert.equal(monthly.code, 'MONTHLY_QUOTA_EXCEEDED')
        assert.equal(monthly.retryAfterSeconds, 24 * 3600 - 5) // until 2026-02-01 00:00 UTC

        const usageJan = await readUsage(store.db.kysely, 'dayco', clock.now())
        assert.ok(usageJan)
        assert.equal(usageJan.daily.used, 1)
        assert.equal(usageJan.monthly.used, 3)
        assert.equal(usageJan.monthly.remaining, 0)
        assert.equal(usageJan.concurrent.running, 3)
        assert.equal(usageJan.daily.resets_at, new Date(Date.UTC(2026, 1, 1)).toISOString())
        assert.equal(usageJan.monthly.resets_at, new Date(Date.UTC(2026, 1, 1)).toISOString())

        clock.set(Date.UTC(2026, 1, 1, 0, 0, 1)) // month rolls over
        assert.equal((await admit()).kind, 'admitted')
        const usageFeb = await readUsage(store.db.kysely, 'dayco', clock.now())
        assert.equal(usageFeb!.monthly.resets_at, new Date(Date.UTC(2026, 2, 1)).toISOString())
        assert.equal(usageFeb!.monthly.used, 1)
        assert.equal(usageFeb!.daily.used, 1)
        assert.equal(usageFeb!.concurrent.running, 4)
      } finally {
        await store.cleanup()
      }
    })

    test('with the day and the month both spent, the refusal names the monthly limit and waits for the month', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'both', { daily_limit: 1, monthly_limit: 1, concurrent_limit: 100 })
        const clock = new ManualClock(Date.UTC(2026, 3, 10, 12, 0, 0)) // 2026-04-10 12:00 UTC
        assert.equal((await admitRun(store.db, admitInput('both', 'test/basic/noop', { n: 1 }, clock.now()))).kind, 'admitted')
        const r = await admitRun(store.db, admitInput('both', 'test/basic/noop', { n: 2 }, clock.now()))
        assert.ok(r.kind === 'refused')
        assert.equal(r.code, 'MONTHLY_QUOTA_EXCEEDED')
        assert.equal(r.retryAfterSeconds, (Date.UTC(2026, 4, 1) - clock.now()) / 1000, 'until 2026-05-01, not until midnight')
        // Retrying when the old Retry-After (midnight) said so is still refused.
        clock.set(Date.UTC(2026, 3, 11, 0, 0, 1))
        const again = await admitRun(store.db, admitInput('both', 'test/basic/noop', { n: 3 }, clock.now()))
        assert.ok(again.kind === 'refused' && again.code === 'MONTHLY_QUOTA_EXCEEDED')
      } finally {
        await store.cleanup()
      }
    })

    test('a refused admission for an org that does not exist leaves no slot row behind (the slug can be onboarded)', async () => {
      const store = await openStore(backend)
      try {
        const r = await admitRun(store.db, admitInput('gone', 'test/basic/noop', {}, Date.now()))
        assert.ok(r.kind === 'refused' && r.code === 'SUBSCRIPTION_INACTIVE')
        const rows = await store.db.kysely.selectFrom('org_run_slots').select('org_slug').where('org_slug', '=', 'gone').limit(1).execute()
        assert.deepEqual(rows, [])
        // Onboarding creates the slot row with a plain INSERT; it must not collide.
        await store.db.kysely.insertInto('org_run_slots').values({ org_slug: 'gone', running: 0, updated_at: Date.now() }).execute()
      } finally {
        await store.cleanup()
      }
    })

    test('deduplicated admissions consume nothing; inactive subscriptions are refused', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'dedup', { concurrent_limit: 5 })
        await createOrg(store.db, 'frozen', { status: 'SUSPENDED' })
        const now = Date.now()
        const a = await admitRun(store.db, admitInput('dedup', 'test/basic/noop', { date: '2026-01-01' }, now))
        const b = await admitRun(store.db, admitInput('dedup', 'test/basic/noop', { date: '2026-01-01' }, now))
        assert.equal(a.kind, 'admitted')
        assert.ok(b.kind === 'deduplicated' && a.kind === 'admitted')
        assert.equal(b.run.run_id, a.run.run_id)
        assert.deepEqual(await slotState(store.db, 'dedup'), { running: 1, holding: 1, active: 1 })
        assert.equal((await readUsage(store.db.kysely, 'dedup', now))!.daily.used, 1)

        // Once the first run is finished, the same parameters make a new run.
        assert.ok(await finishRun(store.db, { runId: a.run.run_id, from: ['PENDING'], status: 'COMPLETED', now }))
        assert.equal((await admitRun(store.db, admitInput('dedup', 'test/basic/noop', { date: '2026-01-01' }, now))).kind, 'admitted')

        const f = await admitRun(store.db, admitInput('frozen', 'test/basic/noop', {}, now))
        assert.ok(f.kind === 'refused')
        assert.equal(f.code, 'SUBSCRIPTION_INACTIVE')
        assert.equal((await admitRun(store.db, admitInput('nobody', 'test/basic/noop', {}, now))).kind, 'refused')
        assert.equal(await releaseRun(store.db, 'run_doesnotexist00000', 'failed', now), false)
      } finally {
        await store.cleanup()
      }
    })
  })
}

describe('admission across processes (postgres)', { skip: needsPostgres() }, () => {
  test('3 processes firing 60 admissions each at one org with concurrent limit 3: exactly 3 admitted', async () => {
    const store = await openStore('postgres')
    try {
      await createOrg(store.db, 'multi', { concurrent_limit: 3 })
      const startAt = Date.now() + 1500
      const children = [0, 1, 2].map(
        (i) =>
          new Promise<{ admitted: number; refused: number; deduplicated: number; codes: string[] }>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', 'test/engine/admit-worker.ts'], {
              env: { ...process.env, TF_DATABASE_URL: store.backend.databaseUrl!, TF_ORG: 'multi', TF_COUNT: '60', TF_PREFIX: `p${i}-`, TF_START_AT: String(startAt) },
              stdio: ['ignore', 'pipe', 'inherit'],
            })
            let out = ''
            child.stdout.on('data', (d) => (out += d))
            child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`child exited ${code}`))))
          }),
      )
      const results = await Promise.all(children)
      const admitted = results.reduce((a, r) => a + r.admitted, 0)
      const refused = results.reduce((a, r) => a + r.refused, 0)
      assert.equal(admitted, 3)
      assert.equal(refused, 177)
      assert.deepEqual([...new Set(results.flatMap((r) => r.codes))], ['CONCURRENT_LIMIT_EXCEEDED'])
      assert.deepEqual(await slotState(store.db, 'multi'), { running: 3, holding: 3, active: 3 })
    } finally {
      await store.cleanup()
    }
  })
})
