// Dataset lifecycle: created at onboarding, dropped at offboarding (with its catalogue rows).
import { rmSync } from 'node:fs'
import type { Db } from '../db/database.js'
import { deleteEntries } from './catalogue.js'
import { DatasetError } from './errors.js'
import { assertOrgSlug, pgSchemaName, quoteSchema } from './identifiers.js'
import { createOrgFile, forgetOrgFile, orgFilePath } from './sqlite-files.js'

/**
 * Creates the org's empty dataset and returns its dataset_id (the schema name on PostgreSQL, the
 * file name on SQLite). Refuses (DATASET_EXISTS) if it already exists, so an org never inherits
 * data left behind under its slug; onboarding rolls back with dropDataset().
 */
export async function createDataset(db: Db, dataDir: string, orgSlug: string): Promise<string> {
  const slug = assertOrgSlug(orgSlug)
  let datasetId: string
  if (db.dialect === 'postgres') {
    const schema = pgSchemaName(slug)
    try {
      await db.pgPool!.query(`CREATE SCHEMA ${quoteSchema(schema)}`)
    } catch (err) {
      if ((err as { code?: string }).code === '42P06') throw new DatasetError('DATASET_EXISTS', 'dataset already exists')
      throw new DatasetError('QUERY_FAILED', 'dataset could not be created')
    }
    datasetId = schema
  } else {
    createOrgFile(orgFilePath(dataDir, slug))
    datasetId = `${slug}.db`
  }
  // Only once the dataset is new: stale catalogue rows (a crashed offboarding) would describe tables that do not exist.
  await deleteEntries(db, slug)
  return datasetId
}

/** Drops the org's dataset and its catalogue rows. Idempotent. Returns whether a dataset existed. */
export async function dropDataset(db: Db, dataDir: string, orgSlug: string): Promise<{ dropped: boolean; tables: number }> {
  const slug = assertOrgSlug(orgSlug)
  let dropped: boolean
  if (db.dialect === 'postgres') {
    const schema = pgSchemaName(slug)
    const r = await db.pgPool!.query('SELECT 1 FROM pg_namespace WHERE nspname = $1 LIMIT 1', [schema])
    dropped = r.rowCount === 1
    await db.pgPool!.query(`DROP SCHEMA IF EXISTS ${quoteSchema(schema)} CASCADE`)
  } else {
    const path = orgFilePath(dataDir, slug)
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
  const tables = await deleteEntries(db, slug)
  return { dropped, tables }
}
