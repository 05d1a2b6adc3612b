// Opens the system database: embedded SQLite (default) or PostgreSQL (DATABASE_URL).
// Both go through Kysely, so every value is a bound parameter by construction.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import { LRUCache } from 'lru-cache'
import pg from 'pg'
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { checkpointInBackground } from './checkpointer.js'
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

/**
 * SQLite re-prepares a statement on every step when LIMIT or OFFSET is a bound parameter (its plan
 * depends on the value), which made every bounded query 2-4x slower than the same query with a literal.
 * These find the `?` placeholders that are a LIMIT or OFFSET operand, outside quoted text, and swap a
 * bound value that is a safe non-negative integer for its literal; anything else stays bound.
 */
export function limitParameterSlots(text: string): number[] {
  const slots: number[] = []
  let index = 0
  let quote: string | null = null
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote) {
      if (c === quote) quote = null
      continue
    }
    if (c === "'" || c === '"' || c === '`') {
      quote = c
      continue
    }
    if (c !== '?') continue
    if (/\b(limit|offset)\s+$/i.test(text.slice(Math.max(0, i - 12), i))) slots.push(index)
    index++
  }
  return slots
}

export function inlineLimits(text: string, parameters: unknown[], slots: number[]): { sql: string; parameters: unknown[] } {
  if (slots.length === 0) return { sql: text, parameters }
  const inline = new Map<number, number>()
  for (const slot of slots) {
    const v = parameters[slot]
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) inline.set(slot, v)
  }
  if (inline.size === 0) return { sql: text, parameters }
  let out = ''
  let index = 0
  let quote: string | null = null
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote) {
      if (c === quote) quote = null
    } else if (c === "'" || c === '"' || c === '`') {
      quote = c
    } else if (c === '?') {
      const literal = inline.get(index++)
      if (literal !== undefined) {
        out += String(literal)
        continue
      }
    }
    out += c
  }
  return { sql: out, parameters: parameters.filter((_, i) => !inline.has(i)) }
}

/**
 * Kysely's SQLite driver with three changes: transactions take the write lock up front (BEGIN
 * IMMEDIATE), so concurrent processes serialize instead of failing on lock upgrade; prepared
 * statements are cached by SQL text, since Kysely emits the same text for the same query shape; and
 * bound LIMIT/OFFSET values are compiled in as integer literals (see inlineLimits).
 */
class SqliteConnection implements DatabaseConnection {
  private readonly statements = new LRUCache<string, SqliteDatabase.Statement>({ max: 2000 })
  private readonly limitSlots = new LRUCache<string, number[]>({ max: 2000 })
  private readonly inlined = new LRUCache<string, Map<string, { text: string; dropped: Set<number> | null }>>({ max: 2000 })
  constructor(private readonly db: SqliteDatabase.Database) {}

  private prepare(text: string): SqliteDatabase.Statement {
    let stmt = this.statements.get(text)
    if (!stmt) {
      stmt = this.db.prepare(text)
      this.statements.set(text, stmt)
    }
    return stmt
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    return this.executeNow<R>(compiled)
  }

  executeNow<R>(compiled: CompiledQuery): QueryResult<R> {
    let slots = this.limitSlots.get(compiled.sql)
    if (!slots) {
      slots = limitParameterSlots(compiled.sql)
      this.limitSlots.set(compiled.sql, slots)
    }
    let text = compiled.sql
    let params = compiled.parameters as unknown[]
    if (slots.length > 0) {
      // The rewritten text depends only on the SQL and its LIMIT/OFFSET values: rewrite each pair once.
      // Keyed by the SQL first (the same string each time, so its hash is cached), then the short values key.
      const values = slots.map((i) => `${typeof params[i]}:${String(params[i])}`).join(',')
      let byValues = this.inlined.get(compiled.sql)
      if (!byValues) this.inlined.set(compiled.sql, (byValues = new Map()))
      let rewritten = byValues.get(values)
      if (!rewritten) {
        const r = inlineLimits(compiled.sql, params, slots)
        rewritten = { text: r.sql, dropped: r.parameters.length === params.length ? null : new Set(slots.filter((i) => typeof params[i] === 'number' && Number.isSafeInteger(params[i]) && (params[i] as number) >= 0)) }
        // Bounded: a statement paged with many distinct LIMIT/OFFSET values keeps its latest 64.
        if (byValues.size >= 64) byValues.delete(byValues.keys().next().value as string)
        byValues.set(values, rewritten)
      }
      text = rewritten.text
      const dropped = rewritten.dropped
      if (dropped) params = params.filter((_, i) => !dropped.has(i))
    }
    const stmt = this.prepare(text)
    if (stmt.reader) return { rows: stmt.all(params) as R[] }
    const { changes, lastInsertRowid } = stmt.run(params)
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] }
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not used')
  }
}

