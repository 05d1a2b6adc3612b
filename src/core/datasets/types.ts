// The dataset contract: each org's isolated data area (a SQLite file embedded; a schema on
// PostgreSQL), named by its dataset id: one org *incarnation*, never the slug. A writer is bound to
// one dataset id and can touch nothing else, so a writer opened for an offboarded org can never
// reach the data of a later org with the same slug.
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

/** Which dataset: the org and the id of its current incarnation's dataset (org_profiles.dataset_id). */
export interface DatasetBinding {
  orgSlug: string
  datasetId: string
}

/** A bound statement over the system tables (placeholders in the system database's dialect). */
export interface GuardStatement {
  text: string
  params: unknown[]
}

/**
 * Closes a writer: once `signal` aborts, no write starts. `guard`, when given, must return a row for
 * a write to proceed (e.g. "this run still holds its lease"); on PostgreSQL it runs inside the
 * write's own transaction (and may lock the row it reads until the commit), on SQLite on the system
 * database just before the write.
 */
export interface WriteFence {
  signal: AbortSignal
  guard?: GuardStatement
}

export interface DatasetWriter extends DatasetReader {
  readonly orgSlug: string
  readonly datasetId: string
  /** Creates the table if missing (and records it in the org's catalogue); validates every identifier. */
  ensureTable(spec: TableSpec): Promise<void>
  /** Batched upsert on the natural key (one statement per batch). Returns rows written. */
  upsertRows(table: string, rows: Record<string, unknown>[]): Promise<number>
  /** Replaces every row of the table with `rows` in one transaction (readers see the old or the new set). */
  replaceRows(table: string, rows: Record<string, unknown>[]): Promise<number>
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
  readonly datasetId: string
  /** The org's tables with row counts, from the catalogue (at most 100). */
  listTables(): Promise<TableInfo[]>
  /** The declared spec of one of this org's tables; DatasetError TABLE_NOT_FOUND otherwise. */
  describeTable(table: string): Promise<TableSpec>
  /** Keyset pagination on the natural key. */
  readPage(table: string, opts: ReadPageOptions): Promise<RowPage>
  readRows(table: string, opts: { limit: number; date?: string }): Promise<Record<string, unknown>[]>
  select(sqlText: string, params: Record<string, unknown>, limit: number): Promise<Record<string, unknown>[]>
}
