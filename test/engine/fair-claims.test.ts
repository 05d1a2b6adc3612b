// Fair claims (issue 8 item 5): workers take queued runs round-robin across orgs (each org's oldest
// first) and one org holds at most maxPerOrg of a pool's slots, so an org with a deep queue of slow
// runs cannot starve another org. Claims stay atomic: no run is claimed twice by concurrent claimers.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { systemClock } from '../../src/core/clock.js'
import { admitRun } from '../../src/core/orgs/admission.js'
import { allocateClaims, type RunRow } from '../../src/core/pipelines/runs.js'
import { backendNames } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, openStore, reopen, testEngine, type Store } from './fixtures.js'

/** Admits `n` runs of `org`, one millisecond apart from `t0` (so queue order is deterministic). */
async function queue(store: Store, org: string, n: number, t0: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await admitRun(store.db, admitInput(org, 'test/basic/wait', { gate: org, n: i }, t0 + i))
    assert.equal(r.kind, 'admitted')
    if (r.kind === 'admitted') ids.push(r.run.run_id)
  }
  return ids
}

const claim = (store: Store, limit: number, extra: { maxPerOrg?: number; held?: Map<string, number>; workerId?: string } = {}) =>
  allocateClaims(store.db, { workerId: extra.workerId ?? 'w1', now: Date.now() + 60_000, leaseMs: 30_000, limit, maxPerOrg: extra.maxPerOrg, held: extra.held })

const byOrg = (runs: RunRow[]) => {
  const out: Record<string, number> = {}
  for (const r of runs) out[r.org_slug] = (out[r.org_slug] ?? 0) + 1
  return out
}

for (const backend of backendNames()) {
  describe(`fair claims (${backend})`, () => {
    test('an org queued behind 20 runs of another org is claimed among the first claims', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'busy', { concurrent_limit: 50 })
        await createOrg(store.db, 'idle')
        const t0 = Date.now()
        await queue(store, 'busy', 20, t0)
        const [idleRun] = await queue(store, 'idle', 1, t0 + 1000)
        const first = await claim(store, 2)
        assert.equal(first.length, 2)
        assert.ok(first.some((r) => r.run_id === idleRun), 'the idle org’s run is among the first two claims')
        assert.deepEqual(byOrg(first), { busy: 1, idle: 1 })
        const busyFirst = first.find((r) => r.org_slug === 'busy')!
        assert.equal(Number(busyFirst.available_at), t0, 'each org’s oldest run goes first')
        assert.ok(first.every((r) => r.status === 'RUNNING' && r.lease_owner === 'w1'))
      } finally {
        await store.cleanup()
      }
    })

    test('round-robin: each org’s first run, then each org’s second, …', async () => {
      const store = await openStore(backend)
      try {
        for (const org of ['a-co', 'b-co', 'c-co']) await createOrg(store.db, org, { concurrent_limit: 50 })
        const t0 = Date.now()
        await queue(store, 'a-co', 5, t0)
        await queue(store, 'b-co', 3, t0 + 100)
        await queue(store, 'c-co', 1, t0 + 200)
        const got = await claim(store, 6)
        assert.deepEqual(byOrg(got), { 'a-co': 3, 'b-co': 2, 'c-co': 1 })
      } finally {
        await store.cleanup()
      }
    })

    test('one org never holds more than maxPerOrg of a pool’s slots, counting the runs it already holds', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'busy', { concurrent_limit: 50 })
        await createOrg(store.db, 'idle')
        const t0 = Date.now()
        await queue(store, 'busy', 20, t0)
        const first = await claim(store, 4, { maxPerOrg: 2 })
        assert.deepEqual(byOrg(first), { busy: 2 }, 'two slots stay free although 18 runs of busy wait')
        const again = await claim(store, 2, { maxPerOrg: 2, held: new Map([['busy', 2]]) })
        assert.deepEqual(again, [], 'busy is at its share of this pool')
        const other = await claim(store, 2, { maxPerOrg: 2, held: new Map([['busy', 1]]) })
        assert.deepEqual(byOrg(other), { busy: 1 }, 'one more up to the share')
        await queue(store, 'idle', 3, t0 + 5000)
        const mixed = await claim(store, 3, { maxPerOrg: 2, held: new Map([['busy', 2]]) })
        assert.deepEqual(byOrg(mixed), { idle: 2 })
        // Another pool (process) has its own share.
        const second = await claim(store, 4, { maxPerOrg: 2, workerId: 'w2' })
        assert.deepEqual(byOrg(second), { busy: 2, idle: 1 })
      } finally {
        await store.cleanup()
      }
    })

    test('concurrent claimers on separate connections never claim a run twice', async () => {
      const store = await openStore(backend)
      const others = [reopen(store), reopen(store), reopen(store)]
      try {
        for (const org of ['r1', 'r2', 'r3']) await createOrg(store.db, org, { concurrent_limit: 50 })
        const t0 = Date.now()
        const all = [...(await queue(store, 'r1', 20, t0)), ...(await queue(store, 'r2', 10, t0)), ...(await queue(store, 'r3', 5, t0))]
        const claimed: string[] = []
        await Promise.all(
          [store.db, ...others].map(async (db, i) => {
            for (let pass = 0; pass < 40; pass++) {
              const got = await allocateClaims(db, { workerId: `w${i}`, now: Date.now() + 60_000, leaseMs: 30_000, limit: 3, maxPerOrg: 2 })
              claimed.push(...got.map((r) => r.run_id))
            }
          }),
        )
        assert.equal(new Set(claimed).size, claimed.length, 'no run was claimed twice')
        assert.deepEqual(new Set(claimed), new Set(all), 'every run was claimed')
      } finally {
        await Promise.all(others.map((d) => d.close()))
        await store.cleanup()
      }
    })

    test('a worker pool keeps a slot for another org while one org saturates it', async () => {
      const store = await openStore(backend)
      const { engine, gates } = testEngine(store.db, systemClock, { concurrency: 4 })
      try {
        await createOrg(store.db, 'busy', { concurrent_limit: 50 })
        await createOrg(store.db, 'idle')
        const t0 = Date.now()
        await queue(store, 'busy', 20, t0 - 60_000)
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const running = async (org: string) =>
          (await store.db.kysely.selectFrom('org_pipeline_runs').select('run_id').where('org_slug', '=', org).where('status', '=', 'RUNNING').limit(100).execute()).length
        await eventually(async () => (await running('busy')) === 3, 'busy to take its share (3 of 4 slots)')
        const [idleRun] = await queue(store, 'idle', 1, Date.now())
        await eventually(async () => (await store.db.kysely.selectFrom('org_pipeline_runs').select('status').where('run_id', '=', idleRun!).executeTakeFirst())?.status === 'RUNNING', 'the idle org’s run to start')
        assert.equal(await running('busy'), 3, 'busy never held the fourth slot')
        assert.equal(engine.workers.activeRunIds().length, 4)
      } finally {
        gates.openAll()
        await engine.stop(2000)
        await store.cleanup()
      }
    })
  })
}
