// Per-org schedules: list, create (cron + IANA timezone + template + parameters), delete.
// Every query carries org_slug; another org's schedule id is a plain 404.
import Type from 'typebox'
import type { FastifyRequest } from 'fastify'
import { Parameters, ParamValue } from '../models/pipelines.js'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { actorOf } from '../dependencies/auth.js'
import { Cursor, decodeCursor, encodeCursor, errorResponses, Id, iso, limitQuery, OrgParams, OrgSlug, Strict } from '../models/common.js'
import { recordAudit } from '../../core/orgs/audit.js'
import {
  createSchedule, deleteSchedule, getSchedule, listSchedules, ScheduleError, updateSchedule, type ScheduleRow, type ScheduleRules,
} from '../../core/pipelines/scheduler.js'
import { requireUsableCredential } from '../dependencies/credential-check.js'
import { minScheduleIntervalSeconds } from '../../core/orgs/plans.js'

const NullableText = (max: number) => Type.Union([Type.String({ maxLength: max }), Type.Null()])

const CreateBody = Strict({
  pipeline_id: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_-]{0,63}$', maxLength: 200 }),
  cron: Type.String({ minLength: 1, maxLength: 100 }),
  timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: 'UTC' })),
  parameters: Type.Optional(Parameters),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' })),
})

const PatchBody = Type.Object(
  {
    name: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' }), Type.Null()])),
    cron: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    parameters: Type.Optional(Parameters),
    is_active: Type.Optional(Type.Boolean({ description: 'false pauses the schedule, true resumes it' })),
  },
  { additionalProperties: false, minProperties: 1 },
)

const ScheduleView = Strict({
  schedule_id: Type.String({ maxLength: 48 }),
  name: NullableText(100),
  org_slug: Type.String({ maxLength: 64 }),
  pipeline_id: Type.String({ maxLength: 200 }),
  cron: Type.String({ maxLength: 100 }),
  timezone: Type.String({ maxLength: 64 }),
  parameters: Parameters,
  is_active: Type.Boolean(),
  next_run_at: NullableText(40),
  last_run_at: NullableText(40),
  last_run_id: NullableText(48),
  last_status: NullableText(32),
  last_error_code: NullableText(64),
  created_at: Type.String({ maxLength: 40 }),
})

const ListQuery = Strict({ limit: limitQuery(100), cursor: Type.Optional(Cursor) })
const ListResponse = Strict({ schedules: Type.Array(ScheduleView, { maxItems: 100 }), next_cursor: NullableText(512) })
const ScheduleParams = Strict({ org_slug: OrgSlug, schedule_id: Id })
const DeleteResponse = Strict({ schedule_id: Type.String({ maxLength: 48 }), deleted: Type.Boolean() })

function view(s: ScheduleRow) {
  return {
    schedule_id: s.schedule_id,
    name: s.name ?? null,
    org_slug: s.org_slug,
    pipeline_id: s.pipeline_id,
    cron: s.cron,
    timezone: s.timezone,
    parameters: JSON.parse(s.parameters) as Record<string, string | number>,
    is_active: Number(s.is_active) === 1,
    next_run_at: Number(s.is_active) === 1 ? iso(s.next_run_at) : null,
    last_run_at: iso(s.last_run_at),
    last_run_id: s.last_run_id,
    last_status: s.last_status,
    last_error_code: s.last_error_code,
    created_at: iso(s.created_at)!,
  }
}

/** The org's plan rules for schedules (minimum interval between two fires). */
async function rulesFor(ctx: AppContext, orgSlug: string): Promise<ScheduleRules> {
  const sub = await ctx.db.kysely.selectFrom('org_subscriptions').select('plan_name').where('org_slug', '=', orgSlug).limit(1).executeTakeFirst()
  if (!sub) throw new ApiError('ORG_NOT_FOUND')
  return { planName: sub.plan_name, minIntervalSeconds: minScheduleIntervalSeconds(ctx.plans, sub.plan_name) }
}

/** A schedule whose pipeline needs an integration is refused until the org has a usable credential (as the trigger). */
async function requireIntegration(ctx: AppContext, orgSlug: string, pipelineId: string, req: FastifyRequest): Promise<void> {
  const template = ctx.engine?.catalog.getById(pipelineId)
  if (!template?.integration) return
  // A PENDING credential is validated now, as at a trigger.
  await requireUsableCredential(ctx, { org_slug: orgSlug, provider: template.integration, actor: actorOf(req), request_id: String(req.id) })
}

