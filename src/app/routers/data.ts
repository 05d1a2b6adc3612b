// Data API (org key): the org's own dataset — its tables with row counts, and rows with a date
// filter and keyset pagination. Table names are checked against the dataset's own catalogue.
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { errorResponses, iso, OrgSlug, Strict } from '../models/common.js'
import type { FastifyRequest } from 'fastify'
import { DatasetError, openDatasetReader, type DatasetBinding } from '../../core/datasets/index.js'
import { requireOrgAuth } from '../dependencies/auth.js'

const TableName = Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', maxLength: 63 })
const DateString = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', maxLength: 10 })

const Column = Strict({ name: Type.String({ maxLength: 63 }), type: Type.String({ maxLength: 16 }), nullable: Type.Optional(Type.Boolean()) })
const TableView = Strict({
  name: Type.String({ maxLength: 63 }),
  columns: Type.Array(Column, { maxItems: 100 }),
  natural_key: Type.Array(Type.String({ maxLength: 63 }), { maxItems: 100 }),
  date_column: Type.Union([Type.String({ maxLength: 63 }), Type.Null()]),
  row_count: Type.Integer({ minimum: 0 }),
  updated_at: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
})

const RowsQuery = Strict({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,2048}$', maxLength: 2048 })),
  date_from: Type.Optional(DateString),
  date_to: Type.Optional(DateString),
})

/** Dataset failures map onto the catalogue; anything unexpected stays a 500. */
function mapDatasetError(err: unknown): never {
  if (err instanceof DatasetError) {
    if (err.code === 'TABLE_NOT_FOUND' || err.code === 'DATASET_NOT_FOUND' || err.code === 'INVALID_IDENTIFIER') throw new ApiError('NOT_FOUND')
    if (err.code === 'INVALID_CURSOR') throw new ApiError('INVALID_CURSOR')
    if (err.code === 'DATASET_UNAVAILABLE') throw new ApiError('DATASET_UNAVAILABLE')
    if (err.code === 'INVALID_FILTER') throw new ApiError('VALIDATION_FAILED', { fields: ['querystring/date_from'] })
  }
  throw err
}

/** The dataset of the incarnation the caller's key belongs to (the guard already matched the path's org). */
function datasetOf(req: FastifyRequest): DatasetBinding {
  const auth = requireOrgAuth(req)
  return { orgSlug: auth.org_slug, datasetId: auth.dataset_id }
}

export function dataRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/data/:org_slug/tables',
    {
      config: { auth: 'org' },
      schema: {
        params: Strict({ org_slug: OrgSlug }),
        response: { 200: Strict({ org_slug: Type.String({ maxLength: 64 }), tables: Type.Array(TableView, { maxItems: 100 }) }), ...errorResponses },
      },
    },
    async (req) => {
      const reader = openDatasetReader(ctx.db, ctx.config.dataDir, datasetOf(req))
      const tables = await reader.listTables().catch(mapDatasetError)
      return {
        org_slug: req.params.org_slug,
        tables: tables.map((t) => ({
          name: t.name,
          columns: t.columns.map((c) => ({ name: c.name, type: c.type, ...(c.nullable !== undefined ? { nullable: c.nullable } : {}) })),
          natural_key: t.naturalKey,
          date_column: t.dateColumn ?? null,
          row_count: t.rowCount,
          updated_at: iso(t.updatedAt),
        })),
      }
    },
  )

  app.get(
    '/api/v1/data/:org_slug/tables/:table/rows',
    {
      config: { auth: 'org' },
      schema: {
        params: Strict({ org_slug: OrgSlug, table: TableName }),
        querystring: RowsQuery,
        response: {
          200: Strict({
            org_slug: Type.String({ maxLength: 64 }),
            table: Type.String({ maxLength: 63 }),
            rows: Type.Array(Type.Record(Type.String({ maxLength: 63 }), Type.Unknown()), { maxItems: 1000 }),
            next_cursor: Type.Union([Type.String({ maxLength: 2048 }), Type.Null()]),
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const reader = openDatasetReader(ctx.db, ctx.config.dataDir, datasetOf(req))
      const page = await reader
        .readPage(req.params.table, {
          limit: req.query.limit ?? 100,
          cursor: req.query.cursor,
          dateFrom: req.query.date_from,
          dateTo: req.query.date_to,
        })
        .catch(mapDatasetError)
      return { org_slug: req.params.org_slug, table: req.params.table, rows: page.rows, next_cursor: page.nextCursor }
    },
  )
}
