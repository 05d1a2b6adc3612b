// Dataset lifecycle: created at onboarding, dropped at offboarding (with its catalogue rows). Both are
// addressed by the dataset id of one org incarnation, never by the slug.
import { rmSync } from 'node:fs'
import type { Db } from '../db/database.js'
import { createBigQueryDataset, dropBigQueryDataset } from './bigquery/dataset.js'
import { bigQueryHomeOf } from './bigquery/home.js'
import { deleteEntries } from './catalogue.js'
import { DatasetError } from './errors.js'
import { assertDatasetId, assertOrgSlug, newDatasetId, quoteSchema, schemaOfDataset } from './identifiers.js'
import { countOrgFileTables, createOrgFile, datasetFilePath, forgetOrgFile } from './sqlite-files.js'
import type { DatasetBinding } from './types.js'

/**
 * Creates an org's empty dataset under `datasetId` (a fresh newDatasetId() when omitted) and returns
 * the id: the schema name on PostgreSQL, `<id>.db` under DATA_DIR/datasets on SQLite. Refuses
 * (DATASET_EXISTS) if it already exists, so an org never inherits data; onboarding rolls back with dropDataset().
 */
export async function createDataset(db: Db, dataDir: string, orgSlug: string, datasetId?: string): Promise<string> {
  const id = datasetId === undefined ? newDatasetId(assertOrgSlug(orgSlug)) : assertDatasetId(datasetId)
  const bigquery = bigQueryHomeOf(db)
  if (bigquery) {
    await createBigQueryDataset(bigquery, assertOrgSlug(orgSlug), id)
  } else if (db.dialect === 'postgres') {
    const schema = schemaOfDataset(id)
    try {
      await db.pgPool!.query(`CREATE SCHEMA ${quoteSchema(schema)}`)
    } catch (err) {
      if ((err as { code?: string }).code === '42P06') throw new DatasetError('DATASET_EXISTS', 'dataset already exists')
      throw new DatasetError('QUERY_FAILED', 'dataset could not be created')
    }
  } else {
    createOrgFile(datasetFilePath(dataDir, id))
  }
  // Only once the dataset is new: stale catalogue rows (a crashed offboarding) would describe tables that do not exist.
  await deleteEntries(db, id)
  return id
}

/**
 * Drops one dataset with its contents, and its catalogue rows. Idempotent. Returns whether a dataset
 * existed and how many tables it held (counted in the dataset itself: offboarding deletes the org's
 * catalogue rows before the dataset goes).
 */
export async function dropDataset(db: Db, dataDir: string, ds: DatasetBinding): Promise<{ dropped: boolean; tables: number }> {
  const id = assertDatasetId(ds.datasetId)
  let dropped: boolean
  let tables = 0
  const bigquery = bigQueryHomeOf(db)
  if (bigquery) {
    ;({ dropped, tables } = await dropBigQueryDataset(bigquery, id))
  } else if (db.dialect === 'postgres') {
    const schema = schemaOfDataset(id)
    const r = await db.pgPool!.query('SELECT 1 FROM pg_namespace WHERE nspname = $1 LIMIT 1', [schema])
    dropped = r.rowCount === 1
    const n = await db.pgPool!.query('SELECT COUNT(*)::int AS n FROM pg_tables WHERE schemaname = $1', [schema])
    tables = Number(n.rows[0]?.n ?? 0)
    await db.pgPool!.query(`DROP SCHEMA IF EXISTS ${quoteSchema(schema)} CASCADE`)
  } else {
    const path = datasetFilePath(dataDir, id)
    tables = countOrgFileTables(path)
    forgetOrgFile(path)
    dropped = false
    for (const p of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        rmSync(p)
        if (p === path) dropped = true
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') throw new DatasetError('QUERY_FAILED', 'dataset could not be removed')
      }
    }
  }
  await deleteEntries(db, id)
  return { dropped, tables }
}
