// Fair workers across processes (issue 8 item 5): two worker processes, one org queues more slow runs
// than both can hold; a run of an idle org triggered afterwards starts while the busy org's runs are
// still running and queued, instead of waiting for them (each process keeps a slot the busy org may
// not take). The slow runs sleep far longer than the wait bound, so on FIFO claiming this fails.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { admitRun } from '../../src/core/orgs/admission.js'
import { backendNames } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, openStore, TEST_TEMPLATES, writeTemplates } from './fixtures.js'

const SLOW = `
description: a slow upstream (bounded)
parameters:
  n: { type: integer, min: 0, max: 1000000 }
timeout_seconds: 600
steps:
  - id: slow
    processor: test.sleep
    config: { ms: 300000 }
`

for (const backend of backendNames()) {
  describe(`fair workers across processes (${backend})`, () => {
    test('an idle org’s run starts while another org saturates two worker processes', async () => {
      const store = await openStore(backend)
      const templateDir = writeTemplates({ ...TEST_TEMPLATES, 'test/fair/slow.yml': SLOW })
      const children: ChildProcess[] = []
      try {
        await createOrg(store.db, 'busy', { concurrent_limit: 50 })
        await createOrg(store.db, 'idle')
        for (let i = 0; i < 2; i++) {
          const child = spawn(process.execPath, ['--import', 'tsx', 'test/engine/worker-child.ts'], {
            env: {
              ...process.env, TF_DATABASE_URL: store.backend.databaseUrl ?? '', TF_DATA_DIR: store.backend.dataDir, TF_TEMPLATE_DIR: templateDir,
              TF_WORKER_ID: `fair-${backend}-${process.pid}-${i}`, TF_CONCURRENCY: '3', TF_LEASE_MS: '15000',
            },
            stdio: ['ignore', 'pipe', 'inherit'],
          })
          children.push(child)
          await new Promise<void>((resolve, reject) => {
            child.stdout!.on('data', (d) => String(d).includes('ready') && resolve())
            child.once('exit', () => reject(new Error('worker child exited before it was ready')))
          })
        }
        const t0 = Date.now()
        for (let i = 0; i < 20; i++) {
          const r = await admitRun(store.db, admitInput('busy', 'test/fair/slow', { n: i }, t0 + i))
          assert.equal(r.kind, 'admitted')
        }
        const count = async (org: string, status: 'PENDING' | 'RUNNING' | 'COMPLETED') =>
          (await store.db.kysely.selectFrom('org_pipeline_runs').select('run_id').where('org_slug', '=', org).where('status', '=', status).limit(100).execute()).length
        // Each process (3 slots) lets busy hold 2 by default: 4 of the 6 slots.
        await eventually(async () => (await count('busy', 'RUNNING')) === 4, 'busy to saturate its share of both processes')
        const idle = await admitRun(store.db, admitInput('idle', 'test/basic/noop', {}, Date.now()))
        assert.equal(idle.kind, 'admitted')
        const idleId = idle.kind === 'admitted' ? idle.run.run_id : ''
        const done = await eventually(async () => {
          const r = await store.db.kysely.selectFrom('org_pipeline_runs').select(['status', 'started_at']).where('run_id', '=', idleId).executeTakeFirst()
          return r && r.status === 'COMPLETED' ? r : null
        }, 'the idle org’s run to run to completion')
        assert.ok(done.started_at !== null)
        assert.equal(await count('busy', 'COMPLETED'), 0, 'no busy run had finished: the idle run did not wait for one')
        assert.equal(await count('busy', 'PENDING'), 16, 'busy still had a queue')
        assert.equal(await count('busy', 'RUNNING'), 4, 'busy never held more than its share')
      } finally {
        for (const c of children) {
          if (c.exitCode === null && c.signalCode === null) {
            c.kill('SIGKILL')
            await once(c, 'exit')
          }
        }
        await store.cleanup()
      }
    })
  })
}
