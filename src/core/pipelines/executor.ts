// Runs one claimed run: steps in dependency order (independent steps in parallel), pipeline and step
// timeouts and cancellation through AbortSignals that belong to this run only, retries with backoff for
// retryable ProcessorErrors, one step-log row per attempt, and a final compare-and-set transition that
// releases the run's slot in the same transaction.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Db } from '../db/database.js'
import type { Clock } from '../clock.js'
import { utcDate } from '../clock.js'
import { newId } from '../ids.js'
import type { DatasetBinding, DatasetWriter, WriteFence } from '../datasets/types.js'
import { EgressError, type EgressClient } from '../http/types.js'
import type { ProcessorRegistry } from '../processors/registry.js'
import {
  ProcessorError,
  type DecryptedCredential,
  type IntegrationProvider,
  type ProcessorContext,
  type StepResult,
} from '../processors/types.js'
import type { EngineMetrics } from './metrics.js'
import { boundDataset, finishRun, handBackRun, holdsRun, runLeaseGuard, type RunRow, type TerminalStatus } from './runs.js'
import type { StepLogWriter } from './step-log-writer.js'
import type { PipelineTemplate, StepSpec, TemplateCatalog } from './templates.js'

/** What the engine needs from the rest of the system; injected so tests can run without real services. */
export interface EngineDeps {
  /** The dataset of one org incarnation; with a fence, its writes stop when the fence closes. */
  openDataset(ds: DatasetBinding, opts?: { fence?: WriteFence }): Promise<DatasetWriter> | DatasetWriter
  /** Decrypts the org's active credential for one step; called on every getCredential(), never cached. */
  getCredential(orgSlug: string, provider: IntegrationProvider, runId: string): Promise<DecryptedCredential>
  /** Called when the step that asked for a credential ends (e.g. to stop scrubbing it from logs). */
  releaseCredential?(cred: DecryptedCredential): void
  http: EgressClient
  /** The egress client for one org's calls (its operator-managed allow-list applies); `http` when absent. */
  httpFor?(orgSlug: string): EgressClient
  /**
   * Optional: whether the org's credential for `provider` is usable (the scheduler checks it before
   * admission): true, or false / the refusal code to record on the schedule.
   */
  integrationReady?(orgSlug: string, provider: IntegrationProvider): Promise<boolean | string>
}

export interface EngineLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

/** Why the worker stopped a run from outside: the reason of the control signal. */
export type StopReason = { kind: 'cancel' } | { kind: 'lease_lost' } | { kind: 'shutdown' } | { kind: 'offboarded' }

export interface ExecutorContext {
  db: Db
  catalog: TemplateCatalog
  registry: ProcessorRegistry
  deps: EngineDeps
  clock: Clock
  logger: EngineLogger
  metrics?: EngineMetrics
  writer: StepLogWriter
  workerId: string
  /** Retry backoff for retryable step errors: base * 2^(n-1) + jitter, capped. */
  retryBaseMs?: number
  retryMaxMs?: number
  /** Told after this worker changed a run's status (watchers re-read the run; a hint, never state). */
  onRunChanged?: (orgSlug: string, runId: string) => void
}

export type ExecutionResult =
  | { kind: 'finished'; status: TerminalStatus }
  | { kind: 'handed_back' }
  | { kind: 'lost' }
  /** Its org was offboarded: the run row is gone, nothing is recorded. */
  | { kind: 'offboarded' }

export interface ExecutionHooks {
  /** Called once the run's dataset id (its org incarnation) is known, before any step starts. */
  bound?(datasetId: string): void
}

interface StepFailure {
  stepId: string
  status: 'FAILED' | 'TIMEOUT'
  code: string
  message: string
}

const GENERIC_STEP_ERROR = 'Step failed with an unexpected error'
const MAX_RESULT_CHARS = 16_384

function stopReason(signal: AbortSignal): StopReason | null {
  if (!signal.aborted) return null
  const r = signal.reason as StopReason | undefined
  return r && typeof r === 'object' && 'kind' in r ? r : { kind: 'cancel' }
}

