// One org's dataset on BigQuery behind the DatasetWriter/DatasetReader contract. Bound to one dataset
// id: every job names that dataset (default dataset, destination tables, `org_x`.`t` references), every
// table and column name comes from a validated spec via quoteBq(), every value is a typed NAMED
// parameter or a row of a load job. The catalogue (the only list of tables reads may name) stays in
// the system database. Loads: NDJSON load jobs into a staging table that expires by itself, then one
// MERGE on the natural key, so re-running a day merges and never duplicates.
import { randomBytes } from 'node:crypto'
import { CompiledQuery } from 'kysely'
import type { Db } from '../../db/database.js'
import { getEntry, listEntries, putEntry } from '../catalogue.js'
import { assertLimit, CATALOGUE_SCAN_LIMIT, CataloguedDataset, ROWS_PER_LOAD_MAX, SELECT_MAX, type PageQuery } from '../catalogued-dataset.js'
import { fenced } from '../engine.js'
import { DatasetError } from '../errors.js'
import { bigQueryDatasetOf, bqQualified, isIdentifier, quoteBq } from '../identifiers.js'
import { checkSelect } from '../select-check.js'
import { additiveColumns, decodeValue, isValidDate, specsEqual, validateTableSpec } from '../spec.js'
import type { DatasetBinding, DatasetWriter, TableSpec, WriteFence } from '../types.js'
import type { BigQueryHome } from './home.js'
import { runLoad, runQuery, type JobScope } from './jobs.js'
import { bqType, decodeCell, ndjsonValue, param, schemaFields, type QueryParameter } from './sql.js'
import { toBigQuerySelect } from './template-sql.js'

export interface BigQueryDatasetOptions {
  now?: () => number
  fence?: WriteFence
}

/** NDJSON bytes per load job (multipart uploads stay small; the staging table takes several). */
const LOAD_CHUNK_BYTES = 4 * 1024 * 1024
const STAGING_TTL_MS = 6 * 3_600_000
/** BigQuery clusters on at most four columns, and never on FLOAT64. */
const MAX_CLUSTER_COLUMNS = 4

/** A label value naming the org (lowercase letters, digits, _ and -, at most 63). */
function orgLabel(slug: string): string {
  return slug.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 63)
}

export class BigQueryDataset extends CataloguedDataset implements DatasetWriter {
  private readonly bqDataset: string
  private readonly now: () => number

  constructor(
    db: Db,
    private readonly home: BigQueryHome,
    ds: DatasetBinding,
    private readonly opts: BigQueryDatasetOptions = {},
  ) {
    // Key values in BigQuery cursors are typed as on PostgreSQL (bigint/date/boolean).
    super(db, ds, 'postgres')
    this.bqDataset = bigQueryDatasetOf(ds.datasetId)
    this.now = opts.now ?? Date.now
  }

  private scope(): JobScope {
    return {
      client: this.home.client,
      location: this.home.location,
      bqDataset: this.bqDataset,
      maxBytesBilled: this.home.maxBytesBilled,
      jobTimeoutMs: this.home.jobTimeoutMs,
      signal: this.opts.fence?.signal,
      now: Date.now,
    }
  }

  private deadline(): number {
    return Date.now() + this.home.jobTimeoutMs
  }

  private tablePath(table: string): string {
    return `/datasets/${this.bqDataset}/tables/${encodeURIComponent(table)}`
  }

  private checkFence(): void {
    if (this.opts.fence?.signal.aborted) throw fenced()
  }

  /** The fence's guard on the system database, just before the statement that commits a write. */
  private async checkGuard(): Promise<void> {
    this.checkFence()
    const guard = this.opts.fence?.guard
    if (guard) {
      const r = await this.db.kysely.executeQuery(CompiledQuery.raw(guard.text, guard.params)).catch(() => {
        throw new DatasetError('QUERY_FAILED', 'write guard failed')
      })
      if (r.rows.length === 0) throw fenced()
    }
    this.checkFence()
  }

  private tableResource(spec: TableSpec, tableId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const clusterable = spec.naturalKey.filter((k) => spec.columns.find((c) => c.name === k)!.type !== 'real').slice(0, MAX_CLUSTER_COLUMNS)
    return {
      tableReference: { projectId: this.home.client.project, datasetId: this.bqDataset, tableId },
      schema: { fields: schemaFields(spec.columns) },
      ...(spec.dateColumn ? { timePartitioning: { type: 'DAY', field: spec.dateColumn } } : {}),
      ...(clusterable.length ? { clustering: { fields: clusterable } } : {}),
      labels: { tenantflow_org: orgLabel(this.orgSlug) },
      ...extra,
    }
  }