class SqliteDriver implements Driver {
  private db: SqliteDatabase.Database | null = null
  private connection: SqliteConnection | null = null
  private queue: Promise<void> = Promise.resolve()
  private release: (() => void) | null = null
  /** Callers holding or waiting for the connection. */
  private inLine = 0

  private stopCheckpoints: (() => Promise<void>) | null = null

  constructor(
    private readonly open: () => SqliteDatabase.Database,
    private readonly path: string,
  ) {}

  async init(): Promise<void> {
    this.db = this.open()
    this.connection = new SqliteConnection(this.db)
    this.stopCheckpoints = checkpointInBackground(this.path)
  }

  /**
   * Runs one statement at once when nobody holds or waits for the connection, or returns null. A
   * statement that runs within one turn of the event loop cannot interleave with a transaction, so
   * it needs no place in line; this skips the queue's promises on the hot reads (prepared.ts).
   */
  executeIfIdle<R>(compiled: CompiledQuery): QueryResult<R> | null {
    if (this.inLine > 0 || !this.connection) return null
    return this.connection.executeNow<R>(compiled)
  }

  /** One connection: callers wait in line (a transaction holds it until commit). */
  async acquireConnection(): Promise<DatabaseConnection> {
    this.inLine++
    const previous = this.queue
    let release!: () => void
    this.queue = new Promise<void>((r) => (release = r))
    await previous
    this.release = release
    return this.connection!
  }

  async beginTransaction(conn: DatabaseConnection, _settings: TransactionSettings): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('begin immediate'))
  }
  async commitTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('commit'))
  }
  async rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('rollback'))
  }
  async releaseConnection(): Promise<void> {
    const r = this.release
    this.release = null
    this.inLine--
    r?.()
  }
  async destroy(): Promise<void> {
    this.connection = null
    // The checkpoint thread's connection closes first: this one, the last, then removes the WAL.
    await this.stopCheckpoints?.()
    this.db?.close()
  }
}

/** Switching to WAL needs a moment alone with the file; a process starting beside another may be told BUSY. */
function setWalMode(db: SqliteDatabase.Database): void {
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      db.pragma('journal_mode = WAL')
      return
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    }
  }
}

/** The embedded store's driver per Kysely instance, for executeIfIdle (the root instance only: a transaction is another object). */
const sqliteDrivers = new WeakMap<Kysely<Database>, SqliteDriver>()

/** Runs a compiled statement synchronously on an idle embedded connection; null on PostgreSQL, in a transaction or when busy. */
export function executeIfIdle<R>(db: Kysely<Database>, compiled: CompiledQuery): QueryResult<R> | null {
  return sqliteDrivers.get(db)?.executeIfIdle<R>(compiled) ?? null
}

function openSqlite(path: string): () => SqliteDatabase.Database {
  return () => {
    const db = new SqliteDatabase(path, { timeout: 60_000 })
    setWalMode(db)
    db.pragma('synchronous = NORMAL')
    // The checkpoint thread (checkpointer.ts) copies pages every 20 ms; the commit that passes 4,000
    // WAL pages (16 MB) finishes the job and lets the WAL start over. Measured under triggers: a
    // commit's average 417 us at SQLite's default 1,000 pages, 288 us at 4,000, 268 us at 8,000.
    db.pragma('wal_autocheckpoint = 4000')
    db.pragma('foreign_keys = ON')
    db.pragma('busy_timeout = 60000')
    // Analyze what the planner lacks statistics for (SQLite never does on its own); maintenance repeats it.
    // Best effort: beside another process's write it can be told BUSY at once (a read upgrading to a
    // write does not wait), and statistics are not worth failing a start for.
    try {
      db.pragma('optimize = 0x10002')
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err
    }
    return db
  }
}

