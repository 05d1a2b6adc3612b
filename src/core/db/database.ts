// Opens the system database: embedded SQLite (default) or PostgreSQL (DATABASE_URL).
// Both go through Kysely, so every value is a bound parameter by construction.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import pg from 'pg'
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
} from 'kysely'
import type { Database } from './schema.js'

export type DialectName = 'sqlite' | 'postgres'

export interface Db {
  kysely: Kysely<Database>
  dialect: DialectName
  /** PostgreSQL pool (null on SQLite): used for LISTEN/NOTIFY and shared rate-limit counters. */
  pgPool: pg.Pool | null
  /** Connection string used to open dedicated PostgreSQL clients (LISTEN). */
  pgUrl: string | null
  sqlitePath: string | null
  close(): Promise<void>
}

/** SQLite transactions take the write lock up front so concurrent processes serialize instead of failing on upgrade. */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}

function sqliteDialect(path: string): Dialect {
  const config = {
    database: () => {
      const db = new SqliteDatabase(path, { timeout: 60_000 })
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      db.pragma('foreign_keys = ON')
      db.pragma('busy_timeout = 60000')
      return db
    },
  }
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new ImmediateSqliteDriver(config),
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  }
}

const INT8_OID = 20
const NUMERIC_OID = 1700
const DATE_OID = 1082

/** BIGINT columns hold epoch milliseconds and counters, all well inside 2^53. DATE stays 'YYYY-MM-DD'. */
export const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => Number(v)
    if (oid === DATE_OID) return (v: string) => v
    return pg.types.getTypeParser(oid, format as 'text')
  },
} as pg.CustomTypesConfig

export interface OpenOptions {
  databaseUrl: string | null
  dataDir: string
  poolSize?: number
}

export function openDatabase(opts: OpenOptions): Db {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolSize ?? 20,
      connectionTimeoutMillis: 60_000,
      statement_timeout: 300_000,
      query_timeout: 300_000,
      idleTimeoutMillis: 30_000,
      types: pgTypes,
    })
    pool.on('error', () => {
      /* idle client errors are surfaced by the next query; keep the process alive */
    })
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
    return {
      kysely,
      dialect: 'postgres',
      pgPool: pool,
      pgUrl: opts.databaseUrl,
      sqlitePath: null,
      close: () => kysely.destroy(),
    }
  }
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
  const path = join(opts.dataDir, 'tenantflow.db')
  const kysely = new Kysely<Database>({ dialect: sqliteDialect(path) })
  return { kysely, dialect: 'sqlite', pgPool: null, pgUrl: null, sqlitePath: path, close: () => kysely.destroy() }
}
