// The two physical homes of a dataset behind one small interface: an org's own SQLite file, or the
// org's PostgreSQL schema. Statements arrive as text built only from quoteIdent()/qualified() plus
// placeholders; every value travels as a bound parameter.
import type pg from 'pg'
import { CompiledQuery } from 'kysely'
import type { Db, DialectName } from '../db/database.js'
import { DatasetError } from './errors.js'
import { qualified, quoteIdent, quoteSchema, schemaOfDataset } from './identifiers.js'
import { datasetFilePath, withOrgFile } from './sqlite-files.js'
import { runReadOnlyInWorker } from './sql-worker.js'
import type { WriteFence } from './types.js'

export type Row = Record<string, unknown>
export interface Stmt {
  text: string
  params: unknown[]
}

export interface DatasetEngine {
  readonly dialect: DialectName
  /** Where the dataset lives: the schema name, or the file path (never shown to clients). */
  readonly location: string
  tableRef(table: string): string
  exists(): Promise<boolean>
  all(stmt: Stmt): Promise<Row[]>
  /** Runs the statements in one transaction (all or nothing), only while `fence` (if any) is open. */
  transaction(stmts: Stmt[], fence?: WriteFence): Promise<void>
  /**
   * Runs a reader statement on a read-only connection/transaction; at most maxRows rows. Past
   * `timeoutMs` it is stopped with QUERY_TIMEOUT (SQLite: its worker thread is terminated; PostgreSQL:
   * statement_timeout); `signal` stops it early on SQLite.
   */
  readOnly(stmt: Stmt, opts: { timeoutMs: number; maxRows: number; signal?: AbortSignal }): Promise<Row[]>
}

/** Builds placeholders for one statement in the dialect's style. */
export class Params {
  readonly values: unknown[] = []
  constructor(private readonly dialect: DialectName) {}
  add(value: unknown, pgCast = ''): string {
    this.values.push(value)
    return this.dialect === 'postgres' ? `$${this.values.length}${pgCast}` : '?'
  }
}

function driverCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'UNKNOWN'
}

/** Driver errors carry SQL and values in their text; only the code crosses this boundary. */
function wrap(err: unknown): never {
  if (err instanceof DatasetError) throw err
  // 57014 query_canceled: the read-only transaction's statement_timeout fired.
  if (driverCode(err) === '57014') throw new DatasetError('QUERY_TIMEOUT', 'query exceeded its timeout')
  throw new DatasetError('QUERY_FAILED', `dataset query failed (${driverCode(err)})`)
}

export function openEngine(db: Db, dataDir: string, datasetId: string): DatasetEngine {
  return db.dialect === 'postgres' ? pgEngine(db, datasetId) : sqliteEngine(db, dataDir, datasetId)
}

/** Template SQL whose step stopped (cancel, step or pipeline timeout, offboarding) before it finished. */
export function stopped(): DatasetError {
  return new DatasetError('QUERY_TIMEOUT', 'query stopped: its step was stopped')
}

export function fenced(): DatasetError {
  return new DatasetError('WRITE_FENCED', 'write refused: the step was stopped or its run no longer holds its lease')
}

