// Engine test fixtures: a migrated store per test, orgs inserted directly, in-test processors
// (test.wait / test.fail / test.sleep / test.noop) and templates written to a temp directory.
import { setTimeout as sleepFor } from 'node:timers/promises'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Registry } from 'prom-client'
import { openDatabase, type Db } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { ProcessorRegistry } from '../../src/core/processors/registry.js'
import { ProcessorConfigError, ProcessorError, type Processor, type ProcessorErrorCode } from '../../src/core/processors/types.js'
import type { Clock } from '../../src/core/clock.js'
import type { DatasetWriter } from '../../src/core/datasets/types.js'
import { createEngine, type Engine } from '../../src/core/pipelines/engine.js'
import type { EngineDeps, EngineLogger } from '../../src/core/pipelines/executor.js'
import type { AdmitInput } from '../../src/app/dependencies/quota.js'
import { computeDedupKey } from '../../src/core/pipelines/runs.js'
import { freshBackend, type BackendName, type TestBackend } from '../helpers/backends.js'

export interface Store {
  backend: TestBackend
  db: Db
  cleanup(): Promise<void>
}

export async function openStore(name: BackendName): Promise<Store> {
  const backend = await freshBackend(name)
  const db = openDatabase({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir, poolSize: 30 })
  await migrateToLatest(db)
  return {
    backend,
    db,
    cleanup: async () => {
      await db.close()
      await backend.cleanup()
    },
  }
}

/** Opens another handle on the same store (what a second process would have). */
export function reopen(store: Store): Db {
  return openDatabase({ databaseUrl: store.backend.databaseUrl, dataDir: store.backend.dataDir, poolSize: 10 })
}

export interface OrgLimits {
  daily_limit?: number
  monthly_limit?: number
  concurrent_limit?: number
  status?: 'ACTIVE' | 'TRIAL' | 'SUSPENDED'
}

export async function createOrg(db: Db, slug: string, limits: OrgLimits = {}, now = Date.now()): Promise<void> {
  await db.kysely
    .insertInto('org_profiles')
    .values({ org_slug: slug, company_name: `Company ${slug}`, admin_email: `admin@${slug}.test`, status: 'ACTIVE', dataset_id: `org_${slug}`, created_at: now, updated_at: now })
    .execute()
  await db.kysely
    .insertInto('org_subscriptions')
    .values({
      org_slug: slug, subscription_id: `sub_${slug}`, plan_name: 'SCALE', status: limits.status ?? 'ACTIVE',
      daily_limit: limits.daily_limit ?? 1000, monthly_limit: limits.monthly_limit ?? 10000, concurrent_limit: limits.concurrent_limit ?? 20,
      requests_per_minute: 1000, triggers_per_minute: 1000, trial_end_at: null, created_at: now, updated_at: now,
    })
    .execute()
}

/** The slot counter, and the true number of runs holding a slot (admitted, not released). */
export async function slotState(db: Db, org: string): Promise<{ running: number; holding: number; active: number }> {
  const s = await db.kysely.selectFrom('org_run_slots').select('running').where('org_slug', '=', org).executeTakeFirst()
  const holding = await db.kysely
    .selectFrom('org_pipeline_runs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_slug', '=', org)
    .where('slot_released', '=', 0)
    .executeTakeFirstOrThrow()
  const active = await db.kysely
    .selectFrom('org_pipeline_runs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_slug', '=', org)
    .where('status', 'in', ['PENDING', 'RUNNING'])
    .executeTakeFirstOrThrow()
  return { running: Number(s?.running ?? 0), holding: Number(holding.n), active: Number(active.n) }
}

// ---- in-test processors -------------------------------------------------------------------------

/** Gates the tests open to let a test.wait step finish. Keyed by the run's `gate` parameter. */
export class Gates {
  private readonly gates = new Map<string, { promise: Promise<void>; open: () => void }>()
  private get(key: string) {
    let g = this.gates.get(key)
    if (!g) {
      let open!: () => void
      const promise = new Promise<void>((r) => (open = r))
      g = { promise, open }
      this.gates.set(key, g)
    }
    return g
  }
  wait(key: string): Promise<void> {
    return this.get(key).promise
  }
  open(key: string): void {
    this.get(key).open()
  }
  openAll(): void {
    for (const g of this.gates.values()) g.open()
  }
}

const abortable = (p: Promise<void>, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new ProcessorError('CANCELLED', 'aborted'))
    signal.addEventListener('abort', () => reject(new ProcessorError('CANCELLED', 'aborted')), { once: true })
    p.then(resolve, reject)
  })