  private async createTable(spec: TableSpec): Promise<void> {
    await this.home.client.call({
      path: `/datasets/${this.bqDataset}/tables`,
      body: this.tableResource(spec, spec.name),
      signal: this.opts.fence?.signal,
      deadline: this.deadline(),
      conflict: 'DATASET_EXISTS',
      duplicateIsSuccess: true,
    }).catch((err: unknown) => {
      // Another run created it first: the catalogue check above decides whether the specs agree.
      if (err instanceof DatasetError && err.code === 'DATASET_EXISTS') return
      throw err
    })
  }

  private async tableExists(table: string): Promise<boolean> {
    try {
      await this.home.client.call({ path: this.tablePath(table), query: { view: 'BASIC' }, signal: this.opts.fence?.signal, deadline: this.deadline(), notFound: 'TABLE_NOT_FOUND' })
      return true
    } catch (err) {
      if (err instanceof DatasetError && err.code === 'TABLE_NOT_FOUND') return false
      throw err
    }
  }

  async ensureTable(input: TableSpec): Promise<void> {
    const spec = validateTableSpec(input)
    this.checkFence()
    const existing = await getEntry(this.db, this.datasetId, spec.name)
    if (existing && specsEqual(existing.spec, spec)) {
      if (!(await this.tableExists(spec.name))) await this.createTable(spec)
      this.specs.set(spec.name, spec)
      return
    }
    if (existing) {
      const added = additiveColumns(existing.spec, spec)
      if (!(await this.tableExists(spec.name))) await this.createTable(existing.spec)
      if (added.length) {
        // tables.patch with the whole schema: new columns are NULLABLE, existing ones unchanged.
        await this.home.client.call({
          method: 'PATCH',
          path: this.tablePath(spec.name),
          body: { schema: { fields: schemaFields(spec.columns) } },
          signal: this.opts.fence?.signal,
          deadline: this.deadline(),
          notFound: 'TABLE_NOT_FOUND',
        })
      }
    } else {
      await this.createTable(spec)
    }
    await putEntry(this.db, this, spec, existing?.rowCount ?? 0, this.now())
    this.specs.set(spec.name, spec)
  }

  async upsertRows(table: string, rows: Record<string, unknown>[]): Promise<number> {
    return this.load(table, rows, false)
  }

  async replaceRows(table: string, rows: Record<string, unknown>[]): Promise<number> {
    return this.load(table, rows, true)
  }

  private encodeRows(spec: TableSpec, rows: Record<string, unknown>[]): Record<string, unknown>[] {
    const names = new Set(spec.columns.map((c) => c.name))
    const byKey = new Map<string, number>()
    const out: Record<string, unknown>[] = []
    for (const row of rows) {
      if (!row || typeof row !== 'object' || Array.isArray(row)) throw new DatasetError('INVALID_VALUE', 'row must be an object')
      for (const k of Object.keys(row)) {
        if (!names.has(k)) throw new DatasetError('INVALID_VALUE', isIdentifier(k) ? `unknown column ${k}` : 'unknown column')
      }
      const obj: Record<string, unknown> = {}
      for (const c of spec.columns) obj[c.name] = ndjsonValue(c, row[c.name])
      // Last row wins for a repeated key: MERGE refuses a target row matched by two source rows.
      const key = JSON.stringify(spec.naturalKey.map((k) => obj[k]))
      const at = byKey.get(key)
      if (at === undefined) {
        byKey.set(key, out.length)
        out.push(obj)
      } else out[at] = obj
    }
    return out
  }

