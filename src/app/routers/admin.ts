// Admin (root key): bootstrap, organization listing and detail, audit logs.
import Type from 'typebox'
import { sql } from 'kysely'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { Cursor, decodeCursor, encodeCursor, errorResponses, iso, IsoTime, OrgParams, Strict } from '../models/common.js'
import { SubscriptionStatus } from '../models/organizations.js'
import { listTables, migrateToLatest } from '../../core/db/migrate.js'
import { readUsage } from '../../core/orgs/usage.js'

const BootstrapResponse = Strict({
  status: Type.String({ maxLength: 32 }),
  tables_created: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 500 }),
  tables_existing: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 500 }),
})

const OrgSummary = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  company_name: Type.String({ maxLength: 200 }),
  status: Type.String({ maxLength: 16 }),
  plan_name: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
  subscription_status: Type.Union([Type.String({ maxLength: 16 }), Type.Null()]),
  created_at: Type.String({ maxLength: 40 }),
})

const ListOrgsQuery = Strict({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Cursor),
  status: Type.Optional(SubscriptionStatus),
})

const OrgDetail = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  company_name: Type.String({ maxLength: 200 }),
  admin_email: Type.String({ maxLength: 254 }),
  status: Type.String({ maxLength: 16 }),
  dataset_id: Type.String({ maxLength: 128 }),
  created_at: Type.String({ maxLength: 40 }),
  subscription: Strict({
    plan_name: Type.String({ maxLength: 32 }),
    status: Type.String({ maxLength: 16 }),
    daily_limit: Type.Integer(),
    monthly_limit: Type.Integer(),
    concurrent_limit: Type.Integer(),
    trial_end_date: IsoTime,
  }),
  usage_today: Strict({ runs: Type.Integer(), succeeded: Type.Integer(), failed: Type.Integer(), running: Type.Integer() }),
  active_key_count: Type.Integer(),
  run_count: Type.Integer(),
})

const AuditQuery = Strict({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Cursor),
})

const AuditEntry = Strict({
  audit_id: Type.String({ maxLength: 64 }),
  actor: Type.String({ maxLength: 80 }),
  action: Type.String({ maxLength: 64 }),
  resource_type: Type.String({ maxLength: 64 }),
  resource_id: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  details: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown()),
  request_id: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  created_at: Type.String({ maxLength: 40 }),
})

export function adminRoutes(app: App, ctx: AppContext): void {
  const db = ctx.db.kysely

  app.post(
    '/api/v1/admin/bootstrap',
    { config: { auth: 'admin' }, schema: { body: Strict({}), response: { 200: BootstrapResponse, ...errorResponses } } },
    async () => {
      const before = new Set(await listTables(ctx.db))
      await migrateToLatest(ctx.db, ctx.clock.now())
      const after = await listTables(ctx.db)
      return {
        status: 'ok',
        tables_created: after.filter((t) => !before.has(t)),
        tables_existing: after.filter((t) => before.has(t)),
      }
    },
  )

  app.get(
    '/api/v1/admin/organizations',
    {
      config: { auth: 'admin' },
      schema: {
        querystring: ListOrgsQuery,
        response: { 200: Strict({ organizations: Type.Array(OrgSummary, { maxItems: 100 }), next_cursor: Type.Union([Cursor, Type.Null()]) }), ...errorResponses },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 20
      const after = decodeCursor(req.query.cursor, ['string'])
      let q = db
        .selectFrom('org_profiles as p')
        .leftJoin('org_subscriptions as s', 's.org_slug', 'p.org_slug')
        .select(['p.org_slug', 'p.company_name', 'p.status', 'p.created_at', 's.plan_name', 's.status as subscription_status'])
        .orderBy('p.org_slug')
        .limit(limit + 1)
      if (after) q = q.where('p.org_slug', '>', after[0] as string)
      if (req.query.status) q = q.where('s.status', '=', req.query.status as never)
      const rows = await q.execute()
      const page = rows.slice(0, limit)
      return {
        organizations: page.map((r) => ({ ...r, created_at: iso(r.created_at)! })),
        next_cursor: rows.length > limit ? encodeCursor([page[page.length - 1]!.org_slug]) : null,
      }
    },
  )

  app.get(
    '/api/v1/admin/organizations/:org_slug',
    { config: { auth: 'admin' }, schema: { params: OrgParams, response: { 200: OrgDetail, ...errorResponses } } },
    async (req) => {
      const org = req.params.org_slug
      const now = ctx.clock.now()
      const profile = await db.selectFrom('org_profiles').selectAll().where('org_slug', '=', org).limit(1).executeTakeFirst()
      if (!profile) throw new ApiError('ORG_NOT_FOUND')
      const [usage, sub, keys, runs] = await Promise.all([
        readUsage(db, org, now),
        db.selectFrom('org_subscriptions').selectAll().where('org_slug', '=', org).limit(1).executeTakeFirst(),
        db
          .selectFrom('org_api_keys')
          .select(sql<number>`count(*)`.as('n'))
          .where('org_slug', '=', org)
          .where('revoked_at', 'is', null)
          .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
          .limit(1)
          .executeTakeFirst(),
        db.selectFrom('org_pipeline_runs').select(sql<number>`count(*)`.as('n')).where('org_slug', '=', org).limit(1).executeTakeFirst(),
      ])
      if (!sub || !usage) throw new ApiError('ORG_NOT_FOUND')
      return {
        org_slug: profile.org_slug,
        company_name: profile.company_name,
        admin_email: profile.admin_email,
        status: profile.status,
        dataset_id: profile.dataset_id,
        created_at: iso(profile.created_at)!,
        subscription: {
          plan_name: sub.plan_name,
          status: sub.status,
          daily_limit: sub.daily_limit,
          monthly_limit: sub.monthly_limit,
          concurrent_limit: sub.concurrent_limit,
          trial_end_date: iso(sub.trial_end_at),
        },
        usage_today: {
          runs: usage.daily.used,
          succeeded: usage.succeeded_today,
          failed: usage.failed_today,
          running: usage.concurrent.running,
        },
        active_key_count: Number(keys?.n ?? 0),
        run_count: Number(runs?.n ?? 0),
      }
    },
  )

  app.get(
    '/api/v1/admin/audit-logs/:org_slug',
    {
      config: { auth: 'admin' },
      schema: {
        params: OrgParams,
        querystring: AuditQuery,
        response: { 200: Strict({ org_slug: Type.String({ maxLength: 64 }), logs: Type.Array(AuditEntry, { maxItems: 100 }), next_cursor: Type.Union([Cursor, Type.Null()]) }), ...errorResponses },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 20
      const after = decodeCursor(req.query.cursor, ['number', 'string'])
      let q = db
        .selectFrom('org_audit_logs')
        .select(['audit_id', 'actor', 'action', 'resource_type', 'resource_id', 'details', 'request_id', 'created_at'])
        .where('org_slug', '=', req.params.org_slug)
        .orderBy('created_at', 'desc')
        .orderBy('audit_id', 'desc')
        .limit(limit + 1)
      if (after) {
        const [t, id] = after as [number, string]
        q = q.where((eb) => eb(eb.refTuple('created_at', 'audit_id'), '<', eb.tuple(t, id)))
      }
      const rows = await q.execute()
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      return {
        org_slug: req.params.org_slug,
        logs: page.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown>, created_at: iso(r.created_at)! })),
        next_cursor: rows.length > limit && last ? encodeCursor([last.created_at, last.audit_id]) : null,
      }
    },
  )
}
