// Reads every row of one dataset table for one date, page by page (bounded).
import type { DatasetWriter, TableSpec } from '../../datasets/types.js'
import { ProcessorError } from '../types.js'
import { datasetOp } from './errors.js'

const PAGE = 1000
const MAX_PAGES = 100

export async function readDay(dataset: DatasetWriter, table: string, date: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  let cursor: string | undefined
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await dataset.readPage(table, { limit: PAGE, cursor, dateFrom: date, dateTo: date })
    out.push(...r.rows)
    if (!r.nextCursor) return out
    cursor = r.nextCursor
  }
  throw new ProcessorError('LIMIT_EXCEEDED', `More than ${PAGE * MAX_PAGES} rows in ${table} for one day`)
}

/** Creates the table if needed and upserts the rows in one batched load; returns the rows written. */
export async function loadRows(dataset: DatasetWriter, spec: TableSpec, rows: Record<string, unknown>[]): Promise<number> {
  return datasetOp(async () => {
    await dataset.ensureTable(spec)
    return dataset.upsertRows(spec.name, rows)
  })
}
