// The dataset contract: each org's isolated data area (a SQLite file per org embedded; the schema
// org_<slug> on PostgreSQL). A writer is bound to one org and can touch nothing else.
export type ColumnType = 'text' | 'integer' | 'real' | 'date' | 'timestamp' | 'boolean' | 'json'

export interface ColumnSpec {
  name: string
  type: ColumnType
  nullable?: boolean
}

export interface TableSpec {
  name: string
  columns: ColumnSpec[]
  /** Columns that identify a row; loads upsert on them, so re-running a day never duplicates. */
  naturalKey: string[]
  /** Optional date column (YYYY-MM-DD) used for filters, partitioning/retention on PostgreSQL. */
  dateColumn?: string
}

export interface DatasetWriter extends DatasetReader {
  readonly orgSlug: string
  /** Creates the table if missing (and records it in the org's catalogue); validates every identifier. */
  ensureTable(spec: TableSpec): Promise<void>
  /** Batched upsert on the natural key (one statement per batch). Returns rows written. */
  upsertRows(table: string, rows: Record<string, unknown>[]): Promise<number>
  /** Reads rows of one of this org's tables, bounded (limit <= 10000), optionally filtered on the date column. */
  readRows(table: string, opts: { limit: number; date?: string }): Promise<Record<string, unknown>[]>
  /** Runs a checked read-only SELECT over this org's dataset with bound parameters only. */
  select(sqlText: string, params: Record<string, unknown>, limit: number): Promise<Record<string, unknown>[]>
}

/** A catalogue entry as the data API shows it. rowCount is as of the table's last load. */
export interface TableInfo {
  name: string
  columns: ColumnSpec[]
  naturalKey: string[]
  dateColumn?: string
  rowCount: number
  updatedAt: number
}

export interface ReadPageOptions {
  /** 1..1000 */
  limit: number
  /** Opaque base64url keyset cursor from a previous page. */
  cursor?: string
  /** Inclusive YYYY-MM-DD bounds on the table's date column (refused when it has none). */
  dateFrom?: string
  dateTo?: string
}

export interface RowPage {
  rows: Record<string, unknown>[]
  /** null on the last page. */
  nextCursor: string | null
}

/** The read side of one org's dataset (what the data routes get). Table names are checked against the org's catalogue. */
export interface DatasetReader {
  readonly orgSlug: string
  /** The org's tables with row counts, from the catalogue (at most 100). */
  listTables(): Promise<TableInfo[]>
  /** The declared spec of one of this org's tables; DatasetError TABLE_NOT_FOUND otherwise. */
  describeTable(table: string): Promise<TableSpec>
  /** Keyset pagination on the natural key. */
  readPage(table: string, opts: ReadPageOptions): Promise<RowPage>
  readRows(table: string, opts: { limit: number; date?: string }): Promise<Record<string, unknown>[]>
  select(sqlText: string, params: Record<string, unknown>, limit: number): Promise<Record<string, unknown>[]>
}
