// Small bounded read routes the console needs and no other route provides, under the same guards:
// the org's daily cost (org key), and for the operator an organizations overview with search,
// system health and the audit log across orgs (root key).
import Type from 'typebox'
import { sql } from 'kysely'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { Cursor, decodeCursor, encodeCursor, errorResponses, iso, OrgParams, Strict } from '../models/common.js'
import { DatasetError, openDatasetReader, type DatasetReader } from '../../core/datasets/index.js'
import { ApiError } from '../errors.js'
import { requireOrgAuth } from '../dependencies/auth.js'
import { utcDate } from '../../core/clock.js'
import { recentProcesses } from '../../core/observability/process-registry.js'

const DAY_MS = 86_400_000

/** Cost tables the built-in pipelines write, and how each names its model and its cost. */
const COST_SOURCES = [
  { provider: 'openai', table: 'openai_cost_daily', model: 'model', cost: 'total_cost_usd' },
  { provider: 'anthropic', table: 'anthropic_cost_daily', model: 'model', cost: 'total_cost_usd' },
  { provider: 'gcp', table: 'gcp_billing_daily', model: 'service', cost: 'net_cost' },
] as const

const CostPoint = Strict({
  date: Type.String({ maxLength: 10 }),
  provider: Type.String({ maxLength: 16 }),
  model: Type.String({ maxLength: 200 }),
  cost: Type.Number(),
})
const CostResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  from: Type.String({ maxLength: 10 }),
  to: Type.String({ maxLength: 10 }),
  points: Type.Array(CostPoint, { maxItems: 30000 }),
  totals: Strict({ total: Type.Number(), by_provider: Type.Record(Type.String({ maxLength: 16 }), Type.Number()) }),
  sources: Type.Array(Type.String({ maxLength: 16 }), { maxItems: 3 }),
})

const OrgRow = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  company_name: Type.String({ maxLength: 200 }),
  status: Type.String({ maxLength: 16 }),
  plan_name: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
  subscription_status: Type.Union([Type.String({ maxLength: 16 }), Type.Null()]),
  runs_today: Type.Integer({ minimum: 0 }),
  daily_limit: Type.Union([Type.Integer(), Type.Null()]),
  last_run_at: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
  created_at: Type.String({ maxLength: 40 }),
})

const AuditEntry = Strict({
  audit_id: Type.String({ maxLength: 64 }),
  org_slug: Type.String({ maxLength: 64 }),
  actor: Type.String({ maxLength: 80 }),
  action: Type.String({ maxLength: 64 }),
  resource_type: Type.String({ maxLength: 64 }),
  resource_id: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  request_id: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  created_at: Type.String({ maxLength: 40 }),
})

const SystemResponse = Strict({
  database: Strict({ dialect: Type.String({ maxLength: 16 }), ok: Type.Boolean() }),
  queue: Strict({ pending: Type.Integer({ minimum: 0 }), running: Type.Integer({ minimum: 0 }) }),
  /** Engine processes (serve, worker) that beat within the last minute, idle or busy. */
  processes: Type.Array(
    Strict({
      process_id: Type.String({ maxLength: 200 }),
      role: Type.String({ maxLength: 20 }),
      host: Type.String({ maxLength: 200 }),
      pid: Type.Integer({ minimum: 0 }),
      worker_slots: Type.Integer({ minimum: 0 }),
      runs_in_flight: Type.Integer({ minimum: 0 }),
      scheduler: Type.Boolean(),
      started_at: Type.String({ maxLength: 40 }),
      last_seen_at: Type.String({ maxLength: 40 }),
    }),
    { maxItems: 100 },
  ),
  /** Owners of the runs running now, seen through their leases (a process that stopped beating but still holds a lease shows here). */
  workers: Type.Array(Strict({ worker_id: Type.String({ maxLength: 200 }), lease_until: Type.String({ maxLength: 40 }), active_runs: Type.Integer({ minimum: 0 }) }), { maxItems: 100 }),
  /** In-process workers this server was configured with (WORKER_CONCURRENCY; 0 = API only). */
  this_process_workers: Type.Integer({ minimum: 0 }),
  rate_limits: Strict({ enabled: Type.Boolean(), backend: Type.String({ maxLength: 16 }) }),
  kms: Strict({ provider: Type.String({ maxLength: 16 }), key_version: Type.String({ maxLength: 64 }), ok: Type.Boolean() }),
  console_sessions: Type.Integer({ minimum: 0 }),
  checked_at: Type.String({ maxLength: 40 }),
})