/** Resolves with the processor's result or rejects as soon as `signal` aborts (a processor that ignores it cannot hold the run). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

function safeResult(out: Record<string, unknown> | undefined): string | null {
  if (!out) return null
  try {
    const s = JSON.stringify(out)
    return s.length <= MAX_RESULT_CHARS ? s : JSON.stringify({ truncated: true })
  } catch {
    return null
  }
}

export async function executeRun(ctx: ExecutorContext, run: RunRow, control: AbortSignal, hooks: ExecutionHooks = {}): Promise<ExecutionResult> {
  const log = { run_id: run.run_id, org: run.org_slug, pipeline_id: run.pipeline_id }
  const finish = async (status: TerminalStatus, code: string | null, message: string | null): Promise<ExecutionResult> => {
    try {
      await ctx.writer.flush()
    } catch (err) {
      ctx.logger.warn({ ...log, err_name: (err as Error)?.name }, 'step log flush failed; rows retried on the next flush')
    }
    const ok = await finishRun(ctx.db, {
      runId: run.run_id, from: ['RUNNING'], leaseOwner: ctx.workerId, status, errorCode: code, errorMessage: message, now: ctx.clock.now(),
    })
    if (!ok) return { kind: 'lost' }
    ctx.onRunChanged?.(run.org_slug, run.run_id)
    ctx.metrics?.runsFinished.inc({ status, org: run.org_slug })
    ctx.logger.info({ ...log, status, error_code: code }, 'run finished')
    return { kind: 'finished', status }
  }

  try {
    if (Number(run.cancel_requested) === 1) return await finish('CANCELLED', 'CANCELLED', 'Run cancelled by request')
    const template = ctx.catalog.getById(run.pipeline_id)
    if (!template) return await finish('FAILED', 'TEMPLATE_NOT_FOUND', 'The pipeline template no longer exists')
    // The dataset comes from the org incarnation that holds this run now, never from the slug alone.
    const bound = await boundDataset(ctx.db, run.run_id, ctx.workerId)
    if (bound === 'lost') return control.reason?.kind === 'offboarded' ? { kind: 'offboarded' } : { kind: 'lost' }
    if (bound === 'no_org') return await finish('FAILED', 'ORG_NOT_FOUND', 'The organization no longer exists')
    const binding: DatasetBinding = { orgSlug: run.org_slug, datasetId: bound.datasetId }
    hooks.bound?.(binding.datasetId)
    try {
      await ctx.deps.openDataset(binding)
    } catch (err) {
      ctx.logger.error({ ...log, err_name: (err as Error)?.name }, 'dataset unavailable')
      return await finish('FAILED', 'DATASET_UNAVAILABLE', 'The organization dataset could not be opened')
    }
    const parameters = Object.freeze(JSON.parse(run.parameters) as Record<string, unknown>)
    return await runSteps(ctx, run, template, binding, parameters, control, finish)
  } catch (err) {
    // Internal failure (database, bug): try to record it; if even that fails the lease expires and the reaper decides.
    ctx.logger.error({ ...log, err_name: (err as Error)?.name }, 'run failed internally')
    try {
      return await finish('FAILED', 'INTERNAL_ERROR', 'The run failed because of an internal error')
    } catch {
      return { kind: 'lost' }
    }
  }
}

async function runSteps(
  ctx: ExecutorContext,
  run: RunRow,
  template: PipelineTemplate,
  binding: DatasetBinding,
  parameters: Readonly<Record<string, unknown>>,
  control: AbortSignal,
  finish: (status: TerminalStatus, code: string | null, message: string | null) => Promise<ExecutionResult>,
): Promise<ExecutionResult> {
  const pipelineTimeout = AbortSignal.timeout(template.timeout_seconds * 1000)
  const failFast = new AbortController()
  const runSignal = AbortSignal.any([control, pipelineTimeout, failFast.signal])
  const done = new Map<string, StepResult & { status: string }>()
  const started = new Set<string>()
  const running = new Map<string, Promise<void>>()
  let failure: StepFailure | null = null

  const launch = (step: StepSpec) => {
    started.add(step.id)
    const p = runStep(ctx, run, template, step, binding, parameters, done, runSignal, { control, pipelineTimeout, failFast: failFast.signal })
      .then((outcome) => {
        if (outcome.ok) done.set(step.id, { ...outcome.result, status: 'COMPLETED' })
        else if (outcome.failure && !failure) {
          failure = outcome.failure
          failFast.abort(new Error('step failed'))
        }
      })
      .finally(() => running.delete(step.id))
    running.set(step.id, p)
  }

  for (;;) {
    if (!runSignal.aborted) {
      for (const s of template.steps) if (!started.has(s.id) && s.after.every((d) => done.has(d))) launch(s)
    }
    if (running.size === 0) break
    await Promise.race(running.values())
  }

  if (done.size === template.steps.length) return finish('COMPLETED', null, null)
  const stop = stopReason(control)
  if (stop?.kind === 'offboarded') {
    ctx.writer.discardRun(run.run_id)
    return { kind: 'offboarded' }
  }
  if (stop?.kind === 'lease_lost') return { kind: 'lost' }
  if (stop?.kind === 'shutdown') {
    await ctx.writer.flush().catch(() => undefined)
    const ok = await handBackRun(ctx.db, { runId: run.run_id, workerId: ctx.workerId, now: ctx.clock.now() })
    if (ok) ctx.onRunChanged?.(run.org_slug, run.run_id)
    return ok ? { kind: 'handed_back' } : { kind: 'lost' }
  }
  if (stop?.kind === 'cancel') return finish('CANCELLED', 'CANCELLED', 'Run cancelled by request')
  if (pipelineTimeout.aborted) return finish('TIMEOUT', 'PIPELINE_TIMEOUT', `Pipeline exceeded its timeout of ${template.timeout_seconds} s`)
  const f = failure as StepFailure | null
  if (f) return finish(f.status, f.code, `Step ${f.stepId} failed: ${f.message}`.slice(0, 500))
  return finish('FAILED', 'INTERNAL_ERROR', 'The run stopped before all steps finished')
}

type StepOutcome = { ok: true; result: StepResult } | { ok: false; failure: StepFailure | null }

async function runStep(
  ctx: ExecutorContext,
  run: RunRow,
  template: PipelineTemplate,
  step: StepSpec,
  binding: DatasetBinding,
  parameters: Readonly<Record<string, unknown>>,
  upstream: Map<string, StepResult & { status: string }>,
  runSignal: AbortSignal,
  signals: { control: AbortSignal; pipelineTimeout: AbortSignal; failFast: AbortSignal },
): Promise<StepOutcome> {
  const processor = ctx.registry.get(step.processor)
  const base = ctx.retryBaseMs ?? 1000
  const cap = ctx.retryMaxMs ?? 30_000
  for (let attempt = 1; attempt <= step.retries + 1; attempt++) {
    if (runSignal.aborted) return { ok: false, failure: null }
    const startedAt = ctx.clock.now()
    const t0 = performance.now()
    const logId = newId('step', startedAt)
    ctx.writer.begin({
      log_id: logId, log_date: utcDate(startedAt), run_id: run.run_id, org_slug: run.org_slug, step_id: step.id,
      processor: step.processor, attempt, status: 'RUNNING', started_at: startedAt, finished_at: null, duration_ms: null,
      rows_processed: 0, error_code: null, error_message: null, result: null, progress: null,
    })
    const stepTimeout = step.timeout_seconds ? AbortSignal.timeout(step.timeout_seconds * 1000) : null
    const stepSignal = stepTimeout ? AbortSignal.any([runSignal, stepTimeout]) : runSignal
    const decrypted: DecryptedCredential[] = []
    const end = (status: 'COMPLETED' | 'FAILED' | 'TIMEOUT' | 'CANCELLED', extra: { rows?: number; code?: string; message?: string; result?: string | null }) => {
      for (const cred of decrypted.splice(0)) ctx.deps.releaseCredential?.(cred)
      const finishedAt = ctx.clock.now()
      ctx.writer.end(logId, {
        status, finished_at: finishedAt, duration_ms: Math.max(0, finishedAt - startedAt), rows_processed: extra.rows ?? 0,
        error_code: extra.code ?? null, error_message: extra.message?.slice(0, 500) ?? null, result: extra.result ?? null,
      })
      ctx.metrics?.stepDuration.observe({ processor: step.processor, status }, (performance.now() - t0) / 1000)
    }
    try {
      if (!processor) throw new ProcessorError('PROCESSOR_ERROR', 'Processor is not registered')
      // The step's writes and provider calls are fenced: none starts once the step signal has aborted
      // (cancel, timeout, offboarding) or this worker no longer holds the run (checked in the database,
      // so a stop decided by another process is seen too), even by a processor that ignores its signal.
      const fence: WriteFence = { signal: stepSignal, guard: runLeaseGuard(ctx.db, run.run_id, ctx.workerId) }
      const dataset = await ctx.deps.openDataset(binding, { fence })
      const pctx: ProcessorContext = {
        org: { slug: binding.orgSlug, datasetId: binding.datasetId },
        run: { runId: run.run_id, pipelineId: run.pipeline_id, triggerType: run.trigger_type },
        step: { stepId: step.id, attempt },
        parameters,
        signal: stepSignal,
        http: fencedHttp(ctx, run, stepSignal),
        dataset,
        upstream: Object.freeze(Object.fromEntries(upstream)),
        getCredential: async () => {
          const provider = processor.integration ?? template.integration
          if (!provider) throw new ProcessorError('INTEGRATION_NOT_CONFIGURED', 'This step has no integration')
          const cred = await ctx.deps.getCredential(run.org_slug, provider, run.run_id)
          decrypted.push(cred)
          return cred
        },
        now: () => ctx.clock.now(),
        reportProgress: (p) => {
          if (!stepSignal.aborted) ctx.writer.progress(logId, { rows: p.rows, counters: p.counters })
        },
      }
      const result = await raceAbort(Promise.resolve().then(() => processor.run(pctx, step.config)), stepSignal)
      const rows = Number.isSafeInteger(result?.rows_processed) && result.rows_processed >= 0 ? result.rows_processed : 0
      end('COMPLETED', { rows, result: safeResult(result?.output) })
      return { ok: true, result: { rows_processed: rows, output: result?.output } }
    } catch (err) {
      const stop = stopReason(signals.control)
      if (stop?.kind === 'offboarded') {
        // The org and this run's rows are gone: record nothing.
        for (const cred of decrypted.splice(0)) ctx.deps.releaseCredential?.(cred)
        return { ok: false, failure: null }
      }
      if (stop) {
        end('CANCELLED', { code: stop.kind === 'cancel' ? 'CANCELLED' : 'INTERRUPTED', message: stop.kind === 'cancel' ? 'Run cancelled by request' : 'Worker stopped' })
        return { ok: false, failure: null }
      }
      if (signals.pipelineTimeout.aborted) {
        end('TIMEOUT', { code: 'PIPELINE_TIMEOUT', message: 'Pipeline timeout reached' })
        return { ok: false, failure: null }
      }
      if (stepTimeout?.aborted) {
        const message = `Step exceeded its timeout of ${step.timeout_seconds} s`
        end('TIMEOUT', { code: 'STEP_TIMEOUT', message })
        return { ok: false, failure: { stepId: step.id, status: 'TIMEOUT', code: 'STEP_TIMEOUT', message } }
      }
      if (signals.failFast.aborted) {
        end('CANCELLED', { code: 'UPSTREAM_FAILED', message: 'Stopped because another step failed' })
        return { ok: false, failure: null }
      }
      // ProcessorError messages are safe by contract; anything else may carry secrets or upstream text.
      const known = err instanceof ProcessorError
      const code = known ? err.code : 'PROCESSOR_ERROR'
      const message = known ? err.message : GENERIC_STEP_ERROR
      if (!known) ctx.logger.warn({ run_id: run.run_id, step_id: step.id, processor: step.processor, err_name: (err as Error)?.name }, 'processor threw')
      end('FAILED', { code, message })
      if (known && err.retryable && attempt <= step.retries) {
        const backoff = Math.min(base * 2 ** (attempt - 1), cap) + Math.floor(Math.random() * base)
        const delay = Math.min(Math.max(backoff, err.options.retryAfterMs ?? 0), 300_000)
        try {
          await sleep(delay, undefined, { signal: runSignal })
        } catch {
          return { ok: false, failure: null }
        }
        continue
      }
      return { ok: false, failure: { stepId: step.id, status: 'FAILED', code, message } }
    }
  }
  return { ok: false, failure: null }
}

/** The step's outbound HTTP: refused once the step signal aborted or the run is no longer this worker's. */
function fencedHttp(ctx: ExecutorContext, run: RunRow, stepSignal: AbortSignal): EgressClient {
  return {
    async request(url, req = {}) {
      if (stepSignal.aborted) throw new EgressError('ABORTED')
      if (!(await holdsRun(ctx.db, run.run_id, ctx.workerId)) || stepSignal.aborted) throw new EgressError('ABORTED')
      const http = ctx.deps.httpFor?.(run.org_slug) ?? ctx.deps.http
      return http.request(url, { ...req, signal: req.signal ? AbortSignal.any([req.signal, stepSignal]) : stepSignal })
    },
  }
}
