import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../src/core/clock.js'
import { admitRun } from '../../src/app/dependencies/quota.js'
import { finishRun } from '../../src/core/pipelines/runs.js'
import { createSchedule, deleteSchedule, listSchedules, ScheduleError, Scheduler } from '../../src/core/pipelines/scheduler.js'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { sql } from 'kysely'
import { backendNames, needsPostgres } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, openStore, reopen, silentLogger, testEngine } from './fixtures.js'
import type { Db } from '../../src/core/db/database.js'

const runsOf = (db: Db, org: string) =>
  db.kysely.selectFrom('org_pipeline_runs').selectAll().where('org_slug', '=', org).orderBy('created_at').limit(100).execute()

for (const backend of backendNames()) {
  describe(`scheduler (${backend})`, () => {
    test('a due schedule creates one run, missed ticks fire once, refusals are recorded and not retried', async () => {
      const store = await openStore(backend)
      const clock = new ManualClock(Date.UTC(2026, 2, 10, 10, 30))
      const { engine } = testEngine(store.db, clock)
      const scheduler = new Scheduler(store.db, engine.catalog, clock, silentLogger, {}, { tickMs: 1000 })
      try {
        await createOrg(store.db, 'sched')
        const s = await createSchedule(store.db, engine.catalog, 'sched', { pipeline_id: 'test/basic/dag', cron: '0 * * * *', timezone: 'Europe/Paris' }, clock.now())
        assert.equal(s.next_run_at, Date.UTC(2026, 2, 10, 11, 0))
        assert.deepEqual(await scheduler.tick(), {})

        clock.set(Date.UTC(2026, 2, 10, 11, 0))
        assert.deepEqual(await scheduler.tick(), { [s.schedule_id]: 'admitted' })
        assert.deepEqual(await scheduler.tick(), {}, 'the same tick never fires twice')
        let runs = await runsOf(store.db, 'sched')
        assert.equal(runs.length, 1)
        assert.equal(runs[0]!.trigger_type, 'schedule')
        assert.equal(runs[0]!.schedule_id, s.schedule_id)
        assert.deepEqual(JSON.parse(runs[0]!.parameters), { date: '2026-03-09' }, 'date=yesterday resolved when the schedule fired')
        assert.ok(await finishRun(store.db, { runId: runs[0]!.run_id, from: ['PENDING'], status: 'COMPLETED', now: clock.now() }))

        clock.set(Date.UTC(2026, 2, 10, 20, 30)) // nine ticks missed
        assert.deepEqual(await scheduler.tick(), { [s.schedule_id]: 'admitted' })
        assert.deepEqual(await scheduler.tick(), {})
        runs = await runsOf(store.db, 'sched')
        assert.equal(runs.length, 2, 'missed ticks fire once, not N times')
        const after = (await listSchedules(store.db, 'sched', {})).schedules[0]!
        assert.equal(after.next_run_at, Date.UTC(2026, 2, 10, 21, 0))
        assert.equal(after.last_status, 'ADMITTED')
        assert.equal(after.last_run_id, runs[1]!.run_id)

        // Refusal: recorded on the schedule, next tick moves on, no retry loop.
        await createOrg(store.db, 'tight', { daily_limit: 1 })
        assert.equal((await admitRun(store.db, admitInput('tight', 'test/basic/noop', {}, clock.now()))).kind, 'admitted')
        const t = await createSchedule(store.db, engine.catalog, 'tight', { pipeline_id: 'test/basic/wait', cron: '*/5 * * * *', timezone: 'UTC', parameters: { gate: 'x' } }, clock.now())
        clock.set(t.next_run_at)
        assert.deepEqual(await scheduler.tick(), { [t.schedule_id]: 'refused' })
        assert.deepEqual(await scheduler.tick(), {}, 'a refusal is not retried in a tight loop')
        const refused = (await listSchedules(store.db, 'tight', {})).schedules[0]!
        assert.equal(refused.last_status, 'REFUSED')
        assert.equal(refused.last_error_code, 'DAILY_QUOTA_EXCEEDED')
        assert.equal(refused.next_run_at, t.next_run_at + 5 * 60_000)
        assert.equal((await runsOf(store.db, 'tight')).length, 1)
      } finally {
        await scheduler.stop()
        await store.cleanup()
      }
    })

    test('schedule validation, listing and org-scoped delete', async () => {
      const store = await openStore(backend)
      const clock = new ManualClock(Date.UTC(2026, 0, 1))
      const { engine } = testEngine(store.db, clock)
      try {
        await createOrg(store.db, 'one')
        await createOrg(store.db, 'two')
        const bad = async (input: Parameters<typeof createSchedule>[3], code: string, fields?: string[]) => {
          await assert.rejects(createSchedule(store.db, engine.catalog, 'one', input, clock.now()), (e: unknown) => {
            assert.ok(e instanceof ScheduleError)
            assert.equal(e.code, code)
            if (fields) assert.deepEqual(e.fields, fields)
            return true
          })
        }
        await bad({ pipeline_id: 'test/basic/noop', cron: 'not a cron', timezone: 'UTC' }, 'INVALID_CRON', ['cron'])
        await bad({ pipeline_id: 'test/basic/noop', cron: '* * * * * *', timezone: 'UTC' }, 'INVALID_CRON', ['cron'])
        await bad({ pipeline_id: 'test/basic/noop', cron: '@secondly', timezone: 'UTC' }, 'INVALID_CRON', ['cron'])
        await bad({ pipeline_id: 'test/basic/noop', cron: '0 0 * * *', timezone: 'Mars/Olympus' }, 'INVALID_TIMEZONE', ['timezone'])
        await bad({ pipeline_id: 'test/basic/missing', cron: '0 0 * * *', timezone: 'UTC' }, 'TEMPLATE_NOT_FOUND')
        await bad({ pipeline_id: 'test/basic/wait', cron: '0 0 * * *', timezone: 'UTC', parameters: { n: -1, zzz: 1 } }, 'INVALID_PARAMETERS', ['parameters.zzz', 'parameters.n'])
        await assert.rejects(
          createSchedule(store.db, engine.catalog, 'ghost', { pipeline_id: 'test/basic/noop', cron: '@daily', timezone: 'UTC' }, clock.now()),
          (e: unknown) => e instanceof ScheduleError && e.code === 'ORG_NOT_FOUND',
        )

        const created = []
        for (let i = 0; i < 5; i++) {
          clock.advance(1000)
          created.push(await createSchedule(store.db, engine.catalog, 'one', { pipeline_id: 'test/basic/wait', cron: '@daily', timezone: 'America/New_York', parameters: { n: i } }, clock.now()))
        }
        const p1 = await listSchedules(store.db, 'one', { limit: 3 })
        const p2 = await listSchedules(store.db, 'one', { limit: 3, after: p1.next })
        assert.deepEqual([...p1.schedules, ...p2.schedules].map((s) => s.schedule_id), created.map((s) => s.schedule_id).reverse())
        assert.equal(p2.next, null)
        assert.equal((await listSchedules(store.db, 'two', {})).schedules.length, 0)

        assert.equal(await deleteSchedule(store.db, 'two', created[0]!.schedule_id), false, "another org's schedule is not found")
        assert.equal(await deleteSchedule(store.db, 'one', created[0]!.schedule_id), true)
        assert.equal(await deleteSchedule(store.db, 'one', created[0]!.schedule_id), false)
      } finally {
        await store.cleanup()
      }
    })

    test('two scheduler instances still create exactly one run per due tick', async () => {
      const store = await openStore(backend)
      const clock = new ManualClock(Date.UTC(2026, 5, 1, 8, 0))
      const { engine } = testEngine(store.db, clock)
      // better-sqlite3 is synchronous: two handles in one process would block each other's event loop,
      // so on SQLite both instances share the handle (separate processes get their own in production).
      const otherDb = backend === 'postgres' ? reopen(store) : store.db
      const s1 = new Scheduler(store.db, engine.catalog, clock, silentLogger, {}, { tickMs: 1000 })
      const s2 = new Scheduler(otherDb, engine.catalog, clock, silentLogger, {}, { tickMs: 1000 })
      try {
        const ids: string[] = []
        for (let i = 0; i < 5; i++) {
          await createOrg(store.db, `twin${i}`)
          ids.push((await createSchedule(store.db, engine.catalog, `twin${i}`, { pipeline_id: 'test/basic/noop', cron: '*/10 * * * *', timezone: 'UTC' }, clock.now())).schedule_id)
        }
        for (let round = 0; round < 3; round++) {
          clock.advance(10 * 60_000)
          const [r1, r2] = await Promise.all([s1.tick(), s2.tick()])
          const fired = [...Object.entries(r1), ...Object.entries(r2)].filter(([, v]) => v !== 'skipped')
          assert.equal(fired.length, 5, `round ${round}: each schedule fired once`)
          assert.ok(fired.every(([, v]) => v === 'admitted'))
          if (backend === 'postgres') assert.equal([s1.isLeader, s2.isLeader].filter(Boolean).length, 1, 'one leader on PostgreSQL')
          // Finish the runs so a duplicate fire could not hide behind deduplication.
          for (let i = 0; i < 5; i++) {
            for (const r of await runsOf(store.db, `twin${i}`)) {
              if (r.status === 'PENDING') await finishRun(store.db, { runId: r.run_id, from: ['PENDING'], status: 'COMPLETED', now: clock.now() })
            }
          }
        }
        for (let i = 0; i < 5; i++) assert.equal((await runsOf(store.db, `twin${i}`)).length, 3)
      } finally {
        await s1.stop()
        await s2.stop()
        if (otherDb !== store.db) await otherDb.close()
        await store.cleanup()
      }
    })
  })
}