const dateText = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : String(v).slice(0, 10))
const round6 = (n: number) => Math.round(n * 1e6) / 1e6
/** LIKE pattern for a substring search: the user's %, _ and \ match themselves. */
const likePattern = (q: string) => `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/** Daily cost per provider and model from the org's cost tables (dates bound as parameters). */
async function costSummary(reader: DatasetReader, org: string, from: string, to: string) {
  const present = new Set((await reader.listTables()).map((t) => t.name))
  const points: { date: string; provider: string; model: string; cost: number }[] = []
  const byProvider: Record<string, number> = {}
  const sources: string[] = []
  for (const s of COST_SOURCES) {
    if (!present.has(s.table)) continue
    sources.push(s.provider)
    // Identifiers come from the constant table above; the dates are bound parameters.
    const rows = await reader.select(
      `SELECT date AS day, ${s.model} AS model, SUM(${s.cost}) AS cost FROM ${s.table} WHERE date >= :date_from AND date <= :date_to GROUP BY date, ${s.model}`,
      { date_from: from, date_to: to },
      10_000,
    )
    for (const r of rows) {
      const cost = Number(r.cost ?? 0)
      points.push({ date: dateText(r.day), provider: s.provider, model: String(r.model ?? 'unknown').slice(0, 200), cost: round6(cost) })
      byProvider[s.provider] = (byProvider[s.provider] ?? 0) + cost
    }
  }
  points.sort((a, b) => (a.date === b.date ? (a.provider + a.model).localeCompare(b.provider + b.model) : a.date.localeCompare(b.date)))
  const total = Object.values(byProvider).reduce((a, b) => a + b, 0)
  for (const k of Object.keys(byProvider)) byProvider[k] = round6(byProvider[k]!)
  return { org_slug: org, from, to, points, totals: { total: round6(total), by_provider: byProvider }, sources }
}

export function consoleDataRoutes(app: App, ctx: AppContext): void {
  const db = ctx.db.kysely

  app.get(
    '/api/v1/data/:org_slug/cost-summary',
    {
      config: { auth: 'org' },
      schema: { params: OrgParams, querystring: Strict({ days: Type.Optional(Type.Integer({ minimum: 1, maximum: 90, default: 30 })) }), response: { 200: CostResponse, ...errorResponses } },
    },
    async (req) => {
      const org = req.params.org_slug
      const days = req.query.days ?? 30
      const now = ctx.clock.now()
      const to = utcDate(now)
      const from = utcDate(now - (days - 1) * DAY_MS)
      const auth = requireOrgAuth(req)
      const reader = openDatasetReader(ctx.db, ctx.config.dataDir, { orgSlug: auth.org_slug, datasetId: auth.dataset_id })
      return costSummary(reader, org, from, to).catch((err: unknown) => {
        if (err instanceof DatasetError && err.code === 'DATASET_UNAVAILABLE') throw new ApiError('DATASET_UNAVAILABLE')
        throw err
      })
    },
  )

  app.get(
    '/api/v1/admin/overview/organizations',
    {
      config: { auth: 'admin' },
      schema: {
        querystring: Strict({
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
          cursor: Type.Optional(Cursor),
          q: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
        }),
        response: { 200: Strict({ organizations: Type.Array(OrgRow, { maxItems: 100 }), next_cursor: Type.Union([Cursor, Type.Null()]) }), ...errorResponses },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 20
      const after = decodeCursor(req.query.cursor, ['string'])
      const today = utcDate(ctx.clock.now())
      let q = db
        .selectFrom('org_profiles as p')
        .leftJoin('org_subscriptions as s', 's.org_slug', 'p.org_slug')
        .leftJoin('org_usage_quotas as d', (j) => j.onRef('d.org_slug', '=', 'p.org_slug').on('d.period', '=', 'day').on('d.period_start', '=', today))
        .select([
          'p.org_slug', 'p.company_name', 'p.status', 'p.created_at', 's.plan_name', 's.status as subscription_status', 's.daily_limit', 'd.runs_started',
          (eb) => eb.selectFrom('org_pipeline_runs as r').select((e) => e.fn.max('r.created_at').as('m')).whereRef('r.org_slug', '=', 'p.org_slug').as('last_run_at'),
        ])
        .orderBy('p.org_slug')
        .limit(limit + 1)
      if (after) q = q.where('p.org_slug', '>', after[0] as string)
      if (req.query.q) {
        const pattern = likePattern(req.query.q)
        q = q.where(sql<boolean>`(lower(p.org_slug) LIKE ${pattern} ESCAPE '\\' OR lower(p.company_name) LIKE ${pattern} ESCAPE '\\')`)
      }
      const rows = await q.execute()
      const page = rows.slice(0, limit)
      return {
        organizations: page.map((r) => ({
          org_slug: r.org_slug,
          company_name: r.company_name,
          status: r.status,
          plan_name: r.plan_name,
          subscription_status: r.subscription_status,
          runs_today: Number(r.runs_started ?? 0),
          daily_limit: r.daily_limit === null ? null : Number(r.daily_limit),
          last_run_at: r.last_run_at == null ? null : iso(Number(r.last_run_at)),
          created_at: iso(Number(r.created_at))!,
        })),
        next_cursor: rows.length > limit ? encodeCursor([page[page.length - 1]!.org_slug]) : null,
      }
    },
  )

  app.get(
    '/api/v1/admin/audit-logs',
    {
      config: { auth: 'admin' },
      schema: {
        querystring: Strict({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })), cursor: Type.Optional(Cursor) }),
        response: { 200: Strict({ logs: Type.Array(AuditEntry, { maxItems: 100 }), next_cursor: Type.Union([Cursor, Type.Null()]) }), ...errorResponses },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 50
      const after = decodeCursor(req.query.cursor, ['number', 'string'])
      let q = db
        .selectFrom('org_audit_logs')
        .select(['audit_id', 'org_slug', 'actor', 'action', 'resource_type', 'resource_id', 'request_id', 'created_at'])
        .orderBy('created_at', 'desc')
        .orderBy('audit_id', 'desc')
        .limit(limit + 1)
      if (after) {
        const [t, id] = after as [number, string]
        q = q.where((eb) => eb.or([eb('created_at', '<', t), eb.and([eb('created_at', '=', t), eb('audit_id', '<', id)])]))
      }
      const rows = await q.execute()
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      return {
        logs: page.map((r) => ({ ...r, created_at: iso(Number(r.created_at))! })),
        next_cursor: rows.length > limit && last ? encodeCursor([Number(last.created_at), last.audit_id]) : null,
      }
    },
  )

  app.get(
    '/api/v1/admin/system',
    { config: { auth: 'admin' }, schema: { response: { 200: SystemResponse, ...errorResponses } } },
    async () => {
      const now = ctx.clock.now()
      const dbOk = (await withTimeout(sql`SELECT 1`.execute(db).then(() => true, () => false), 5000)) === true
      const queue = await db
        .selectFrom('org_pipeline_runs')
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('status', 'in', ['PENDING', 'RUNNING'])
        .groupBy('status')
        .limit(2)
        .execute()
      // Workers are seen through the leases they hold: owners of the runs running now (a finished run drops its lease).
      const workers = await db
        .selectFrom('org_pipeline_runs')
        .select(['lease_owner', (eb) => eb.fn.max('lease_expires_at').as('last'), (eb) => eb.fn.countAll<number>().as('active')])
        .where('status', '=', 'RUNNING')
        .where('lease_owner', 'is not', null)
        .groupBy('lease_owner')
        .limit(100)
        .execute()
      const processes = await recentProcesses(ctx.db, now)
      const aad = Buffer.from('tenantflow-console-kms-check')
      const probe = Buffer.alloc(32, 1)
      const kmsOk =
        (await withTimeout(
          ctx.kms
            .wrap(probe, aad)
            .then((w) => ctx.kms.unwrap(w.wrapped, aad, w.keyVersion))
            .then((b) => b.equals(probe), () => false),
          5000,
        )) === true
      const sessions = await db.selectFrom('console_sessions').select((eb) => eb.fn.countAll<number>().as('n')).where('expires_at', '>', now).executeTakeFirst()
      const count = (s: string) => Number(queue.find((q) => q.status === s)?.n ?? 0)
      return {
        database: { dialect: ctx.db.dialect, ok: dbOk },
        queue: { pending: count('PENDING'), running: count('RUNNING') },
        processes: processes.map((p) => ({ ...p, role: p.role.slice(0, 20), started_at: iso(p.started_at)!, last_seen_at: iso(p.last_seen_at)! })),
        workers: workers.map((w) => ({ worker_id: String(w.lease_owner).slice(0, 200), lease_until: iso(Number(w.last))!, active_runs: Number(w.active ?? 0) })),
        this_process_workers: ctx.config.workers.concurrency,
        rate_limits: { enabled: ctx.rateLimits.enabled, backend: ctx.config.redisUrl ? 'redis' : ctx.config.databaseUrl ? 'postgres' : 'memory' },
        kms: { provider: ctx.kms.name, key_version: ctx.kms.currentKeyVersion().slice(0, 64), ok: kmsOk },
        console_sessions: Number(sessions?.n ?? 0),
        checked_at: iso(now)!,
      }
    },
  )
}
