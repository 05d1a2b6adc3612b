// Pipelines: the template catalogue, the trigger (SPEC §7 order), and run history/cancel. Every run
// query carries org_slug in its WHERE clause; another org's run id is a plain 404.
import { createHash } from 'node:crypto'
import Type from 'typebox'
import { Parameters, ParamValue } from '../models/pipelines.js'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { actorOf, requireOrgAuth } from '../dependencies/auth.js'
import type { AdmitHook, AdmitResult } from '../dependencies/quota.js'
import { Cursor, decodeCursor, encodeCursor, errorResponses, Id, iso, limitQuery, OrgParams, OrgSlug, Strict } from '../models/common.js'
import { recordAudit } from '../../core/orgs/audit.js'
import { triggerScope } from '../../core/orgs/onboarding.js'
import { requireUsableCredential } from '../dependencies/credential-check.js'
import { computeDedupKey, getRun, listRuns, listStepLogs, type RunListRow, type RunRow, type StepLogRow } from '../../core/pipelines/runs.js'
import { DEFAULT_RUN_MAX_ATTEMPTS, type Engine } from '../../core/pipelines/engine.js'
import type { PipelineTemplate, TemplateCatalog } from '../../core/pipelines/templates.js'
import { runWatchState, waitForRunChange } from './run-events.js'

const Segment = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$', maxLength: 64 })
const TriggerParams = Strict({ org_slug: OrgSlug, provider: Segment, domain: Segment, pipeline: Segment })
const TriggerBody = Type.Union([Strict({ parameters: Type.Optional(Parameters) }), Type.Null()])
const TriggerHeaders = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{8,128}$', maxLength: 128 })) })
export const RunStatusEnum = Type.Union([
  Type.Literal('PENDING'), Type.Literal('RUNNING'), Type.Literal('COMPLETED'),
  Type.Literal('FAILED'), Type.Literal('TIMEOUT'), Type.Literal('CANCELLED'),
])
const RunParams = Strict({ org_slug: OrgSlug, run_id: Id })
const ParametersOut = Type.Record(Type.String({ maxLength: 64 }), ParamValue, { maxProperties: 20 })

const TriggerResponse = Strict({
  run_id: Type.String({ maxLength: 48 }),
  status: RunStatusEnum,
  pipeline_id: Type.String({ maxLength: 200 }),
  deduplicated: Type.Boolean(),
})

const ParameterView = Strict({
  type: Type.String({ maxLength: 16 }),
  description: Type.Optional(Type.String({ maxLength: 500 })),
  required: Type.Boolean(),
  default: Type.Optional(ParamValue),
  min: Type.Optional(Type.Integer({ minimum: -9007199254740991, maximum: 9007199254740991 })),
  max: Type.Optional(Type.Integer({ minimum: -9007199254740991, maximum: 9007199254740991 })),
  max_length: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
  values: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 100 })),
})

const CatalogResponse = Strict({
  pipelines: Type.Array(
    Strict({
      id: Type.String({ maxLength: 200 }),
      provider: Type.String({ maxLength: 64 }),
      domain: Type.String({ maxLength: 64 }),
      pipeline: Type.String({ maxLength: 64 }),
      description: Type.String({ maxLength: 500 }),
      required_integration: Type.Union([Type.String({ maxLength: 16 }), Type.Null()]),
      timeout_seconds: Type.Integer({ minimum: 1, maximum: 86400 }),
      parameters: Type.Record(Type.String({ maxLength: 64 }), ParameterView, { maxProperties: 20 }),
      steps: Type.Array(Strict({ id: Type.String({ maxLength: 64 }), processor: Type.String({ maxLength: 100 }) }), { maxItems: 50 }),
    }),
    { maxItems: 10000 },
  ),
  total: Type.Integer({ minimum: 0, maximum: 10000 }),
})

const NullableInt = Type.Union([Type.Integer({ minimum: 0, maximum: 1e15 }), Type.Null()])
const NullableText = (max: number) => Type.Union([Type.String({ maxLength: max }), Type.Null()])

const RunView = Strict({
  run_id: Type.String({ maxLength: 48 }),
  org_slug: Type.String({ maxLength: 64 }),
  pipeline_id: Type.String({ maxLength: 200 }),
  status: RunStatusEnum,
  parameters: ParametersOut,
  trigger_type: Type.String({ maxLength: 16 }),
  triggered_by: Type.String({ maxLength: 200 }),
  schedule_id: NullableText(48),
  run_date: Type.String({ maxLength: 10 }),
  created_at: Type.String({ maxLength: 40 }),
  started_at: NullableText(40),
  finished_at: NullableText(40),
  duration_ms: NullableInt,
  error_code: NullableText(64),
  error_message: NullableText(500),
  attempt: Type.Integer({ minimum: 0, maximum: 100 }),
  max_attempts: Type.Integer({ minimum: 0, maximum: 100 }),
  cancel_requested: Type.Boolean(),
})