  private async load(table: string, rows: Record<string, unknown>[], replace: boolean): Promise<number> {
    this.checkFence()
    const spec = await this.spec(table)
    if (!Array.isArray(rows)) throw new DatasetError('INVALID_VALUE', 'rows must be an array')
    if (rows.length > ROWS_PER_LOAD_MAX) throw new DatasetError('LIMIT_EXCEEDED', 'too many rows in one load')
    if (rows.length === 0 && !replace) return 0
    const encoded = this.encodeRows(spec, rows)
    const target = bqQualified(this.bqDataset, spec.name)
    if (encoded.length === 0) {
      await this.checkGuard()
      await runQuery(this.scope(), `DELETE FROM ${target} WHERE TRUE`, [], 1)
    } else {
      const staging = `tenantflow_stage_${randomBytes(8).toString('hex')}`
      await this.home.client.call({
        path: `/datasets/${this.bqDataset}/tables`,
        body: {
          tableReference: { projectId: this.home.client.project, datasetId: this.bqDataset, tableId: staging },
          schema: { fields: schemaFields(spec.columns) },
          expirationTime: String(Date.now() + STAGING_TTL_MS),
        },
        signal: this.opts.fence?.signal,
        deadline: this.deadline(),
        duplicateIsSuccess: true,
      })
      try {
        const fields = schemaFields(spec.columns)
        let chunk: string[] = []
        let bytes = 0
        for (const obj of encoded) {
          const line = JSON.stringify(obj)
          if (bytes + line.length + 1 > LOAD_CHUNK_BYTES && chunk.length) {
            this.checkFence()
            await runLoad(this.scope(), staging, fields, chunk.join('\n'))
            chunk = []
            bytes = 0
          }
          chunk.push(line)
          bytes += Buffer.byteLength(line) + 1
        }
        this.checkFence()
        await runLoad(this.scope(), staging, fields, chunk.join('\n'))
        await this.checkGuard()
        await runQuery(this.scope(), this.mergeStatement(spec, staging, replace), [], 1)
      } finally {
        // Best effort: the staging table expires by itself.
        await this.home.client.call({ method: 'DELETE', path: this.tablePath(staging), deadline: Date.now() }).catch(() => undefined)
      }
    }
    const count = await runQuery(this.scope(), `SELECT COUNT(*) AS n FROM ${target}`, [], 1)
    await putEntry(this.db, this, spec, Number(count.rows[0]?.[0] ?? 0), this.now())
    return encoded.length
  }

  /** The one statement that writes a load: MERGE on the natural key (and, for a replace, delete the rest). */
  mergeStatement(spec: TableSpec, staging: string, replace: boolean): string {
    const on = spec.naturalKey.map((k) => `T.${quoteBq(k)} = S.${quoteBq(k)}`).join(' AND ')
    const rest = spec.columns.filter((c) => !spec.naturalKey.includes(c.name))
    const cols = spec.columns.map((c) => quoteBq(c.name))
    return [
      `MERGE ${bqQualified(this.bqDataset, spec.name)} AS T USING ${bqQualified(this.bqDataset, staging)} AS S ON ${on}`,
      ...(rest.length ? [`WHEN MATCHED THEN UPDATE SET ${rest.map((c) => `${quoteBq(c.name)} = S.${quoteBq(c.name)}`).join(', ')}`] : []),
      `WHEN NOT MATCHED THEN INSERT (${cols.join(', ')}) VALUES (${spec.columns.map((c) => `S.${quoteBq(c.name)}`).join(', ')})`,
      ...(replace ? ['WHEN NOT MATCHED BY SOURCE THEN DELETE'] : []),
    ].join(' ')
  }