function sqliteDialect(driver: SqliteDriver): Dialect {
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => driver,
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

/** Marks a hot statement whose text never changes: on PostgreSQL it runs as a named prepared statement. */
export const PREPARED_MARK = '/*tf:prepared*/ '

/**
 * The pool Kysely uses on PostgreSQL: a statement that starts with PREPARED_MARK is sent as a named
 * prepared statement, so each connection plans it once instead of at every execution. Only fixed texts
 * are marked (core/db/prepared.ts), so the number of names per connection stays small.
 */
function namedStatementPool(pool: pg.Pool): pg.Pool {
  const names = new Map<string, string>()
  const nameOf = (text: string) => {
    let n = names.get(text)
    if (!n) names.set(text, (n = `tf_${names.size}`))
    return n
  }
  const wrap = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver)
        return (text: unknown, values?: unknown[]) =>
          typeof text === 'string' && text.startsWith(PREPARED_MARK)
            ? target.query({ name: nameOf(text), text, values })
            : (target.query as (...a: unknown[]) => unknown)(text, values)
      },
    })
  return new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'connect') return async () => wrap(await target.connect())
      return Reflect.get(target, prop, receiver)
    },
  })
}

/** The client-side deadline of one PostgreSQL query (as long as the server's statement_timeout). */
export const QUERY_READ_TIMEOUT_MS = 300_000

type QueryCallback = (err: Error | null, res?: pg.QueryResult) => void

/**
 * Every pooled client's queries go down pg's callback path, under our own read deadline instead of
 * pg's `query_timeout`. pg's promise path and its per-query timeout timer each left finished queries
 * reachable until the next full collection, so every result row outlived the young-generation
 * collections: about 10 MB promoted per 300 runs pages, and 5-30 ms scavenges in the middle of reads
 * (1-2 ms without). The deadline's timer holds the callback only until the query settles.
 */
export function withReadDeadline(client: pg.ClientBase, timeoutMs: number): void {
  const original = client.query.bind(client) as (...a: unknown[]) => unknown
  const run = (config: unknown, values: unknown, done: QueryCallback) => {
    let pending: QueryCallback | null = done
    const settle = (err: Error | null, res?: pg.QueryResult) => {
      const d = pending
      pending = null
      d?.(err, res)
    }
    const timer = setTimeout(() => settle(new Error('Query read timeout')), timeoutMs)
    original(config, values, (err: Error | null, res: pg.QueryResult) => {
      clearTimeout(timer)
      settle(err, res)
    })
  }
  client.query = ((config: unknown, values?: unknown, callback?: unknown) => {
    // Submittables (cursors) and configs that carry their own callback keep pg's own handling.
    if (config !== null && typeof config === 'object' && (typeof (config as { submit?: unknown }).submit === 'function' || 'callback' in config)) {
      return original(config, values, callback)
    }
    const done = typeof values === 'function' ? values : callback
    const vals = typeof values === 'function' ? undefined : values
    if (typeof done === 'function') return void run(config, vals, done as QueryCallback)
    return new Promise((resolve, reject) => run(config, vals, (err, res) => (err ? reject(err) : resolve(res))))
  }) as typeof client.query
}

export interface OpenOptions {
  databaseUrl: string | null
  dataDir: string
  poolSize?: number
  /** PostgreSQL: client-side deadline of one query (tests shorten it). */
  queryReadTimeoutMs?: number
}

export function openDatabase(opts: OpenOptions): Db {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolSize ?? 20,
      connectionTimeoutMillis: 60_000,
      statement_timeout: 300_000,
      idleTimeoutMillis: 30_000,
      types: pgTypes,
    })
    pool.on('connect', (client) => withReadDeadline(client, opts.queryReadTimeoutMs ?? QUERY_READ_TIMEOUT_MS))
    pool.on('error', () => {
      /* idle client errors are surfaced by the next query; keep the process alive */
    })
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool: namedStatementPool(pool) }) })
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
  const driver = new SqliteDriver(openSqlite(path), path)
  const kysely = new Kysely<Database>({ dialect: sqliteDialect(driver) })
  sqliteDrivers.set(kysely, driver)
  return { kysely, dialect: 'sqlite', pgPool: null, pgUrl: null, sqlitePath: path, close: () => kysely.destroy() }
}