export interface ProcessorLog {
  events: string[]
}

export function testRegistry(gates: Gates, log: ProcessorLog = { events: [] }): ProcessorRegistry {
  const noop: Processor<{ rows: number }> = {
    name: 'test.noop',
    description: 'does nothing',
    validateConfig(c) {
      const o = (c ?? {}) as Record<string, unknown>
      for (const k of Object.keys(o)) if (k !== 'rows') throw new ProcessorConfigError(k, 'unknown key')
      if (o.rows !== undefined && typeof o.rows !== 'number') throw new ProcessorConfigError('rows', 'must be a number')
      return { rows: (o.rows as number | undefined) ?? 0 }
    },
    async run(ctx, c) {
      log.events.push(`start:${ctx.run.runId}:${ctx.step.stepId}`)
      await new Promise((r) => setTimeout(r, 5))
      log.events.push(`end:${ctx.run.runId}:${ctx.step.stepId}`)
      return { rows_processed: c.rows, output: { step: ctx.step.stepId } }
    },
  }
  const wait: Processor<Record<string, never>> = {
    name: 'test.wait',
    description: 'waits until the test opens its gate (honours the signal)',
    validateConfig: () => ({}),
    async run(ctx) {
      log.events.push(`start:${ctx.run.runId}:${ctx.step.stepId}`)
      await abortable(gates.wait(String(ctx.parameters.gate ?? 'default')), ctx.signal)
      log.events.push(`end:${ctx.run.runId}:${ctx.step.stepId}`)
      return { rows_processed: 1 }
    },
  }
  const sleep: Processor<{ ms: number }> = {
    name: 'test.sleep',
    description: 'sleeps, honouring the signal',
    validateConfig: (c) => ({ ms: Number((c as { ms?: number })?.ms ?? 10) }),
    async run(ctx, c) {
      try {
        await sleepFor(c.ms, undefined, { signal: ctx.signal })
      } catch {
        throw new ProcessorError('CANCELLED', 'aborted')
      }
      return { rows_processed: 0 }
    },
  }
  /** Fails `times` times (per run+step) with the given error, then succeeds; `times: -1` always fails. */
  const attempts = new Map<string, number>()
  const fail: Processor<{ code: ProcessorErrorCode | 'RAW'; retryable: boolean; times: number }> = {
    name: 'test.fail',
    description: 'fails on purpose',
    validateConfig(c) {
      const o = (c ?? {}) as Record<string, unknown>
      return { code: (o.code as ProcessorErrorCode) ?? 'UPSTREAM_ERROR', retryable: o.retryable === true, times: typeof o.times === 'number' ? o.times : -1 }
    },
    async run(ctx, c) {
      const key = `${ctx.run.runId}:${ctx.step.stepId}`
      const n = (attempts.get(key) ?? 0) + 1
      attempts.set(key, n)
      log.events.push(`attempt:${ctx.run.runId}:${ctx.step.stepId}:${n}`)
      if (c.times !== -1 && n > c.times) return { rows_processed: 7 }
      if (c.code === 'RAW') throw new Error('secret-token-abc leaked in a raw exception')
      throw new ProcessorError(c.code, 'Upstream said no', { retryable: c.retryable })
    },
  }
  return new ProcessorRegistry().register(noop).register(wait).register(sleep).register(fail)
}

export const TEST_TEMPLATES: Record<string, string> = {
  'test/basic/noop.yml': `
description: one no-op step
steps:
  - id: only
    processor: test.noop
    config: { rows: 3 }
`,
  'test/basic/wait.yml': `
description: waits on a gate the test controls
parameters:
  gate: { type: string, default: default }
  n: { type: integer, min: 0, max: 1000000 }
steps:
  - id: wait
    processor: test.wait
`,
  'test/basic/fail.yml': `
description: always fails
steps:
  - id: boom
    processor: test.fail
    config: { code: UPSTREAM_ERROR }
  - id: never
    processor: test.noop
`,
  'test/basic/raw-fail.yml': `
description: throws a non-ProcessorError
steps:
  - id: boom
    processor: test.fail
    config: { code: RAW }
`,
  'test/basic/flaky.yml': `
description: fails twice (retryable) then succeeds
steps:
  - id: flaky
    processor: test.fail
    retries: 3
    config: { code: RATE_LIMITED, retryable: true, times: 2 }
`,
  'test/basic/step-timeout.yml': `
description: a step that exceeds its timeout
steps:
  - id: slow
    processor: test.sleep
    timeout_seconds: 1
    config: { ms: 30000 }
`,
  'test/basic/pipeline-timeout.yml': `
description: a run that exceeds the pipeline timeout
timeout_seconds: 1
steps:
  - id: slow
    processor: test.sleep
    config: { ms: 30000 }
`,
  'test/basic/dag.yml': `
description: a -> (b, c in parallel) -> d
parameters:
  date: { type: date, default: yesterday }
steps:
  - id: a
    processor: test.noop
  - id: b
    processor: test.noop
    depends_on: [a]
  - id: c
    processor: test.noop
    depends_on: [a]
  - id: d
    processor: test.noop
    depends_on: [b, c]
`,
}

