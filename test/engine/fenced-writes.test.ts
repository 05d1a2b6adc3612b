// A step whose signal has aborted writes nothing (issue 8 item 4), whatever its processor does: after
// a step timeout, after a cancel, and when the run was taken from this worker in the database (a stop
// decided by another process that this one has not heard of yet).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { systemClock } from '../../src/core/clock.js'
import { createDataset, DatasetError, openDatasetWriter } from '../../src/core/datasets/index.js'
import { createEngine, type Engine } from '../../src/core/pipelines/engine.js'
import { ProcessorRegistry } from '../../src/core/processors/registry.js'
import type { Processor } from '../../src/core/processors/types.js'
import type { TableSpec } from '../../src/core/datasets/types.js'
import { backendNames } from '../helpers/backends.js'
import { admitInput, createOrg, eventually, Gates, openStore, runStatus, silentLogger, writeTemplates, type Store } from './fixtures.js'

const TABLE: TableSpec = { name: 'late_rows', columns: [{ name: 'k', type: 'text' }, { name: 'v', type: 'integer' }], naturalKey: ['k'] }

/** What each late write attempt ended with, per run. */
type Outcome = { runId: string; result: 'written' | string }

/**
 * A processor that ignores its signal: it waits (for the abort, or for a gate the test opens), then
 * writes a table and rows as if it had just fetched them.
 */
function lateWriter(gates: Gates, outcomes: Outcome[]): Processor<{ wait: 'abort' | 'gate' }> {
  return {
    name: 'test.late_writer',
    description: 'writes after its step was stopped',
    validateConfig: (c) => ({ wait: (c as { wait?: 'abort' | 'gate' })?.wait ?? 'abort' }),
    async run(ctx, c) {
      if (c.wait === 'abort') await new Promise<void>((r) => (ctx.signal.aborted ? r() : ctx.signal.addEventListener('abort', () => r(), { once: true })))
      else await gates.wait(ctx.run.runId)
      try {
        await ctx.dataset.ensureTable(TABLE)
        await ctx.dataset.upsertRows(TABLE.name, [{ k: 'a', v: 1 }, { k: 'b', v: 2 }])
        outcomes.push({ runId: ctx.run.runId, result: 'written' })
      } catch (err) {
        outcomes.push({ runId: ctx.run.runId, result: err instanceof DatasetError ? err.code : String((err as Error)?.name) })
      }
      return { rows_processed: 2 }
    },
  }
}

const TEMPLATES = {
  'test/late/timeout.yml': `
description: a step that times out and writes afterwards
steps:
  - id: late
    processor: test.late_writer
    timeout_seconds: 1
    config: { wait: abort }
`,
  'test/late/cancel.yml': `
description: a step that is cancelled and writes afterwards
steps:
  - id: late
    processor: test.late_writer
    config: { wait: abort }
`,
  'test/late/gate.yml': `
description: a step that writes when the test opens its gate
steps:
  - id: late
    processor: test.late_writer
    config: { wait: gate }
`,
}

async function setup(store: Store, org: string) {
  const gates = new Gates()
  const outcomes: Outcome[] = []
  await createOrg(store.db, org)
  const datasetId = await createDataset(store.db, store.backend.dataDir, org)
  await store.db.kysely.updateTable('org_profiles').set({ dataset_id: datasetId }).where('org_slug', '=', org).execute()
  const engine: Engine = createEngine({
    db: store.db,
    clock: systemClock,
    registry: new ProcessorRegistry().register(lateWriter(gates, outcomes)),
    deps: {
      openDataset: (ds, o) => openDatasetWriter(store.db, store.backend.dataDir, ds, { fence: o?.fence }),
      getCredential: async () => {
        throw new Error('no credentials here')
      },
      http: {
        request: async () => {
          throw new Error('no http here')
        },
      },
    },
    logger: silentLogger,
    metricsRegistry: new Registry(),
    builtinTemplateDir: writeTemplates(TEMPLATES),
    config: {
      workers: { concurrency: 4, leaseMs: 60_000, heartbeatMs: 30_000, pollMs: 50, reaperMs: 60_000 },
      scheduler: { enabled: false, tickMs: 1000 },
      pipelineConfigDirs: [],
      retentionDays: 90,
    },
    stepRetry: { baseMs: 10, maxMs: 50 },
  })
  const reader = openDatasetWriter(store.db, store.backend.dataDir, { orgSlug: org, datasetId })
  const outcomeOf = (runId: string) => eventually(async () => outcomes.find((o) => o.runId === runId), `the late write of ${runId}`)
  const admit = async (pipeline: string, params: Record<string, unknown> = {}) => {
    const r = await engine.admit(admitInput(org, pipeline, params, Date.now()))
    assert.ok(r.kind === 'admitted')
    return r.run.run_id
  }
  return { engine, gates, reader, outcomeOf, admit }
}

for (const backend of backendNames()) {
  describe(`aborted steps write nothing (${backend})`, () => {
    test('after a step timeout and after a cancel, the late writes are refused and the dataset stays empty', async () => {
      const store = await openStore(backend)
      const { engine, reader, outcomeOf, admit } = await setup(store, 'late-org')
      try {
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const timedOut = await admit('test/late/timeout')
        assert.equal((await outcomeOf(timedOut)).result, 'WRITE_FENCED')
        await eventually(async () => (await runStatus(store.db, timedOut)) === 'TIMEOUT', 'the timed-out run to end')

        const cancelled = await admit('test/late/cancel')
        await eventually(async () => (await runStatus(store.db, cancelled)) === 'RUNNING', 'the run to start')
        await eventually(async () => engine.workers.activeRunIds().includes(cancelled), 'the run to be active here')
        assert.deepEqual(await engine.cancelRun('late-org', cancelled), { kind: 'requested' })
        assert.equal((await outcomeOf(cancelled)).result, 'WRITE_FENCED')
        await eventually(async () => (await runStatus(store.db, cancelled)) === 'CANCELLED', 'the cancelled run to end')

        assert.deepEqual(await reader.listTables(), [])
        await assert.rejects(reader.readRows(TABLE.name, { limit: 10 }), (e: unknown) => e instanceof DatasetError && e.code === 'TABLE_NOT_FOUND')
      } finally {
        await engine.stop(0)
        await store.cleanup()
      }
    })

    test('a run stopped in the database by another process (no local abort yet) writes nothing', async () => {
      const store = await openStore(backend)
      const { engine, gates, reader, outcomeOf, admit } = await setup(store, 'far-org')
      try {
        engine.start({ workers: true, scheduler: false, maintenance: false })
        const runId = await admit('test/late/gate')
        await eventually(async () => engine.workers.activeRunIds().includes(runId), 'the run to be active here')
        // What another instance's cancel does; this worker would only hear of it at its next heartbeat.
        await store.db.kysely.updateTable('org_pipeline_runs').set({ cancel_requested: 1 }).where('run_id', '=', runId).execute()
        gates.open(runId)
        assert.equal((await outcomeOf(runId)).result, 'WRITE_FENCED')
        assert.deepEqual(await reader.listTables(), [])

        // Control: the same processor with its run intact writes normally.
        const ok = await admit('test/late/gate', { control: true })
        await eventually(async () => engine.workers.activeRunIds().includes(ok), 'the control run to be active here')
        gates.open(ok)
        assert.equal((await outcomeOf(ok)).result, 'written')
        assert.deepEqual((await reader.readRows(TABLE.name, { limit: 10 })).map((r) => r.k), ['a', 'b'])
      } finally {
        gates.openAll()
        await engine.stop(0)
        await store.cleanup()
      }
    })
  })
}
