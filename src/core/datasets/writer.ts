// openDatasetWriter(): the only way code reaches an org's dataset. The object is bound to one dataset
// id (one org incarnation): on SQLite it can only open that dataset's file; on PostgreSQL every
// statement is qualified with that dataset's schema. Table and column names come only from validated
// specs via quoteIdent(). A writer opened with a WriteFence writes nothing once the fence closes.
import { createHash } from 'node:crypto'
import type { Db, DialectName } from '../db/database.js'
import { BigQueryDataset } from './bigquery/dataset.js'
import { bigQueryHomeOf } from './bigquery/home.js'
import { getEntry, listEntries, putEntry } from './catalogue.js'
import { assertLimit, CATALOGUE_SCAN_LIMIT, CataloguedDataset, ROWS_PER_LOAD_MAX, SELECT_MAX, type PageQuery } from './catalogued-dataset.js'
import { fenced, openEngine, Params, type DatasetEngine, type Row, type Stmt } from './engine.js'
import { DatasetError } from './errors.js'
import { assertDatasetId, assertOrgSlug, isIdentifier, quoteIdent } from './identifiers.js'
import { bindNamed, checkSelect } from './select-check.js'
import { additiveColumns, columnDdlType, decodeValue, encodeValue, isValidDate, pgCast, specsEqual, validateTableSpec } from './spec.js'
import type { DatasetBinding, DatasetReader, DatasetWriter, TableSpec, WriteFence } from './types.js'

export interface DatasetOptions {
  now?: () => number
  /** Deadline of template SQL (`select`), both stores: past it the query stops with QUERY_TIMEOUT. */
  selectTimeoutMs?: number
  /** Writes (tables and rows) only while this fence is open (engine steps: the step signal and the run's lease). */
  fence?: WriteFence
}

const ROWS_PER_BATCH_MAX = 1000
/** Bound parameters per statement, under SQLITE_MAX_VARIABLE_NUMBER (32766) and PostgreSQL's 65535. */
const PARAMS_PER_STATEMENT = { sqlite: 30_000, postgres: 60_000 } as const

/** Values as JSON-friendly scalars whatever the driver returned (dates, bigints). */
function plain(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString()
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
  if (Buffer.isBuffer(v)) return null
  return v
}

class OrgDataset extends CataloguedDataset implements DatasetWriter {
  private readonly engine: DatasetEngine
  private readonly dialect: DialectName
  private readonly now: () => number

  constructor(
    db: Db,
    dataDir: string,
    ds: DatasetBinding,
    private readonly opts: DatasetOptions,
  ) {
    super(db, ds, db.dialect)
    this.engine = openEngine(db, dataDir, ds.datasetId)
    this.dialect = db.dialect
    this.now = opts.now ?? Date.now
  }

  private checkFence(): void {
    if (this.opts.fence?.signal.aborted) throw fenced()
  }

  private async requireDataset(): Promise<void> {
    if (!(await this.engine.exists())) throw new DatasetError('DATASET_NOT_FOUND', 'dataset does not exist')
  }

  private createStatements(spec: TableSpec): Stmt[] {
    const cols = spec.columns.map(
      (c) => `${quoteIdent(c.name)} ${columnDdlType(c.type, this.dialect)}${c.nullable ? '' : ' NOT NULL'}`,
    )
    const pk = spec.naturalKey.map(quoteIdent).join(', ')
    const ref = this.engine.tableRef(spec.name)
    const stmts: Stmt[] = [{ text: `CREATE TABLE IF NOT EXISTS ${ref} (${cols.join(', ')}, PRIMARY KEY (${pk}))`, params: [] }]
    if (spec.dateColumn) {
      const ix = quoteIdent(`ix_${createHash('sha256').update(spec.name).digest('hex').slice(0, 20)}_date`)
      stmts.push({ text: `CREATE INDEX IF NOT EXISTS ${ix} ON ${ref} (${quoteIdent(spec.dateColumn)})`, params: [] })
    }
    return stmts
  }

  async ensureTable(input: TableSpec): Promise<void> {
    const spec = validateTableSpec(input)
    this.checkFence()
    await this.requireDataset()
    const existing = await getEntry(this.db, this.datasetId, spec.name)
    if (existing && specsEqual(existing.spec, spec)) {
      await this.createRacing(this.createStatements(spec))
      this.specs.set(spec.name, spec)
      return
    }
    const stmts = this.createStatements(existing ? existing.spec : spec)
    if (existing) stmts.push(...this.additiveChanges(existing.spec, spec))
    await this.createRacing(stmts)
    await putEntry(this.db, this, spec, existing?.rowCount ?? 0, this.now())
    this.specs.set(spec.name, spec)
  }