const StepView = Strict({
  log_id: Type.String({ maxLength: 48 }),
  step_id: Type.String({ maxLength: 64 }),
  processor: Type.String({ maxLength: 100 }),
  attempt: Type.Integer({ minimum: 0, maximum: 100 }),
  status: Type.String({ maxLength: 16 }),
  started_at: Type.String({ maxLength: 40 }),
  finished_at: NullableText(40),
  duration_ms: NullableInt,
  rows_processed: Type.Integer({ minimum: 0, maximum: 1e15 }),
  /** Live counters while RUNNING (kept after the end), e.g. {"pages":2,"records":150}. */
  progress: Type.Union([Type.Record(Type.String({ maxLength: 32 }), Type.Integer({ minimum: 0, maximum: 9007199254740991 }), { maxProperties: 10 }), Type.Null()]),
  /** The step's result summary once it finished, e.g. {"pages":3,"records":25} or {"unpriced_models":[...]}. */
  result: Type.Union([Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 50 }), Type.Null()]),
  error_code: NullableText(64),
  error_message: NullableText(500),
})

const RunQuery = Strict({
  wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 30, description: 'Long-poll: up to this many seconds for the run to leave `since` (default: its current status)' })),
  since: Type.Optional(RunStatusEnum),
})

const RunsQuery = Strict({
  limit: limitQuery(100),
  cursor: Type.Optional(Cursor),
  status: Type.Optional(RunStatusEnum),
  pipeline_id: Type.Optional(Type.String({ maxLength: 200, pattern: '^[a-z0-9/_-]{1,200}$' })),
})
const StepsQuery = Strict({ limit: limitQuery(1000), cursor: Type.Optional(Cursor) })
const RunsResponse = Strict({ runs: Type.Array(RunView, { maxItems: 100 }), next_cursor: NullableText(512) })
const StepsResponse = Strict({ run_id: Type.String({ maxLength: 48 }), steps: Type.Array(StepView, { maxItems: 1000 }), next_cursor: NullableText(512) })
const CancelResponse = Strict({ run_id: Type.String({ maxLength: 48 }), status: Type.Union([Type.Literal('CANCELLED'), Type.Literal('CANCEL_REQUESTED')]) })

export function runView(r: RunListRow) {
  return {
    run_id: r.run_id,
    org_slug: r.org_slug,
    pipeline_id: r.pipeline_id,
    status: r.status,
    parameters: JSON.parse(r.parameters) as Record<string, string | number>,
    trigger_type: r.trigger_type,
    triggered_by: r.triggered_by,
    schedule_id: r.schedule_id,
    run_date: String(r.run_date).slice(0, 10),
    created_at: iso(r.created_at)!,
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
    duration_ms: r.duration_ms === null ? null : Number(r.duration_ms),
    error_code: r.error_code,
    error_message: r.error_message,
    attempt: r.attempt,
    max_attempts: r.max_attempts,
    cancel_requested: Number(r.cancel_requested) === 1,
  }
}

function jsonObject(text: string | null): Record<string, unknown> | null {
  if (!text) return null
  try {
    const v = JSON.parse(text) as unknown
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null
  } catch {
    return null
  }
}

export function stepView(s: StepLogRow) {
  return {
    log_id: s.log_id,
    step_id: s.step_id,
    processor: s.processor,
    attempt: s.attempt,
    status: s.status,
    started_at: iso(s.started_at)!,
    finished_at: iso(s.finished_at),
    duration_ms: s.duration_ms === null ? null : Number(s.duration_ms),
    rows_processed: Number(s.rows_processed),
    progress: jsonObject(s.progress) as Record<string, number> | null,
    result: jsonObject(s.result),
    error_code: s.error_code,
    error_message: s.error_message,
  }
}

const catalogJson = new WeakMap<TemplateCatalog, Buffer>()

function catalogView(t: PipelineTemplate) {
  return {
    id: t.id,
    provider: t.provider,
    domain: t.domain,
    pipeline: t.pipeline,
    description: t.description,
    required_integration: t.integration,
    timeout_seconds: t.timeout_seconds,
    parameters: Object.fromEntries(Object.entries(t.parameters).map(([k, p]) => [k, { ...p }])),
    steps: t.steps.map((s) => ({ id: s.id, processor: s.processor })),
  }
}

function engineOf(ctx: AppContext): Engine {
  if (!ctx.engine) throw new ApiError('SERVICE_UNAVAILABLE')
  return ctx.engine
}

