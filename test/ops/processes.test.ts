// Processes seen recently: a `tenantflow worker` checks in while idle, leaves on a clean stop, and a
// process that stopped beating drops out of the operators' system health and is later forgotten.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames, testEnv } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { loadConfig } from '../../src/app/config.js'
import { startWorker } from '../../src/app/worker.js'
import { runMaintenance } from '../../src/core/pipelines/maintenance.js'
import { PROCESS_FORGET_MS, PROCESS_RECENT_MS } from '../../src/core/observability/process-registry.js'

for (const backend of backendNames()) {
  describe(`processes seen recently (${backend})`, () => {
    test('an idle worker is listed with its role and slots, and is gone after a clean stop', async () => {
      const t = await buildTestApp(backend)
      try {
        const system = async () => {
          const r = await t.app.inject({ url: '/api/v1/admin/system', headers: t.root })
          assert.equal(r.statusCode, 200, r.body)
          return r.json() as { processes: { process_id: string; role: string; worker_slots: number; runs_in_flight: number; scheduler: boolean; pid: number }[] }
        }
        assert.deepEqual((await system()).processes, [], 'nothing has started an engine yet')
        const worker = await startWorker(loadConfig(testEnv(t.backend, { LOG_LEVEL: 'silent', WORKER_CONCURRENCY: '3', SCHEDULER_ENABLED: 'false' })))
        let stopped = false
        try {
          const id = worker.runtime.ctx.engine!.workers.workerId
          const seen = (await system()).processes
          assert.equal(seen.length, 1)
          assert.deepEqual({ ...seen[0], pid: undefined }, { ...seen[0], process_id: id, role: 'worker', worker_slots: 3, runs_in_flight: 0, scheduler: false, pid: undefined })
          assert.equal(seen[0]!.pid, process.pid)
          // The org key cannot read it.
          const key = await t.onboard('org-p')
          assert.equal((await t.app.inject({ url: '/api/v1/admin/system', headers: t.org(key) })).statusCode, 403)
          await worker.stop()
          stopped = true
          assert.deepEqual((await system()).processes, [], 'a clean stop removes the row')
        } finally {
          if (!stopped) await worker.stop()
        }
      } finally {
        await t.close()
      }
    })

    test('a process that stopped beating drops out at once and is forgotten by maintenance after a day', async () => {
      const t = await buildTestApp(backend)
      try {
        const now = t.ctx.clock.now()
        const row = (id: string, seen: number) => ({ process_id: id, role: 'worker', host: 'h', pid: 1, worker_slots: 1, runs_in_flight: 0, scheduler: 0, started_at: seen, last_seen_at: seen })
        await t.ctx.db.kysely
          .insertInto('tenantflow_processes')
          .values([row('fresh', now), row('missed-beats', now - PROCESS_RECENT_MS - 1000), row('long-gone', now - PROCESS_FORGET_MS - 1000)])
          .execute()
        const listed = (await t.app.inject({ url: '/api/v1/admin/system', headers: t.root })).json().processes.map((p: { process_id: string }) => p.process_id)
        assert.deepEqual(listed, ['fresh'])
        const r = await runMaintenance(t.ctx.db, 90, now)
        assert.equal(r.processRowsDeleted, 1)
        const left = await t.ctx.db.kysely.selectFrom('tenantflow_processes').select('process_id').orderBy('process_id').execute()
        assert.deepEqual(left.map((x) => x.process_id), ['fresh', 'missed-beats'])
      } finally {
        await t.close()
      }
    })
  })
}