/** A TCP proxy to PostgreSQL that, while `drop` is set, cuts the connection at the client's first query. */
async function droppingProxy(target: string): Promise<{ url: string; drop: { on: boolean }; close(): Promise<void> }> {
  const u = new URL(target)
  const drop = { on: true }
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(Number(u.port || 5432), u.hostname)
    sockets.add(client).add(upstream)
    let startup = true
    client.on('data', (chunk: Buffer) => {
      // The startup packet has no type byte; after it, 'P' (parse) or 'Q' (query) starts a query.
      const isQuery = !startup && (chunk[0] === 0x50 || chunk[0] === 0x51)
      startup = false
      if (drop.on && isQuery) {
        client.destroy()
        upstream.destroy()
        return
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk) => client.write(chunk))
    for (const s of [client, upstream]) {
      s.on('error', () => undefined)
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const proxied = new URL(target)
  proxied.hostname = '127.0.0.1'
  proxied.port = String((server.address() as AddressInfo).port)
  return {
    url: proxied.toString(),
    drop,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

describe('scheduler leadership connection (postgres)', { skip: needsPostgres() }, () => {
  test('the lock connection dying (while taking the lock, or later) never crashes the process; leadership moves on', async () => {
    const store = await openStore('postgres')
    const clock = new ManualClock(Date.UTC(2026, 5, 1, 8, 0))
    const { engine } = testEngine(store.db, clock)
    const proxy = await droppingProxy(store.backend.databaseUrl!)
    const viaProxy: Db = { ...store.db, pgUrl: proxy.url }
    const s1 = new Scheduler(viaProxy, engine.catalog, clock, silentLogger, {}, { tickMs: 1000 })
    const s2 = new Scheduler(store.db, engine.catalog, clock, silentLogger, {}, { tickMs: 1000 })
    try {
      await createOrg(store.db, 'lead')
      const s = await createSchedule(store.db, engine.catalog, 'lead', { pipeline_id: 'test/basic/noop', cron: '*/10 * * * *', timezone: 'UTC' }, clock.now())

      // The connection drops during pg_try_advisory_lock: no leadership, no crash, nothing fired.
      assert.deepEqual(await s1.tick(), {})
      assert.equal(s1.isLeader, false)
      await new Promise((r) => setImmediate(r))

      proxy.drop.on = false
      clock.advance(10 * 60_000)
      assert.deepEqual(await s1.tick(), { [s.schedule_id]: 'admitted' })
      assert.equal(s1.isLeader, true)
      assert.deepEqual(await s2.tick(), {}, 'the other instance is not the leader')
      assert.equal(s2.isLeader, false)

      // The leader's lock connection is killed: it steps down and the other instance takes over.
      // s1's own lock connection, not any holder of the lock id: test files running beside this one
      // on the same server run schedulers of their own, and killing theirs broke their connections.
      const pid = (s1 as unknown as { lockClient: { processID: number } | null }).lockClient?.processID
      assert.ok(pid, 's1 holds its lock on a connection of its own')
      const holder = await sql<{ pid: number }>`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 727002 AND granted AND pid = ${pid} LIMIT 1`.execute(store.db.kysely)
      assert.ok(holder.rows[0], 'that connection holds the scheduler lock')
      await sql`SELECT pg_terminate_backend(${pid})`.execute(store.db.kysely)
      await eventually(async () => !s1.isLeader, 'the old leader to step down')
      clock.advance(10 * 60_000)
      const fired = await eventually(async () => {
        const r = await s2.tick()
        return s2.isLeader ? r : undefined
      }, 'the other instance to take leadership')
      assert.deepEqual(fired, { [s.schedule_id]: 'deduplicated' }, 'fired (the first run is still PENDING, so it deduplicates)')
    } finally {
      await s1.stop()
      await s2.stop()
      await proxy.close()
      await store.cleanup()
    }
  })
})