  protected async page(spec: TableSpec, opts: PageQuery): Promise<Record<string, unknown>[]> {
    const params: QueryParameter[] = []
    const where: string[] = []
    if (opts.dateFrom !== undefined || opts.dateTo !== undefined) {
      if (!spec.dateColumn) throw new DatasetError('INVALID_FILTER', 'table has no date column')
      const dc = quoteBq(spec.dateColumn)
      for (const [v, op, name] of [[opts.dateFrom, '>=', 'tf_date_from'], [opts.dateTo, '<=', 'tf_date_to']] as const) {
        if (v === undefined) continue
        if (!isValidDate(v)) throw new DatasetError('INVALID_FILTER', 'dates must be YYYY-MM-DD')
        where.push(`${dc} ${op} @${name}`)
        params.push(param(name, 'DATE', v))
      }
    }
    const keyCols = spec.naturalKey.map((k) => spec.columns.find((c) => c.name === k)!)
    if (opts.after) {
      // BigQuery has no row-value comparison: (a, b) > (x, y) spelled out.
      // The cursor's values were validated and encoded against their columns by decodeCursor.
      keyCols.forEach((c, i) => params.push(param(`tf_k${i}`, bqType(c.type), opts.after![i] ?? null)))
      const ors = keyCols.map((c, i) => {
        const eq = keyCols.slice(0, i).map((p, j) => `${quoteBq(p.name)} = @tf_k${j}`)
        return `(${[...eq, `${quoteBq(c.name)} > @tf_k${i}`].join(' AND ')})`
      })
      where.push(`(${ors.join(' OR ')})`)
    }
    params.push(param('tf_limit', 'INT64', opts.limit))
    const text =
      `SELECT ${spec.columns.map((c) => quoteBq(c.name)).join(', ')} FROM ${bqQualified(this.bqDataset, spec.name)}` +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY ${keyCols.map((c) => quoteBq(c.name)).join(', ')} LIMIT @tf_limit`
    const result = await runQuery(this.scope(), text, params, opts.limit)
    return result.rows.map((cells) => {
      const out: Record<string, unknown> = {}
      spec.columns.forEach((c, i) => (out[c.name] = decodeValue(c.type, decodeCell(result.fields[i]?.type ?? '', cells[i]))))
      return out
    })
  }

  async select(sqlText: string, params: Record<string, unknown>, limit: number): Promise<Record<string, unknown>[]> {
    const max = assertLimit(limit, SELECT_MAX)
    const entries = await listEntries(this.db, this.datasetId, CATALOGUE_SCAN_LIMIT)
    const checked = checkSelect(sqlText, new Set(entries.map((e) => e.spec.name)))
    const specs = entries.map((e) => e.spec).filter((s) => checked.tables.includes(s.name))
    const q = toBigQuerySelect(checked, params ?? {}, specs, max + 1)
    const result = await runQuery(this.scope(), q.text, q.params, max + 1)
    if (result.rows.length > max) throw new DatasetError('LIMIT_EXCEEDED', `query returned more than ${max} rows`)
    return result.rows.map((cells) => Object.fromEntries(result.fields.map((f, i) => [f.name, decodeCell(f.type, cells[i])])))
  }
}

/** Creates the org's BigQuery dataset (labels name the org); DATASET_EXISTS if it is already there. */
export async function createBigQueryDataset(home: BigQueryHome, orgSlug: string, datasetId: string): Promise<void> {
  const bqDataset = bigQueryDatasetOf(datasetId)
  await home.client.call({
    path: '/datasets',
    body: {
      datasetReference: { projectId: home.client.project, datasetId: bqDataset },
      location: home.location,
      labels: { tenantflow_org: orgLabel(orgSlug), tenantflow: 'org_dataset' },
    },
    deadline: Date.now() + home.jobTimeoutMs,
    conflict: 'DATASET_EXISTS',
  })
}

const TABLE_PAGES_MAX = 100

/** Deletes the org's BigQuery dataset with its contents (deleteContents=true). Returns whether it existed and its tables (staging ones excluded). */
export async function dropBigQueryDataset(home: BigQueryHome, datasetId: string): Promise<{ dropped: boolean; tables: number }> {
  const path = `/datasets/${bigQueryDatasetOf(datasetId)}`
  const deadline = Date.now() + home.jobTimeoutMs
  let tables = 0
  try {
    let pageToken: string | undefined
    for (let page = 0; page < TABLE_PAGES_MAX; page++) {
      const r = await home.client.call<{ tables?: { tableReference?: { tableId?: string } }[]; nextPageToken?: string }>({
        path: `${path}/tables`,
        query: { maxResults: '1000', ...(pageToken ? { pageToken } : {}) },
        deadline,
      })
      tables += (r.tables ?? []).filter((t) => !String(t.tableReference?.tableId ?? '').startsWith('tenantflow_stage_')).length
      pageToken = typeof r.nextPageToken === 'string' && r.nextPageToken.length <= 4096 ? r.nextPageToken : undefined
      if (!pageToken) break
    }
  } catch (err) {
    if (err instanceof DatasetError && err.code === 'DATASET_NOT_FOUND') return { dropped: false, tables: 0 }
    throw err
  }
  try {
    await home.client.call({ method: 'DELETE', path, query: { deleteContents: 'true' }, deadline })
  } catch (err) {
    if (!(err instanceof DatasetError && err.code === 'DATASET_NOT_FOUND')) throw err
  }
  return { dropped: true, tables }
}

