import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { systemClock } from '../../src/core/clock.js'
import { admitRun, releaseRun } from '../../src/app/dependencies/quota.js'
import { readUsage } from '../../src/core/orgs/usage.js'
import { getRun, listStepLogs, requestCancel } from '../../src/core/pipelines/runs.js'
import { backendNames } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, openStore, runStatus, silentLogger, slotState, testEngine, type Store } from './fixtures.js'
import type { Engine } from '../../src/core/pipelines/engine.js'
import { Reaper } from '../../src/core/pipelines/worker.js'
import type { Db } from '../../src/core/db/database.js'
import type { KyselyPlugin } from 'kysely'

async function admitted(engine: Engine, org: string, pipeline: string, params: Record<string, unknown> = {}) {
  const r = await engine.admit(admitInput(org, pipeline, params, Date.now()))
  assert.equal(r.kind, 'admitted')
  assert.ok(r.kind === 'admitted')
  return r.run.run_id
}

const terminal = (store: Store, runId: string) =>
  eventually(async () => {
    const s = await runStatus(store.db, runId)
    return s && !['PENDING', 'RUNNING'].includes(s) ? s : undefined
  }, `run ${runId} to finish`)

async function assertNoLeak(store: Store, org: string) {
  const s = await slotState(store.db, org)
  assert.ok(s.running >= 0)
  assert.equal(s.running, s.holding, 'slot counter equals runs holding a slot')
  assert.equal(s.holding, s.active, 'only PENDING/RUNNING runs hold slots')
}