  /** Two runs creating one PostgreSQL table at once can collide on pg_type (23505); the retry sees it exists. */
  private async createRacing(stmts: Stmt[]): Promise<void> {
    try {
      await this.engine.transaction(stmts, this.opts.fence)
    } catch (err) {
      if (!(err instanceof DatasetError && err.message.includes('(23505)'))) throw err
      await this.engine.transaction(stmts, this.opts.fence)
    }
  }

  /** A spec may only grow: same key, same date column, existing columns unchanged, new columns nullable. */
  private additiveChanges(old: TableSpec, next: TableSpec): Stmt[] {
    const added = additiveColumns(old, next)
    const ifNotExists = this.dialect === 'postgres' ? 'IF NOT EXISTS ' : ''
    return added.map((c) => ({
      text: `ALTER TABLE ${this.engine.tableRef(next.name)} ADD COLUMN ${ifNotExists}${quoteIdent(c.name)} ${columnDdlType(c.type, this.dialect)}`,
      params: [],
    }))
  }

  async upsertRows(table: string, rows: Record<string, unknown>[]): Promise<number> {
    return this.load(table, rows, false)
  }

  async replaceRows(table: string, rows: Record<string, unknown>[]): Promise<number> {
    return this.load(table, rows, true)
  }

  /** Upserts rows in one transaction; with `replace`, the table's previous rows are deleted in it first. */
  private async load(table: string, rows: Record<string, unknown>[], replace: boolean): Promise<number> {
    this.checkFence()
    const spec = await this.spec(table)
    if (!Array.isArray(rows)) throw new DatasetError('INVALID_VALUE', 'rows must be an array')
    if (rows.length > ROWS_PER_LOAD_MAX) throw new DatasetError('LIMIT_EXCEEDED', 'too many rows in one load')
    if (rows.length === 0 && !replace) return 0
    const names = new Set(spec.columns.map((c) => c.name))
    const keyIdx = spec.naturalKey.map((k) => spec.columns.findIndex((c) => c.name === k))
    const encoded: (string | number | null)[][] = []
    const byKey = new Map<string, number>()
    for (const row of rows) {
      if (!row || typeof row !== 'object' || Array.isArray(row)) throw new DatasetError('INVALID_VALUE', 'row must be an object')
      for (const k of Object.keys(row)) {
        if (!names.has(k)) throw new DatasetError('INVALID_VALUE', isIdentifier(k) ? `unknown column ${k}` : 'unknown column')
      }
      const vals = spec.columns.map((c) => encodeValue(c, row[c.name], this.dialect))
      // Last row wins for a repeated key: one statement may not touch the same row twice on PostgreSQL.
      const key = JSON.stringify(keyIdx.map((i) => vals[i]))
      const at = byKey.get(key)
      if (at === undefined) {
        byKey.set(key, encoded.length)
        encoded.push(vals)
      } else encoded[at] = vals
    }
    const perBatch = Math.max(1, Math.min(ROWS_PER_BATCH_MAX, Math.floor(PARAMS_PER_STATEMENT[this.dialect] / spec.columns.length)))
    const stmts: Stmt[] = replace ? [{ text: `DELETE FROM ${this.engine.tableRef(spec.name)}`, params: [] }] : []
    for (let i = 0; i < encoded.length; i += perBatch) stmts.push(this.upsertStatement(spec, encoded.slice(i, i + perBatch)))
    await this.engine.transaction(stmts, this.opts.fence)
    const count = await this.engine.all({ text: `SELECT COUNT(*) AS n FROM ${this.engine.tableRef(spec.name)} LIMIT 1`, params: [] })
    await putEntry(this.db, this, spec, Number(count[0]?.n ?? 0), this.now())
    return encoded.length
  }