export function writeTemplates(files: Record<string, string>, root = mkdtempSync(join(tmpdir(), 'tf-tpl-'))): string {
  for (const [rel, text] of Object.entries(files)) {
    const p = join(root, rel)
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, text)
  }
  return root
}

/** A template built only from a built-in processor with no integration: summarizes the org's seeded price table. */
export const PRICE_SUMMARY_TEMPLATE = `
description: summarizes the org's price table
parameters:
  n: { type: integer, min: 0, max: 100000 }
steps:
  - id: summarize
    processor: generic.sql_transform
    config:
      sql: SELECT provider, COUNT(*) AS models FROM model_prices GROUP BY provider
      destination:
        name: price_summary
        columns:
          - { name: provider, type: text }
          - { name: models, type: integer }
        natural_key: [provider]
      max_rows: 100
`

export const silentLogger: EngineLogger = { info() {}, warn() {}, error() {}, debug() {} }

export function fakeDeps(): EngineDeps {
  const refuse = async () => {
    throw new Error('not available in engine tests')
  }
  return {
    // Every dataset method refuses: the in-test processors never touch a dataset.
    openDataset: (ds) =>
      new Proxy({ ...ds }, { get: (target, prop) => (prop === 'orgSlug' || prop === 'datasetId' ? target[prop] : prop === 'then' ? undefined : refuse) }) as unknown as DatasetWriter,
    getCredential: async () => {
      throw new ProcessorError('INTEGRATION_NOT_CONFIGURED', 'No credential in tests')
    },
    http: { request: refuse },
  }
}

export interface EngineSetup {
  engine: Engine
  gates: Gates
  log: ProcessorLog
  templateDir: string
}

export function testEngine(
  db: Db,
  clock: Clock,
  opts: { concurrency?: number; maxPerOrg?: number; leaseMs?: number; heartbeatMs?: number; reaperMs?: number; workerId?: string; templateDir?: string; gates?: Gates } = {},
): EngineSetup {
  const gates = opts.gates ?? new Gates()
  const log: ProcessorLog = { events: [] }
  const templateDir = opts.templateDir ?? writeTemplates(TEST_TEMPLATES)
  const engine = createEngine({
    db,
    clock,
    registry: testRegistry(gates, log),
    deps: fakeDeps(),
    logger: silentLogger,
    metricsRegistry: new Registry(),
    builtinTemplateDir: templateDir,
    config: {
      workers: { concurrency: opts.concurrency ?? 8, leaseMs: opts.leaseMs ?? 20_000, heartbeatMs: opts.heartbeatMs ?? 200, pollMs: 50, reaperMs: opts.reaperMs ?? 200, ...(opts.maxPerOrg !== undefined ? { maxPerOrg: opts.maxPerOrg } : {}) },
      scheduler: { enabled: true, tickMs: 100 },
      pipelineConfigDirs: [],
      retentionDays: 90,
    },
    stepRetry: { baseMs: 10, maxMs: 50 },
    reaperBackoffMs: () => 0,
    workerId: opts.workerId,
  })
  return { engine, gates, log, templateDir }
}

/** Polls `check` until it returns a truthy value (correctness wait, not a timing assertion). */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export async function runStatus(db: Db, runId: string): Promise<string | undefined> {
  const r = await db.kysely.selectFrom('org_pipeline_runs').select('status').where('run_id', '=', runId).executeTakeFirst()
  return r?.status
}

export function admitInput(
  org: string,
  pipelineId: string,
  parameters: Record<string, unknown>,
  now: number,
  extra: { max_attempts?: number; trigger_type?: 'api' | 'schedule' } = {},
): AdmitInput {
  return {
    org_slug: org,
    pipeline_id: pipelineId,
    parameters,
    dedup_key: computeDedupKey(pipelineId, parameters),
    trigger_type: extra.trigger_type ?? 'api',
    triggered_by: 'test',
    max_attempts: extra.max_attempts ?? 1,
    now,
  }
}