const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
type TriggerResult = { status: number; body: { run_id: string; status: RunRow['status']; pipeline_id: string; deduplicated: boolean } }

class IdempotencyKeyTaken extends Error {}

async function findTriggerReplay(ctx: AppContext, scope: string, key: string, hash: string): Promise<TriggerResult | null> {
  const row = await ctx.db.kysely
    .selectFrom('org_idempotency_keys')
    .select(['request_hash', 'status_code', 'response'])
    .where('scope', '=', scope)
    .where('idempotency_key', '=', key)
    .where('expires_at', '>', ctx.clock.now())
    .limit(1)
    .executeTakeFirst()
  if (!row) return null
  if (row.request_hash !== hash) throw new ApiError('IDEMPOTENCY_CONFLICT')
  return { status: row.status_code, body: JSON.parse(row.response) as TriggerResult['body'] }
}

export function pipelineRoutes(app: App, ctx: AppContext): void {
  const watchState = runWatchState(app, ctx)
  app.get(
    '/api/v1/pipelines',
    { config: { auth: 'org_or_admin' }, schema: { response: { 200: CatalogResponse, ...errorResponses } } },
    (_req, reply) => {
      // The catalogue never changes while the process runs: serialized once (by the route's own
      // response serializer), then sent as is (bytes, so no text is encoded per request), without a promise.
      const catalog = engineOf(ctx).catalog
      let json = catalogJson.get(catalog)
      if (json === undefined) {
        const list = catalog.list().map(catalogView)
        catalogJson.set(catalog, (json = Buffer.from(reply.serializeInput({ pipelines: list, total: list.length }, '200') as string)))
      }
      reply.type('application/json; charset=utf-8').send(json as never)
    },
  )

  app.post(
    '/api/v1/pipelines/run/:org_slug/:provider/:domain/:pipeline',
    {
      config: { auth: 'org' },
      schema: { params: TriggerParams, body: TriggerBody, headers: TriggerHeaders, response: { 202: TriggerResponse, 200: TriggerResponse, ...errorResponses } },
    },
    async (req, reply) => {
      const auth = requireOrgAuth(req)
      const org = req.params.org_slug
      const engine = engineOf(ctx)
      await ctx.rateLimits.consume('trigger', org, auth.triggers_per_minute, reply)
      const template = engine.catalog.get(req.params.provider, req.params.domain, req.params.pipeline)
      if (!template) throw new ApiError('TEMPLATE_NOT_FOUND')
      const now = ctx.clock.now()
      const input = (req.body as { parameters?: Record<string, unknown> } | null | undefined)?.parameters
      const checked = engine.catalog.validateParameters(template, input, now)
      if (!checked.ok) throw new ApiError('INVALID_PARAMETERS', { fields: checked.errors })
      if (template.integration) {
        // A PENDING credential is validated here, on its first use.
        await requireUsableCredential(ctx, { org_slug: org, provider: template.integration, actor: actorOf(req), request_id: String(req.id) })
      }
      const idemKey = req.headers['idempotency-key'] as string | undefined
      // Scoped by the org incarnation: a re-onboarded org with the same slug never sees the old org's records.
      const scope = triggerScope(auth.dataset_id)
      // Only a request with an Idempotency-Key is compared with a stored one.
      const hash = idemKey ? createHash('sha256').update(`${template.id}\n${JSON.stringify(input ?? {})}`).digest('hex') : ''
      if (idemKey) {
        const replay = await findTriggerReplay(ctx, scope, idemKey, hash)
        if (replay) {
          reply.header('Idempotent-Replayed', 'true')
          return reply.code(replay.status).send(replay.body)
        }
      }
      const viewOf = (r: Exclude<AdmitResult, { kind: 'refused' }>): TriggerResult => ({
        status: r.kind === 'admitted' ? 202 : 200,
        body: { run_id: r.run.run_id, status: r.run.status, pipeline_id: template.id, deduplicated: r.kind === 'deduplicated' },
      })
      // The Idempotency-Key record commits with the admission; a concurrent request holding the same
      // key loses the insert, rolls its admission back and answers with the stored response.
      const storeKey: AdmitHook | undefined = idemKey
        ? async (trx, decided) => {
            const out = viewOf(decided)
            const stored = await trx
              .insertInto('org_idempotency_keys')
              .values({ scope, idempotency_key: idemKey, request_hash: hash, status_code: out.status, response: JSON.stringify(out.body), created_at: now, expires_at: now + IDEMPOTENCY_TTL_MS, org_slug: org })
              .onConflict((oc) => oc.columns(['scope', 'idempotency_key']).doNothing())
              .executeTakeFirst()
            if (Number(stored.numInsertedOrUpdatedRows ?? 0n) === 0) throw new IdempotencyKeyTaken()
          }
        : undefined
      let result: AdmitResult
      try {
        result = await engine.admit(
          {
            org_slug: org,
            pipeline_id: template.id,
            parameters: checked.parameters,
            dedup_key: computeDedupKey(template.id, checked.parameters),
            trigger_type: 'api',
            triggered_by: actorOf(req),
            max_attempts: DEFAULT_RUN_MAX_ATTEMPTS,
            now,
            // The trigger's audit row commits with the admission.
            audit: { actor: actorOf(req), action: 'pipeline.triggered', details: { pipeline_id: template.id }, request_id: String(req.id) },
          },
          storeKey,
        )
      } catch (err) {
        if (!(err instanceof IdempotencyKeyTaken) || !idemKey) throw err
        const replay = await findTriggerReplay(ctx, scope, idemKey, hash)
        if (!replay) throw new ApiError('IDEMPOTENCY_CONFLICT')
        reply.header('Idempotent-Replayed', 'true')
        return reply.code(replay.status).send(replay.body)
      }
      if (result.kind === 'refused') {
        // An inactive subscription means the key no longer authorizes anything (the guard's rule).
        if (result.code === 'SUBSCRIPTION_INACTIVE') throw new ApiError('INVALID_API_KEY')
        throw new ApiError(result.code, { retryAfterSeconds: result.retryAfterSeconds })
      }
      const out = viewOf(result)
      return reply.code(out.status).send(out.body)
    },
  )

  app.get(
    '/api/v1/pipelines/:org_slug/runs',
    { config: { auth: 'org' }, schema: { params: OrgParams, querystring: RunsQuery, response: { 200: RunsResponse, ...errorResponses } } },
    async (req) => {
      const after = decodeCursor(req.query.cursor, ['number', 'string'])
      const page = await listRuns(ctx.db, req.params.org_slug, {
        limit: req.query.limit,
        status: req.query.status as RunRow['status'] | undefined,
        pipeline_id: req.query.pipeline_id,
        after: after ? { created_at: after[0] as number, run_id: after[1] as string } : null,
      })
      return { runs: page.runs.map(runView), next_cursor: page.next ? encodeCursor([page.next.created_at, page.next.run_id]) : null }
    },
  )

  app.get(
    '/api/v1/pipelines/:org_slug/runs/:run_id',
    { config: { auth: 'org' }, schema: { params: RunParams, querystring: RunQuery, response: { 200: RunView, ...errorResponses } } },
    async (req, reply) => {
      const { org_slug, run_id } = req.params
      const wait = req.query.wait ?? 0
      const run = wait > 0
        ? await waitForRunChange(watchState, ctx, reply, { org_slug, run_id, since: req.query.since as RunRow['status'] | undefined, seconds: wait })
        : await getRun(ctx.db, org_slug, run_id)
      if (!run) throw new ApiError('RUN_NOT_FOUND')
      return runView(run)
    },
  )

  app.get(
    '/api/v1/pipelines/:org_slug/runs/:run_id/steps',
    { config: { auth: 'org' }, schema: { params: RunParams, querystring: StepsQuery, response: { 200: StepsResponse, ...errorResponses } } },
    async (req) => {
      const { org_slug, run_id } = req.params
      const run = await getRun(ctx.db, org_slug, run_id)
      if (!run) throw new ApiError('RUN_NOT_FOUND')
      const after = decodeCursor(req.query.cursor, ['number', 'string'])
      const page = await listStepLogs(ctx.db, org_slug, run_id, {
        limit: req.query.limit,
        after: after ? { started_at: after[0] as number, log_id: after[1] as string } : null,
      })
      return { run_id, steps: page.steps.map(stepView), next_cursor: page.next ? encodeCursor([page.next.started_at, page.next.log_id]) : null }
    },
  )

  app.post(
    '/api/v1/pipelines/:org_slug/runs/:run_id/cancel',
    { config: { auth: 'org' }, schema: { params: RunParams, body: Strict({}), response: { 202: CancelResponse, ...errorResponses } } },
    async (req, reply) => {
      const { org_slug, run_id } = req.params
      const r = await engineOf(ctx).cancelRun(org_slug, run_id)
      if (r.kind === 'not_found') throw new ApiError('RUN_NOT_FOUND')
      if (r.kind === 'terminal') throw new ApiError('INVALID_STATE')
      await recordAudit(
        ctx.db.kysely,
        { org_slug, actor: actorOf(req), action: 'pipeline.cancel_requested', resource_type: 'run', resource_id: run_id, details: { result: r.kind }, request_id: String(req.id) },
        ctx.clock.now(),
      )
      return reply.code(202).send({ run_id, status: r.kind === 'cancelled' ? 'CANCELLED' : 'CANCEL_REQUESTED' })
    },
  )
}
