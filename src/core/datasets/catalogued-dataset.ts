// What every dataset home (SQLite file / PostgreSQL schema, BigQuery) shares: the bounds of the
// contract, the table specs read from the org's catalogue in the system database (the only list of
// tables a read may name), and the read methods built on a home's own `page()`.
import type { Db, DialectName } from '../db/database.js'
import { getEntry, listEntries, tableInfo } from './catalogue.js'
import { decodeCursor, rowPage } from './cursor.js'
import { DatasetError } from './errors.js'
import { isIdentifier, isReservedTableName } from './identifiers.js'
import type { DatasetBinding, ReadPageOptions, RowPage, TableInfo, TableSpec } from './types.js'

export const LIST_LIMIT = 100
export const CATALOGUE_SCAN_LIMIT = 1000
export const PAGE_MAX = 1000
export const READ_ROWS_MAX = 10_000
export const SELECT_MAX = 100_000
export const ROWS_PER_LOAD_MAX = 1_000_000

export function assertLimit(limit: unknown, max: number): number {
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > max) {
    throw new DatasetError('INVALID_FILTER', `limit must be an integer in 1..${max}`)
  }
  return limit
}

export function tableNotFound(): DatasetError {
  return new DatasetError('TABLE_NOT_FOUND', 'table not found')
}

/** One bounded read in natural-key order, after a keyset position, optionally within date bounds. */
export interface PageQuery {
  limit: number
  after?: (string | number | null)[]
  dateFrom?: string
  dateTo?: string
}

export abstract class CataloguedDataset {
  protected readonly specs = new Map<string, TableSpec>()
  readonly orgSlug: string
  readonly datasetId: string

  /** `cursorDialect`: how the home's key values are typed when a cursor is decoded. */
  protected constructor(
    protected readonly db: Db,
    ds: DatasetBinding,
    private readonly cursorDialect: DialectName,
  ) {
    this.orgSlug = ds.orgSlug
    this.datasetId = ds.datasetId
  }

  protected abstract page(spec: TableSpec, opts: PageQuery): Promise<Record<string, unknown>[]>

  protected async spec(table: string): Promise<TableSpec> {
    // Reserved and malformed names are simply not tables of this dataset.
    if (!isIdentifier(table) || isReservedTableName(table)) throw tableNotFound()
    const cached = this.specs.get(table)
    if (cached) return cached
    const entry = await getEntry(this.db, this.datasetId, table)
    if (!entry) throw tableNotFound()
    this.specs.set(table, entry.spec)
    return entry.spec
  }

  async readPage(table: string, opts: ReadPageOptions): Promise<RowPage> {
    const spec = await this.spec(table)
    const limit = assertLimit(opts.limit, PAGE_MAX)
    const after = opts.cursor !== undefined ? decodeCursor(opts.cursor, spec, this.cursorDialect) : undefined
    const rows = await this.page(spec, { limit: limit + 1, after, dateFrom: opts.dateFrom, dateTo: opts.dateTo })
    return rowPage(spec, rows, limit)
  }

  async readRows(table: string, opts: { limit: number; date?: string }): Promise<Record<string, unknown>[]> {
    const spec = await this.spec(table)
    const limit = assertLimit(opts.limit, READ_ROWS_MAX)
    return this.page(spec, { limit, dateFrom: opts.date, dateTo: opts.date })
  }

  async describeTable(table: string): Promise<TableSpec> {
    return this.spec(table)
  }

  async listTables(): Promise<TableInfo[]> {
    const entries = await listEntries(this.db, this.datasetId, LIST_LIMIT)
    return entries.map(tableInfo)
  }
}