for (const backend of backendNames()) {
  describe(`execution (${backend})`, () => {
    test('completed, failed, timed-out and cancelled runs each release exactly one slot', async () => {
      const store = await openStore(backend)
      const { engine, gates } = testEngine(store.db, systemClock)
      try {
        await createOrg(store.db, 'rel', { concurrent_limit: 10 })
        engine.start({ workers: true, scheduler: false, maintenance: false })

        const ok = await admitted(engine, 'rel', 'test/basic/noop')
        const failed = await admitted(engine, 'rel', 'test/basic/fail')
        const timedOut = await admitted(engine, 'rel', 'test/basic/pipeline-timeout')
        const waiting = await admitted(engine, 'rel', 'test/basic/wait', { gate: 'never' })
        assert.equal(await terminal(store, ok), 'COMPLETED')
        assert.equal(await terminal(store, failed), 'FAILED')
        assert.equal(await terminal(store, timedOut), 'TIMEOUT')

        await eventually(async () => (await runStatus(store.db, waiting)) === 'RUNNING', 'wait run RUNNING')
        assert.deepEqual(await engine.cancelRun('rel', waiting), { kind: 'requested' })
        assert.equal(await terminal(store, waiting), 'CANCELLED')
        assert.deepEqual(await engine.cancelRun('rel', waiting), { kind: 'terminal', status: 'CANCELLED' })

        await assertNoLeak(store, 'rel')
        assert.equal((await slotState(store.db, 'rel')).running, 0)
        for (const id of [ok, failed, timedOut, waiting]) assert.equal(await releaseRun(store.db, id, 'failed', Date.now()), false, 'second release is a no-op')
        assert.equal((await slotState(store.db, 'rel')).running, 0, 'never negative')

        const usage = await readUsage(store.db.kysely, 'rel', Date.now())
        assert.equal(usage!.daily.used, 4)
        assert.equal(usage!.succeeded_today, 1)
        assert.equal(usage!.failed_today, 2) // FAILED + TIMEOUT; CANCELLED counts as neither

        const failedRun = await getRun(store.db, 'rel', failed)
        assert.equal(failedRun!.error_code, 'UPSTREAM_ERROR')
        assert.equal(failedRun!.error_message, 'Step boom failed: Upstream said no')
        const steps = await listStepLogs(store.db, 'rel', failed, {})
        assert.deepEqual(steps.steps.map((s) => [s.step_id, s.status]), [['boom', 'FAILED']], 'the step after a failure never runs')
        const timeoutRun = await getRun(store.db, 'rel', timedOut)
        assert.equal(timeoutRun!.error_code, 'PIPELINE_TIMEOUT')
      } finally {
        gates.openAll()
        await engine.stop(2000)
        await store.cleanup()
      }
    })

    test('cancel while PENDING releases once; a dedup hit never releases; released slots are clamped at zero', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'pend', { concurrent_limit: 5 })
        const now = Date.now()
        const a = await admitRun(store.db, admitInput('pend', 'test/basic/noop', { x: 1 }, now))
        const dup = await admitRun(store.db, admitInput('pend', 'test/basic/noop', { x: 1 }, now))
        assert.ok(a.kind === 'admitted' && dup.kind === 'deduplicated')
        assert.equal((await slotState(store.db, 'pend')).running, 1)
        assert.deepEqual(await requestCancel(store.db, 'pend', a.run.run_id, now), { kind: 'cancelled' })
        assert.deepEqual(await requestCancel(store.db, 'pend', a.run.run_id, now), { kind: 'terminal', status: 'CANCELLED' })
        assert.deepEqual(await requestCancel(store.db, 'other', a.run.run_id, now), { kind: 'not_found' })
        await assertNoLeak(store, 'pend')
        assert.equal((await slotState(store.db, 'pend')).running, 0)

        // A counter that is already 0 (e.g. repaired by hand) stays 0 on release.
        const b = await admitRun(store.db, admitInput('pend', 'test/basic/noop', { x: 2 }, now))
        assert.ok(b.kind === 'admitted')
        await store.db.kysely.updateTable('org_run_slots').set({ running: 0 }).where('org_slug', '=', 'pend').execute()
        assert.equal(await releaseRun(store.db, b.run.run_id, 'failed', now), true)
        assert.equal(await releaseRun(store.db, b.run.run_id, 'failed', now), false)
        assert.equal((await slotState(store.db, 'pend')).running, 0)
      } finally {
        await store.cleanup()
      }
    })

    test("a step timeout in org A's run does not disturb org B's concurrent run", async () => {
      const store = await openStore(backend)
      const { engine, gates } = testEngine(store.db, systemClock)
      try {
        await createOrg(store.db, 'orga')
        await createOrg(store.db, 'orgb')
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const b = await admitted(engine, 'orgb', 'test/basic/wait', { gate: 'b' })
        await eventually(async () => (await runStatus(store.db, b)) === 'RUNNING', 'B running')
        const a = await admitted(engine, 'orga', 'test/basic/step-timeout')
        assert.equal(await terminal(store, a), 'TIMEOUT')
        const aRun = await getRun(store.db, 'orga', a)
        assert.equal(aRun!.error_code, 'STEP_TIMEOUT')
        assert.equal(await runStatus(store.db, b), 'RUNNING', "B is untouched by A's timeout")
        gates.open('b')
        assert.equal(await terminal(store, b), 'COMPLETED')
        const bSteps = await listStepLogs(store.db, 'orgb', b, {})
        assert.deepEqual(bSteps.steps.map((s) => s.status), ['COMPLETED'])
        await assertNoLeak(store, 'orga')
        await assertNoLeak(store, 'orgb')
      } finally {
        gates.openAll()
        await engine.stop(2000)
        await store.cleanup()
      }
    })

    test('dependency order, parallel branches, retries with backoff and sanitized unknown errors', async () => {
      const store = await openStore(backend)
      const { engine, log } = testEngine(store.db, systemClock)
      try {
        await createOrg(store.db, 'dag')
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const dag = await admitted(engine, 'dag', 'test/basic/dag', { date: '2026-03-01' })
        const flaky = await admitted(engine, 'dag', 'test/basic/flaky')
        const raw = await admitted(engine, 'dag', 'test/basic/raw-fail')
        assert.equal(await terminal(store, dag), 'COMPLETED')
        assert.equal(await terminal(store, flaky), 'COMPLETED')
        assert.equal(await terminal(store, raw), 'FAILED')

        const ev = log.events.filter((e) => e.includes(dag)).map((e) => e.replace(`:${dag}`, ''))
        const at = (e: string) => ev.indexOf(e)
        assert.ok(at('end:a') < at('start:b') && at('end:a') < at('start:c'))
        assert.ok(at('end:b') < at('start:d') && at('end:c') < at('start:d'))
        assert.ok(at('start:c') < at('end:b') || at('start:b') < at('end:c'), 'b and c overlap')

        const flakySteps = (await listStepLogs(store.db, 'dag', flaky, {})).steps
        assert.deepEqual(flakySteps.map((s) => [s.attempt, s.status, s.error_code]), [
          [1, 'FAILED', 'RATE_LIMITED'],
          [2, 'FAILED', 'RATE_LIMITED'],
          [3, 'COMPLETED', null],
        ])
        assert.equal(flakySteps[2]!.rows_processed, 7)

        const rawRun = await getRun(store.db, 'dag', raw)
        assert.equal(rawRun!.error_code, 'PROCESSOR_ERROR')
        assert.ok(!rawRun!.error_message!.includes('secret-token'), 'raw exception text never stored')
        const rawSteps = (await listStepLogs(store.db, 'dag', raw, {})).steps
        assert.equal(rawSteps[0]!.error_message, 'Step failed with an unexpected error')

        // keyset pagination over step logs
        const page1 = await listStepLogs(store.db, 'dag', dag, { limit: 3 })
        assert.equal(page1.steps.length, 3)
        assert.ok(page1.next)
        const page2 = await listStepLogs(store.db, 'dag', dag, { limit: 3, after: page1.next })
        assert.equal(page2.steps.length, 1)
        assert.equal(page2.next, null)
        assert.deepEqual(new Set([...page1.steps, ...page2.steps].map((s) => s.step_id)), new Set(['a', 'b', 'c', 'd']))
        assert.equal((await listStepLogs(store.db, 'other-org', dag, {})).steps.length, 0)
        await assertNoLeak(store, 'dag')
      } finally {
        await engine.stop(2000)
        await store.cleanup()
      }
    })

    test('a worker that cannot renew its lease stops the run before the reaper can hand it to another worker', async () => {
      const store = await openStore(backend)
      // The engine's own handle fails every query while `down` is set (database unreachable for this worker only).
      const down = { on: false }
      const breaker: KyselyPlugin = {
        transformQuery: (args) => {
          if (down.on) throw new Error('database unreachable')
          return args.node
        },
        transformResult: async (args) => args.result,
      }
      const isolated: Db = { ...store.db, kysely: store.db.kysely.withPlugin(breaker) }
      const { engine, gates } = testEngine(isolated, systemClock, { leaseMs: 800, heartbeatMs: 100, reaperMs: 60_000 })
      try {
        await createOrg(store.db, 'fence')
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const id = await admitted(engine, 'fence', 'test/basic/wait', { gate: 'never' })
        await eventually(async () => (await runStatus(store.db, id)) === 'RUNNING' && engine.workers.activeRunIds().includes(id), 'run RUNNING')

        down.on = true
        // Without fencing the step would keep running after the lease is gone, alongside the next owner.
        await eventually(async () => engine.workers.activeRunIds().length === 0, 'the worker to abort the run it can no longer renew', 5000)
        const run = await getRun(store.db, 'fence', id)
        assert.equal(run!.status, 'RUNNING', 'left for the reaper: this worker cannot write')

        const reaper = new Reaper(store.db, systemClock, silentLogger, { intervalMs: 60_000, backoffMs: () => 0 })
        await eventually(async () => {
          await reaper.runOnce()
          return (await runStatus(store.db, id)) === 'FAILED'
        }, 'the reaper to fail the run')
        assert.equal((await getRun(store.db, 'fence', id))!.error_code, 'WORKER_LOST')
        await assertNoLeak(store, 'fence')
      } finally {
        down.on = false
        gates.openAll()
        await engine.stop(1000)
        await store.cleanup()
      }
    })

    test('graceful stop hands unfinished runs back as PENDING with their slot', async () => {
      const store = await openStore(backend)
      const { engine, gates } = testEngine(store.db, systemClock)
      try {
        await createOrg(store.db, 'stopco')
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const id = await admitted(engine, 'stopco', 'test/basic/wait', { gate: 'stop' })
        await eventually(async () => (await runStatus(store.db, id)) === 'RUNNING', 'running')
        await engine.stop(100)
        const run = await getRun(store.db, 'stopco', id)
        assert.equal(run!.status, 'PENDING')
        assert.equal(run!.lease_owner, null)
        assert.deepEqual(await slotState(store.db, 'stopco'), { running: 1, holding: 1, active: 1 })
        const steps = (await listStepLogs(store.db, 'stopco', id, {})).steps
        assert.deepEqual(steps.map((s) => [s.status, s.error_code]), [['CANCELLED', 'INTERRUPTED']])

        // Another worker picks it up and finishes it.
        const second = testEngine(store.db, systemClock, { gates })
        second.engine.start({ workers: true, scheduler: false, maintenance: false })
        gates.open('stop')
        assert.equal(await terminal(store, id), 'COMPLETED')
        await second.engine.stop(1000)
        await assertNoLeak(store, 'stopco')
      } finally {
        gates.openAll()
        await store.cleanup()
      }
    })
  })
}