function scheduleProblem(err: unknown): never {
  if (!(err instanceof ScheduleError)) throw err
  if (err.code === 'TEMPLATE_NOT_FOUND') throw new ApiError('TEMPLATE_NOT_FOUND')
  if (err.code === 'ORG_NOT_FOUND') throw new ApiError('ORG_NOT_FOUND')
  if (err.code === 'NOT_FOUND') throw new ApiError('NOT_FOUND')
  if (err.code === 'CONFLICT') throw new ApiError('INVALID_STATE')
  if (err.code === 'SCHEDULE_LIMIT') throw new ApiError('SCHEDULE_LIMIT_REACHED')
  if (err.code === 'INVALID_PARAMETERS') throw new ApiError('INVALID_PARAMETERS', { fields: err.errors })
  const fields = err.errors.map((e) => ({ path: `body/${e.path}`, message: e.message }))
  if (err.code === 'INTERVAL_TOO_SHORT') throw new ApiError('SCHEDULE_INTERVAL_TOO_SHORT', { fields })
  throw new ApiError('VALIDATION_FAILED', { fields })
}

export function schedulerRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/scheduler/:org_slug/schedules',
    { config: { auth: 'org' }, schema: { params: OrgParams, querystring: ListQuery, response: { 200: ListResponse, ...errorResponses } } },
    async (req) => {
      const after = decodeCursor(req.query.cursor, ['number', 'string'])
      const page = await listSchedules(ctx.db, req.params.org_slug, {
        limit: req.query.limit,
        after: after ? { created_at: after[0] as number, schedule_id: after[1] as string } : null,
      })
      return { schedules: page.schedules.map(view), next_cursor: page.next ? encodeCursor([page.next.created_at, page.next.schedule_id]) : null }
    },
  )

  app.post(
    '/api/v1/scheduler/:org_slug/schedules',
    { config: { auth: 'org' }, schema: { params: OrgParams, body: CreateBody, response: { 201: ScheduleView, ...errorResponses } } },
    async (req, reply) => {
      if (!ctx.engine) throw new ApiError('SERVICE_UNAVAILABLE')
      const org = req.params.org_slug
      const now = ctx.clock.now()
      let row: ScheduleRow
      const rules = await rulesFor(ctx, org)
      // Refused before anything is stored: a schedule that cannot run is not accepted.
      await requireIntegration(ctx, org, req.body.pipeline_id, req)
      try {
        row = await createSchedule(ctx.db, ctx.engine.catalog, org, { ...req.body, timezone: req.body.timezone ?? 'UTC' }, now, rules)
      } catch (err) {
        scheduleProblem(err)
      }
      await recordAudit(
        ctx.db.kysely,
        { org_slug: org, actor: actorOf(req), action: 'schedule.created', resource_type: 'schedule', resource_id: row.schedule_id, details: { pipeline_id: row.pipeline_id }, request_id: String(req.id) },
        now,
      )
      return reply.code(201).send(view(row))
    },
  )

  app.patch(
    '/api/v1/scheduler/:org_slug/schedules/:schedule_id',
    { config: { auth: 'org' }, schema: { params: ScheduleParams, body: PatchBody, response: { 200: ScheduleView, ...errorResponses } } },
    async (req) => {
      if (!ctx.engine) throw new ApiError('SERVICE_UNAVAILABLE')
      const { org_slug, schedule_id } = req.params
      const now = ctx.clock.now()
      const body = req.body as { name?: string | null; cron?: string; timezone?: string; parameters?: Record<string, string | number>; is_active?: boolean }
      const current = await getSchedule(ctx.db, org_slug, schedule_id)
      if (!current) throw new ApiError('NOT_FOUND')
      // A schedule that will be active must be able to run: same refusal as at creation.
      if (body.is_active ?? Number(current.is_active) === 1) await requireIntegration(ctx, org_slug, current.pipeline_id, req)
      let row: ScheduleRow
      try {
        row = await updateSchedule(ctx.db, ctx.engine.catalog, org_slug, schedule_id, body, now, await rulesFor(ctx, org_slug))
      } catch (err) {
        scheduleProblem(err)
      }
      const action = body.is_active === false && Number(current.is_active) === 1 ? 'schedule.paused'
        : body.is_active === true && Number(current.is_active) !== 1 ? 'schedule.resumed' : 'schedule.updated'
      await recordAudit(
        ctx.db.kysely,
        { org_slug, actor: actorOf(req), action, resource_type: 'schedule', resource_id: schedule_id, details: { changed: Object.keys(body).sort() }, request_id: String(req.id) },
        now,
      )
      return view(row)
    },
  )

  app.delete(
    '/api/v1/scheduler/:org_slug/schedules/:schedule_id',
    { config: { auth: 'org' }, schema: { params: ScheduleParams, body: Strict({}), response: { 200: DeleteResponse, ...errorResponses } } },
    async (req) => {
      const { org_slug, schedule_id } = req.params
      if (!(await deleteSchedule(ctx.db, org_slug, schedule_id))) throw new ApiError('NOT_FOUND')
      await recordAudit(
        ctx.db.kysely,
        { org_slug, actor: actorOf(req), action: 'schedule.deleted', resource_type: 'schedule', resource_id: schedule_id, request_id: String(req.id) },
        ctx.clock.now(),
      )
      return { schedule_id, deleted: true }
    },
  )
}
