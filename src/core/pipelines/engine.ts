// Wires the engine together for `serve` (API + workers + scheduler) and `tenantflow worker`.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Registry } from 'prom-client'
import type { Config } from '../config.js'
import type { Db } from '../db/database.js'
import type { Clock } from '../clock.js'
import type { ProcessorRegistry } from '../processors/registry.js'
import { admitRun, type AdmitHook, type AdmitInput, type AdmitResult } from '../orgs/admission.js'
import { requestCancel, type CancelResult } from './runs.js'
import type { EngineDeps, EngineLogger } from './executor.js'
import { createEngineMetrics, type EngineMetrics } from './metrics.js'
import { Maintenance } from './maintenance.js'
import { Scheduler } from './scheduler.js'
import { StepLogWriter } from './step-log-writer.js'
import { TemplateCatalog } from './templates.js'
import { Reaper, WorkerPool } from './worker.js'
import { ProcessBeat } from '../observability/process-registry.js'

/** How many times a run is started in total when its worker dies mid-run (1 = never retried). */
export const DEFAULT_RUN_MAX_ATTEMPTS = 2

export interface EngineOptions {
  db: Db
  config: Pick<Config, 'workers' | 'scheduler' | 'pipelineConfigDirs' | 'retentionDays'>
  clock: Clock
  registry: ProcessorRegistry
  deps: EngineDeps
  logger: EngineLogger
  metricsRegistry: Registry
  /** Defaults to the package's configs/pipelines; tests point it elsewhere (null = none). */
  builtinTemplateDir?: string | null
  /** Step retry backoff base/cap (ms). */
  stepRetry?: { baseMs: number; maxMs: number }
  /** Delay before a run whose worker died is retried. */
  reaperBackoffMs?: (attempt: number) => number
  workerId?: string
  /** Hint that a run (status or steps) changed; the runtime publishes it on the event bus for watchers. */
  onRunChanged?: (orgSlug: string, runId: string) => void
  /** Sends the org run-completion webhooks; started with the workers (core/webhooks/dispatcher.ts). */
  webhooks?: BackgroundPass
}

export interface BackgroundPass {
  start(): void
  stop(): Promise<void>
  runOnce(): Promise<unknown>
}

export interface Engine {
  catalog: TemplateCatalog
  workers: WorkerPool
  scheduler: Scheduler
  reaper: Reaper
  maintenance: Maintenance
  metrics: EngineMetrics
  /** The webhook delivery pass, when the runtime wired one. */
  webhooks: BackgroundPass | null
  /** admitRun plus metrics, and an immediate poll by this process's workers when admitted. */
  admit(input: AdmitInput, onDecided?: AdmitHook): Promise<AdmitResult>
  /** `role` names the process on the operators' health view (default 'serve'). */
  start(opts: { workers: boolean; scheduler: boolean; maintenance?: boolean; role?: 'serve' | 'worker' }): void
  /** Resolves once this process's first heartbeat row is written, so it is listed as soon as start returns. */
  checkedIn(): Promise<void>
  stop(deadlineMs: number): Promise<void>
  cancelRun(orgSlug: string, runId: string): Promise<CancelResult>
}

/** The package root (where package.json is), from src/ or dist/src/. */
function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tenantflow') return dir
      } catch {
        /* keep walking */
      }
    }
    dir = dirname(dir)
  }
  return null
}

export function defaultTemplateDir(): string | null {
  const root = packageRoot()
  return root ? join(root, 'configs', 'pipelines') : null
}

