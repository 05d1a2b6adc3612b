// Per-org SQLite dataset files: `{dataDir}/datasets/{dataset_id}.db` (one file per org incarnation). Write handles are cached in a
// bounded LRU (template SQL reads run in worker threads, see sql-worker.ts); callers use a handle synchronously inside withOrgFile(), so an eviction can never
// close a handle between two statements of the same operation.
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import { LRUCache } from 'lru-cache'
import { DatasetError } from './errors.js'
import { fileOfDataset } from './identifiers.js'

const MAX_OPEN_FILES = 64
const BUSY_TIMEOUT_MS = 60_000

const handles = new LRUCache<string, SqliteDatabase.Database>({
  max: MAX_OPEN_FILES,
  dispose: (db) => {
    if (db.open) db.close()
  },
})

export function datasetsDir(dataDir: string): string {
  return resolve(join(dataDir, 'datasets'))
}

export function datasetFilePath(dataDir: string, datasetId: string): string {
  return join(datasetsDir(dataDir), fileOfDataset(datasetId))
}

function configure(db: SqliteDatabase.Database): SqliteDatabase.Database {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
  db.pragma('trusted_schema = OFF')
  return db
}

function openExisting(path: string, readonly: boolean): SqliteDatabase.Database {
  try {
    return configure(new SqliteDatabase(path, { fileMustExist: true, readonly, timeout: BUSY_TIMEOUT_MS }))
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_CANTOPEN') {
      throw new DatasetError('DATASET_NOT_FOUND', 'dataset does not exist')
    }
    throw new DatasetError('QUERY_FAILED', 'dataset could not be opened')
  }
}

/** Runs fn with this file's cached read-write handle. fn must be synchronous. */
export function withOrgFile<T>(path: string, fn: (db: SqliteDatabase.Database) => T): T {
  let db = handles.get(path)
  if (!db || !db.open) {
    db = openExisting(path, false)
    handles.set(path, db)
  }
  return fn(db)
}

/** Creates the empty file in WAL mode. 'wx' refuses an existing file, so no leftover data is inherited. */
export function createOrgFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  try {
    closeSync(openSync(path, 'wx', 0o600))
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') throw new DatasetError('DATASET_EXISTS', 'dataset already exists')
    throw new DatasetError('QUERY_FAILED', 'dataset could not be created')
  }
  const db = new SqliteDatabase(path)
  try {
    db.pragma('journal_mode = WAL')
  } finally {
    db.close()
  }
}

/** Closes this process's cached handle for a file (before it is deleted). */
export function forgetOrgFile(path: string): void {
  handles.delete(path)
}

/** Tables in a dataset file (0 when it does not exist). */
export function countOrgFileTables(path: string): number {
  try {
    return withOrgFile(path, (db) => (db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1").get() as { n: number }).n)
  } catch (err) {
    if (err instanceof DatasetError && err.code === 'DATASET_NOT_FOUND') return 0
    throw err
  }
}
