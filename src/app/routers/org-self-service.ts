// Org self-service (the org's key, or the root key for any org): its own audit log — including
// every decrypt of its credentials by a run — and its model_prices, read and replaced whole.
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { actorOf } from '../dependencies/auth.js'
import { Cursor, decodeCursor, encodeCursor, errorResponses, iso, limitQuery, OrgParams, Strict } from '../models/common.js'
import { listAuditLogs, recordAudit } from '../../core/orgs/audit.js'
import { MAX_MODEL_PRICES, readModelPrices, replaceModelPrices, type ModelPrice } from '../../core/processors/shared/pricing.js'
import { isCalendarDate } from '../../core/processors/shared/dates.js'
import { openDatasetWriter, type DatasetBinding } from '../../core/datasets/index.js'

const AuditQuery = Strict({
  limit: limitQuery(100),
  cursor: Type.Optional(Cursor),
  action: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}(\\.[a-z][a-z0-9_]{0,31}){0,3}$', maxLength: 64 })),
})

export const AuditEntryView = Strict({
  audit_id: Type.String({ maxLength: 64 }),
  actor: Type.String({ maxLength: 80 }),
  action: Type.String({ maxLength: 64 }),
  resource_type: Type.String({ maxLength: 64 }),
  resource_id: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  details: Type.Record(Type.String({ maxLength: 64 }), Type.Unknown()),
  request_id: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  created_at: Type.String({ maxLength: 40 }),
})

const AuditPage = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  logs: Type.Array(AuditEntryView, { maxItems: 100 }),
  next_cursor: Type.Union([Cursor, Type.Null()]),
})

const Price = Type.Number({ minimum: 0, maximum: 1_000_000 })
const NullablePrice = Type.Optional(Type.Union([Price, Type.Null()]))
const ModelPriceBody = Strict({
  provider: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$', maxLength: 32 }),
  model: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,100}$', maxLength: 100 }),
  input_per_1m: Price,
  output_per_1m: Price,
  cached_input_per_1m: NullablePrice,
  cache_write_5m_per_1m: NullablePrice,
  cache_write_1h_per_1m: NullablePrice,
  effective_date: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', maxLength: 10 }),
})
const ModelPriceView = Strict({
  provider: Type.String({ maxLength: 32 }),
  model: Type.String({ maxLength: 100 }),
  input_per_1m: Type.Number(),
  output_per_1m: Type.Number(),
  cached_input_per_1m: Type.Union([Type.Number(), Type.Null()]),
  cache_write_5m_per_1m: Type.Union([Type.Number(), Type.Null()]),
  cache_write_1h_per_1m: Type.Union([Type.Number(), Type.Null()]),
  effective_date: Type.String({ maxLength: 10 }),
})
const PricesBody = Strict({ prices: Type.Array(ModelPriceBody, { maxItems: MAX_MODEL_PRICES }) })
const PricesResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  prices: Type.Array(ModelPriceView, { maxItems: MAX_MODEL_PRICES }),
  total: Type.Integer({ minimum: 0, maximum: MAX_MODEL_PRICES }),
})

const noStore = { 'Cache-Control': 'no-store' }

/** 404 unless the org exists; its current dataset (the root key may name any org). */
async function requireOrg(ctx: AppContext, orgSlug: string): Promise<DatasetBinding> {
  const row = await ctx.db.kysely.selectFrom('org_profiles').select(['org_slug', 'dataset_id']).where('org_slug', '=', orgSlug).limit(1).executeTakeFirst()
  if (!row) throw new ApiError('ORG_NOT_FOUND')
  return { orgSlug: row.org_slug, datasetId: row.dataset_id }
}

/** Calendar dates and one row per (provider, model, effective_date); failing rows are named. */
function checkPrices(prices: ModelPrice[]): void {
  const seen = new Set<string>()
  const fields: string[] = []
  prices.forEach((p, i) => {
    if (!isCalendarDate(p.effective_date)) fields.push(`body/prices/${i}/effective_date`)
    const key = `${p.provider}\n${p.model}\n${p.effective_date}`
    if (seen.has(key)) fields.push(`body/prices/${i}`)
    seen.add(key)
  })
  if (fields.length) throw new ApiError('VALIDATION_FAILED', { fields })
}

export function orgSelfServiceRoutes(app: App, ctx: AppContext): void {
  const writer = (dataset: DatasetBinding) => openDatasetWriter(ctx.db, ctx.config.dataDir, dataset, { now: () => ctx.clock.now() })

  app.get(
    '/api/v1/organizations/:org_slug/audit-logs',
    { config: { auth: 'org_or_admin' }, schema: { params: OrgParams, querystring: AuditQuery, response: { 200: AuditPage, ...errorResponses } } },
    async (req, reply) => {
      const org = req.params.org_slug
      await requireOrg(ctx, org)
      const after = decodeCursor(req.query.cursor, ['number', 'string'])
      const page = await listAuditLogs(ctx.db.kysely, org, {
        limit: req.query.limit ?? 20,
        action: req.query.action,
        after: after ? { created_at: after[0] as number, audit_id: after[1] as string } : null,
      })
      reply.headers(noStore)
      return {
        org_slug: org,
        logs: page.entries.map((r) => ({ ...r, created_at: iso(r.created_at)! })),
        next_cursor: page.next ? encodeCursor([page.next.created_at, page.next.audit_id]) : null,
      }
    },
  )

  app.get(
    '/api/v1/organizations/:org_slug/model-prices',
    { config: { auth: 'org_or_admin' }, schema: { params: OrgParams, response: { 200: PricesResponse, ...errorResponses } } },
    async (req) => {
      const org = req.params.org_slug
      const prices = await readModelPrices(writer(await requireOrg(ctx, org)))
      return { org_slug: org, prices, total: prices.length }
    },
  )

  app.put(
    '/api/v1/organizations/:org_slug/model-prices',
    {
      config: { auth: 'org_or_admin' },
      schema: { params: OrgParams, body: PricesBody, response: { 200: PricesResponse, ...errorResponses } },
      // A root key naming a missing org gets 404 whatever the body (as on every org route).
      preValidation: async (req) => {
        await requireOrg(ctx, (req.params as { org_slug: string }).org_slug)
      },
    },
    async (req) => {
      const org = req.params.org_slug
      const input = req.body.prices.map((p) => ({
        provider: p.provider,
        model: p.model,
        input_per_1m: p.input_per_1m,
        output_per_1m: p.output_per_1m,
        cached_input_per_1m: p.cached_input_per_1m ?? null,
        cache_write_5m_per_1m: p.cache_write_5m_per_1m ?? null,
        cache_write_1h_per_1m: p.cache_write_1h_per_1m ?? null,
        effective_date: p.effective_date,
      }))
      checkPrices(input)
      const dataset = writer(await requireOrg(ctx, org))
      await replaceModelPrices(dataset, input)
      await recordAudit(
        ctx.db.kysely,
        {
          org_slug: org,
          actor: actorOf(req),
          action: 'model_prices.replaced',
          resource_type: 'model_prices',
          details: { rows: input.length, providers: [...new Set(input.map((p) => p.provider))].slice(0, 20) },
          request_id: String(req.id),
        },
        ctx.clock.now(),
      )
      const prices = await readModelPrices(dataset)
      return { org_slug: org, prices, total: prices.length }
    },
  )
}