/** Loads and validates templates (throws TemplateError naming file and field) and builds the engine. */
export function createEngine(o: EngineOptions): Engine {
  const catalog = TemplateCatalog.load({
    builtinDir: o.builtinTemplateDir === undefined ? defaultTemplateDir() : o.builtinTemplateDir,
    extraDirs: o.config.pipelineConfigDirs,
    registry: o.registry,
  })
  const metrics = createEngineMetrics(o.metricsRegistry, o.db, () => o.clock.now())
  const changed = (orgSlug: string, runId: string) => {
    try {
      o.onRunChanged?.(orgSlug, runId)
    } catch {
      /* a hint listener never fails the engine */
    }
  }
  const writer = new StepLogWriter(o.db, {
    onError: (err) => o.logger.warn({ err_name: (err as Error)?.name }, 'step log flush failed'),
    onFlushed: (runs) => runs.forEach((r) => changed(r.org_slug, r.run_id)),
    now: () => o.clock.now(),
  })
  const w = o.config.workers
  const workers = new WorkerPool(
    {
      db: o.db, catalog, registry: o.registry, deps: o.deps, clock: o.clock, logger: o.logger, metrics, writer,
      retryBaseMs: o.stepRetry?.baseMs, retryMaxMs: o.stepRetry?.maxMs, onRunChanged: changed,
    },
    { concurrency: w.concurrency, leaseMs: w.leaseMs, heartbeatMs: w.heartbeatMs, pollMs: w.pollMs, maxPerOrg: w.maxPerOrg },
    o.workerId,
  )
  const reaper = new Reaper(o.db, o.clock, o.logger, { intervalMs: w.reaperMs, backoffMs: o.reaperBackoffMs, onRunChanged: (id) => changed('', id) }, metrics)
  const scheduler = new Scheduler(
    o.db, catalog, o.clock, o.logger, o.deps,
    { tickMs: o.config.scheduler.tickMs, maxAttempts: DEFAULT_RUN_MAX_ATTEMPTS, onAdmitted: () => workers.nudge() },
    metrics,
  )
  const maintenance = new Maintenance(o.db, o.clock, o.logger, { retentionDays: o.config.retentionDays })
  let started = { workers: false, scheduler: false, maintenance: false }
  let beat: ProcessBeat | null = null
  let firstBeat: Promise<void> = Promise.resolve()

  return {
    catalog, workers, scheduler, reaper, maintenance, metrics, webhooks: o.webhooks ?? null,
    async admit(input, onDecided) {
      const r = await admitRun(o.db, input, onDecided)
      metrics.admissions.inc({ result: r.kind })
      if (r.kind === 'refused') metrics.refusals.inc({ reason: r.code })
      if (r.kind === 'admitted') workers.nudge()
      return r
    },
    start(opts) {
      started = { workers: opts.workers, scheduler: opts.scheduler && o.config.scheduler.enabled, maintenance: opts.maintenance ?? true }
      if (started.workers) {
        writer.start()
        workers.start()
        o.webhooks?.start()
      }
      // The reaper is cheap and compare-and-set safe, so every engine instance runs one.
      reaper.start()
      if (started.scheduler) scheduler.start()
      if (started.maintenance) maintenance.start()
      beat ??= new ProcessBeat(
        o.db,
        o.clock,
        { processId: workers.workerId, role: opts.role ?? 'serve', workerSlots: started.workers ? w.concurrency : 0, scheduler: started.scheduler, runsInFlight: () => workers.activeRunIds().length },
        (err) => o.logger.warn({ err_name: (err as Error)?.name }, 'process heartbeat failed'),
      )
      firstBeat = beat.start()
    },
    checkedIn: () => firstBeat,
    async stop(deadlineMs) {
      await beat?.stop()
      await scheduler.stop()
      await workers.stop(deadlineMs)
      await o.webhooks?.stop()
      await reaper.stop()
      await maintenance.stop()
      await writer.close().catch((err) => o.logger.warn({ err_name: (err as Error)?.name }, 'final step log flush failed'))
    },
    async cancelRun(orgSlug, runId) {
      const r = await requestCancel(o.db, orgSlug, runId, o.clock.now())
      if (r.kind === 'requested') workers.cancelLocal(runId)
      if (r.kind === 'cancelled') {
        metrics.runsFinished.inc({ status: 'CANCELLED', org: orgSlug })
        changed(orgSlug, runId)
      }
      return r
    },
  }
}