  private upsertStatement(spec: TableSpec, batch: (string | number | null)[][]): Stmt {
    const p = new Params(this.dialect)
    const cols = spec.columns.map((c) => quoteIdent(c.name)).join(', ')
    const tuples = batch.map((vals) => `(${vals.map((v, i) => p.add(v, pgCast(spec.columns[i]!.type))).join(', ')})`)
    const key = spec.naturalKey.map(quoteIdent).join(', ')
    const rest = spec.columns.filter((c) => !spec.naturalKey.includes(c.name))
    const action = rest.length
      ? `DO UPDATE SET ${rest.map((c) => `${quoteIdent(c.name)} = excluded.${quoteIdent(c.name)}`).join(', ')}`
      : 'DO NOTHING'
    return {
      text: `INSERT INTO ${this.engine.tableRef(spec.name)} (${cols}) VALUES ${tuples.join(', ')} ON CONFLICT (${key}) ${action}`,
      params: p.values,
    }
  }

  private decodeRow(spec: TableSpec, r: Row): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const c of spec.columns) out[c.name] = decodeValue(c.type, r[c.name])
    return out
  }

  protected async page(spec: TableSpec, opts: PageQuery): Promise<Record<string, unknown>[]> {
    const p = new Params(this.dialect)
    const where: string[] = []
    if (opts.dateFrom !== undefined || opts.dateTo !== undefined) {
      if (!spec.dateColumn) throw new DatasetError('INVALID_FILTER', 'table has no date column')
      const dc = quoteIdent(spec.dateColumn)
      for (const [v, op] of [[opts.dateFrom, '>='], [opts.dateTo, '<=']] as const) {
        if (v === undefined) continue
        if (!isValidDate(v)) throw new DatasetError('INVALID_FILTER', 'dates must be YYYY-MM-DD')
        where.push(`${dc} ${op} ${p.add(v, '::date')}`)
      }
    }
    const keyCols = spec.naturalKey.map((k) => spec.columns.find((c) => c.name === k)!)
    if (opts.after) {
      const placeholders = opts.after.map((v, i) => p.add(v, pgCast(keyCols[i]!.type)))
      where.push(`(${keyCols.map((c) => quoteIdent(c.name)).join(', ')}) > (${placeholders.join(', ')})`)
    }
    const text =
      `SELECT ${spec.columns.map((c) => quoteIdent(c.name)).join(', ')} FROM ${this.engine.tableRef(spec.name)}` +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY ${keyCols.map((c) => quoteIdent(c.name)).join(', ')} LIMIT ${p.add(opts.limit, '::bigint')}`
    const rows = await this.engine.all({ text, params: p.values })
    return rows.map((r) => this.decodeRow(spec, r))
  }

  async select(sqlText: string, params: Record<string, unknown>, limit: number): Promise<Record<string, unknown>[]> {
    const max = assertLimit(limit, SELECT_MAX)
    const entries = await listEntries(this.db, this.datasetId, CATALOGUE_SCAN_LIMIT)
    const checked = checkSelect(sqlText, new Set(entries.map((e) => e.spec.name)))
    const bound = bindNamed(checked, params ?? {}, this.dialect)
    const p = new Params(this.dialect)
    for (const v of bound.params) p.add(v)
    const text = `SELECT * FROM (${bound.text}) AS tf_q LIMIT ${p.add(max + 1, '::bigint')}`
    const rows = await this.engine.readOnly(
      { text, params: p.values },
      { timeoutMs: this.opts.selectTimeoutMs ?? 60_000, maxRows: max + 1, signal: this.opts.fence?.signal },
    )
    if (rows.length > max) throw new DatasetError('LIMIT_EXCEEDED', `query returned more than ${max} rows`)
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])))
  }
}

/** A reader/writer bound to one dataset (engine steps get this as ctx.dataset). */
export function openDatasetWriter(db: Db, dataDir: string, ds: DatasetBinding, opts: DatasetOptions = {}): DatasetWriter {
  const bigquery = bigQueryHomeOf(db)
  if (bigquery) return new BigQueryDataset(db, bigquery, { orgSlug: assertOrgSlug(ds.orgSlug), datasetId: assertDatasetId(ds.datasetId) }, opts)
  return new OrgDataset(db, dataDir, { orgSlug: assertOrgSlug(ds.orgSlug), datasetId: assertDatasetId(ds.datasetId) }, opts)
}

/** The read side only, for the data routes. */
export function openDatasetReader(db: Db, dataDir: string, ds: DatasetBinding, opts: DatasetOptions = {}): DatasetReader {
  return openDatasetWriter(db, dataDir, ds, opts)
}