function sqliteEngine(db: Db, dataDir: string, datasetId: string): DatasetEngine {
  const path = datasetFilePath(dataDir, datasetId)
  return {
    dialect: 'sqlite',
    location: path,
    tableRef: (table) => quoteIdent(table),
    async exists() {
      try {
        withOrgFile(path, () => undefined)
        return true
      } catch (err) {
        if (err instanceof DatasetError && err.code === 'DATASET_NOT_FOUND') return false
        throw err
      }
    },
    async all(stmt) {
      try {
        return withOrgFile(path, (h) => h.prepare(stmt.text).all(...stmt.params) as Row[])
      } catch (err) {
        wrap(err)
      }
    },
    async transaction(stmts, fence) {
      if (fence?.signal.aborted) throw fenced()
      if (fence?.guard) {
        const r = await db.kysely.executeQuery(CompiledQuery.raw(fence.guard.text, fence.guard.params)).catch(wrap)
        if (r.rows.length === 0) throw fenced()
      }
      // Checked again with nothing asynchronous before the write: an abort delivered while the guard
      // ran (offboarding, cancel, timeout in this process) is seen here, and the write below is synchronous.
      if (fence?.signal.aborted) throw fenced()
      try {
        withOrgFile(path, (h) => {
          // Prepared one by one: a statement may name a table the previous one creates.
          h.transaction(() => {
            for (const s of stmts) h.prepare(s.text).run(...s.params)
          }).immediate()
        })
      } catch (err) {
        wrap(err)
      }
    },
    async readOnly(stmt, { timeoutMs, maxRows, signal }) {
      // Off the event loop, so a slow statement neither outlives its deadline nor freezes the process.
      return runReadOnlyInWorker({ path, text: stmt.text, params: stmt.params, maxRows, timeoutMs, signal })
    },
  }
}

function pgEngine(db: Db, datasetId: string): DatasetEngine {
  const pool = db.pgPool
  if (!pool) throw new DatasetError('QUERY_FAILED', 'postgres pool missing')
  const schema = schemaOfDataset(datasetId)
  const withClient = async <T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect().catch(wrap)
    try {
      return await fn(client)
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      wrap(err)
    } finally {
      client.release()
    }
  }
  return {
    dialect: 'postgres',
    location: schema,
    tableRef: (table) => qualified(schema, table),
    async exists() {
      try {
        const r = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1 LIMIT 1', [schema])
        return r.rowCount === 1
      } catch (err) {
        wrap(err)
      }
    },
    async all(stmt) {
      try {
        return (await pool.query(stmt.text, stmt.params)).rows as Row[]
      } catch (err) {
        wrap(err)
      }
    },
    async transaction(stmts, fence) {
      if (fence?.signal.aborted) throw fenced()
      await withClient(async (c) => {
        await c.query('BEGIN')
        // The guard runs in this transaction: a row it locks (FOR KEY SHARE) cannot be deleted
        // (offboarding) before this write commits, and once it is gone no write passes.
        if (fence?.guard && (await c.query(fence.guard.text, fence.guard.params)).rowCount === 0) throw fenced()
        if (fence?.signal.aborted) throw fenced()
        for (const s of stmts) await c.query(s.text, s.params)
        await c.query('COMMIT')
      })
    },
    async readOnly(stmt, { timeoutMs, maxRows, signal }) {
      const ms = Math.max(1, Math.min(Math.floor(timeoutMs), 300_000))
      if (signal?.aborted) throw stopped()
      const client = await pool.connect().catch(wrap)
      // A step that stops cancels its statement (pg_cancel_backend from another connection). The
      // cancel may land after the statement ended, so that connection is then closed, never reused.
      let cancelled = false
      const onAbort = () => {
        cancelled = true
        void pool.query('SELECT pg_cancel_backend($1)', [(client as unknown as { processID: number }).processID]).catch(() => undefined)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      try {
        await client.query('BEGIN')
        await client.query('SET TRANSACTION READ ONLY')
        await client.query(`SET LOCAL search_path TO ${quoteSchema(schema)}`)
        await client.query(`SET LOCAL statement_timeout = ${ms}`)
        const r = await client.query(stmt.text, stmt.params)
        await client.query('ROLLBACK')
        return (r.rows as Row[]).slice(0, maxRows)
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined)
        if (driverCode(err) === '57014') throw cancelled ? stopped() : new DatasetError('QUERY_TIMEOUT', `query exceeded its timeout of ${ms} ms`)
        wrap(err)
      } finally {
        signal?.removeEventListener('abort', onAbort)
        client.release(cancelled ? new Error('cancelled') : undefined)
      }
    },
  }
}
