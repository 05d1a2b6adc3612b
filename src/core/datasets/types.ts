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

export interface DatasetWriter {
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
