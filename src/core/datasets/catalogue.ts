// The datasets' catalogue: one row per (dataset id, table) in the system table org_dataset_tables. It
// is the only list of tables the data API and template SQL may name. Keyed by the dataset id (the org
// incarnation), never the slug: an old org's writer can never add or change an entry of a new org. table_schema holds
// {"spec": TableSpec, "row_count": n} with the row count as of the table's last load.
import type { Db } from '../db/database.js'
import { validateTableSpec } from './spec.js'
import type { DatasetBinding, TableInfo, TableSpec } from './types.js'

export interface CatalogueEntry {
  spec: TableSpec
  rowCount: number
  createdAt: number
  updatedAt: number
}

interface Stored {
  spec: TableSpec
  row_count: number
}

function parse(row: { table_schema: string; created_at: number; updated_at: number }): CatalogueEntry {
  const stored = JSON.parse(row.table_schema) as Stored
  return {
    spec: validateTableSpec(stored.spec),
    rowCount: Number(stored.row_count) || 0,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  }
}

export async function getEntry(db: Db, datasetId: string, table: string): Promise<CatalogueEntry | null> {
  const row = await db.kysely
    .selectFrom('org_dataset_tables')
    .select(['table_schema', 'created_at', 'updated_at'])
    .where('dataset_id', '=', datasetId)
    .where('table_name', '=', table)
    .limit(1)
    .executeTakeFirst()
  return row ? parse(row) : null
}

export async function listEntries(db: Db, datasetId: string, limit: number): Promise<CatalogueEntry[]> {
  const rows = await db.kysely
    .selectFrom('org_dataset_tables')
    .select(['table_schema', 'created_at', 'updated_at'])
    .where('dataset_id', '=', datasetId)
    .orderBy('table_name')
    .limit(limit)
    .execute()
  return rows.map(parse)
}

export async function putEntry(db: Db, ds: DatasetBinding, spec: TableSpec, rowCount: number, now: number): Promise<void> {
  const table_schema = JSON.stringify({ spec, row_count: rowCount } satisfies Stored)
  await db.kysely
    .insertInto('org_dataset_tables')
    .values({ dataset_id: ds.datasetId, org_slug: ds.orgSlug, table_name: spec.name, table_schema, created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(['dataset_id', 'table_name']).doUpdateSet({ table_schema, updated_at: now }))
    .execute()
}

/** Deletes the entries of one dataset. */
export async function deleteEntries(db: Db, datasetId: string): Promise<number> {
  const r = await db.kysely.deleteFrom('org_dataset_tables').where('dataset_id', '=', datasetId).executeTakeFirst()
  return Number(r.numDeletedRows ?? 0)
}

/** A catalogue entry as the data API shows it (every dataset home answers listTables with this). */
export function tableInfo(e: CatalogueEntry): TableInfo {
  return {
    name: e.spec.name,
    columns: e.spec.columns,
    naturalKey: e.spec.naturalKey,
    ...(e.spec.dateColumn ? { dateColumn: e.spec.dateColumn } : {}),
    rowCount: e.rowCount,
    updatedAt: e.updatedAt,
  }
}
