import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { systemClock } from '../../src/core/clock.js'
import { admitRun } from '../../src/app/dependencies/quota.js'
import { getRun } from '../../src/core/pipelines/runs.js'
import { Reaper } from '../../src/core/pipelines/worker.js'
import { backendNames } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, openStore, silentLogger, slotState, testEngine, TEST_TEMPLATES, writeTemplates } from './fixtures.js'

for (const backend of backendNames()) {
  describe(`worker crash (${backend})`, () => {
    test('SIGKILL mid-run: the reaper fails (WORKER_LOST) or retries the runs and the slot count matches reality', async () => {
      const store = await openStore(backend)
      const templateDir = writeTemplates(TEST_TEMPLATES)
      const workerId = `child-${backend}-${process.pid}`
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/engine/worker-child.ts'], {
        env: { ...process.env, TF_DATABASE_URL: store.backend.databaseUrl ?? '', TF_DATA_DIR: store.backend.dataDir, TF_TEMPLATE_DIR: templateDir, TF_WORKER_ID: workerId },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let local: ReturnType<typeof testEngine> | null = null
      try {
        await createOrg(store.db, 'killco')
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (d) => String(d).includes('ready') && resolve())
          child.once('exit', () => reject(new Error('worker child exited before it was ready')))
        })
        const now = Date.now()
        const once1 = await admitRun(store.db, admitInput('killco', 'test/basic/wait', { gate: 'a' }, now, { max_attempts: 1 }))
        const retry = await admitRun(store.db, admitInput('killco', 'test/basic/wait', { gate: 'b' }, now, { max_attempts: 2 }))
        assert.ok(once1.kind === 'admitted' && retry.kind === 'admitted')
        const a = once1.run.run_id
        const b = retry.run.run_id
        await eventually(async () => {
          const runs = await Promise.all([getRun(store.db, 'killco', a), getRun(store.db, 'killco', b)])
          return runs.every((r) => r?.status === 'RUNNING' && r.lease_owner === workerId)
        }, 'child to claim both runs')

        child.kill('SIGKILL')
        await once(child, 'exit')
        assert.deepEqual(await slotState(store.db, 'killco'), { running: 2, holding: 2, active: 2 })

        const reaper = new Reaper(store.db, systemClock, silentLogger, { intervalMs: 100, backoffMs: () => 0 })
        await eventually(async () => {
          await reaper.runOnce()
          const [ra, rb] = await Promise.all([getRun(store.db, 'killco', a), getRun(store.db, 'killco', b)])
          // The two leases expire a moment apart: wait until both runs are recovered.
          return ra?.status === 'FAILED' && rb?.status === 'PENDING'
        }, 'reaper to recover the runs')
        const ra = await getRun(store.db, 'killco', a)
        assert.equal(ra!.error_code, 'WORKER_LOST')
        assert.equal(ra!.slot_released, 1)
        const rb = await getRun(store.db, 'killco', b)
        assert.equal(rb!.status, 'PENDING', 'the run with attempts left is retried')
        assert.equal(rb!.attempt, 2)
        assert.equal(rb!.lease_owner, null)
        assert.deepEqual(await slotState(store.db, 'killco'), { running: 1, holding: 1, active: 1 })

        // A live worker takes the retried run over and finishes it.
        local = testEngine(store.db, systemClock, { templateDir })
        local.engine.start({ workers: true, scheduler: false, maintenance: false })
        local.gates.open('b')
        await eventually(async () => (await getRun(store.db, 'killco', b))?.status === 'COMPLETED', 'retried run completes')
        assert.deepEqual(await slotState(store.db, 'killco'), { running: 0, holding: 0, active: 0 })
        assert.equal((await reaper.runOnce()).failed, 0, 'reaping again changes nothing')
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        local?.gates.openAll()
        await local?.engine.stop(1000)
        await store.cleanup()
      }
    })
  })
}
