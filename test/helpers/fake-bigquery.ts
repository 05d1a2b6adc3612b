// A local BigQuery v2 REST server for tests, speaking the documented shapes the dataset home uses:
// OAuth2 JWT-bearer token exchange (RS256 verified with the test key's public key), datasets
// insert/get/delete/list, tables insert/get/patch/delete, jobs.insert for query jobs and for load jobs
// (multipart upload), jobs.get, jobs.getQueryResults with pageToken paging, and v2 error bodies
// {error:{code,message,errors:[{reason}]}}. It checks what the real service checks for those calls
// (bearer token, typed NAMED parameters, referenced parameters defined, defaultDataset, maximumBytesBilled,
// schema modes and types of loaded values, clustering/partitioning rules, MERGE source uniqueness)
// and executes the SQL on one in-memory SQLite database per dataset. MERGE is executed for the shape
// the code emits. Error messages carry UPSTREAM-DETAIL so tests can prove none reaches a caller.
import { createVerify, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import SqliteDatabase from 'better-sqlite3'
import type { BigQueryConfig } from '../../src/core/config.js'
import type { Db } from '../../src/core/db/database.js'
import { createBigQueryHome, useBigQueryHome, type BigQueryHome } from '../../src/core/datasets/index.js'
import { createEgressClient } from '../../src/core/http/egress.js'
import { makeServiceAccount, type ServiceAccountFixture } from '../integrations/fakes.js'

export const UPSTREAM_DETAIL = 'UPSTREAM-DETAIL'
const PARAM_TYPES = new Set(['STRING', 'INT64', 'FLOAT64', 'BOOL', 'DATE', 'TIMESTAMP'])
const FIELD_TYPES = new Set(['STRING', 'INT64', 'INTEGER', 'FLOAT64', 'FLOAT', 'BOOL', 'BOOLEAN', 'DATE', 'TIMESTAMP', 'JSON', 'NUMERIC'])
const CLUSTER_TYPES = new Set(['STRING', 'INT64', 'INTEGER', 'BOOL', 'BOOLEAN', 'DATE', 'TIMESTAMP', 'NUMERIC'])
/** SQLite declared types that keep each BigQuery type's affinity and can be read back. */
const DECL: Record<string, string> = {
  STRING: 'BQ_STRING_TEXT', JSON: 'BQ_STRING_TEXT', INT64: 'BQ_INT64', INTEGER: 'BQ_INT64', FLOAT64: 'BQ_FLOAT64', FLOAT: 'BQ_FLOAT64',
  BOOL: 'BQ_BOOL_INT', BOOLEAN: 'BQ_BOOL_INT', DATE: 'BQ_DATE_TEXT', TIMESTAMP: 'BQ_TIMESTAMP_TEXT', NUMERIC: 'BQ_FLOAT64',
}
const FROM_DECL: Record<string, string> = {
  BQ_STRING_TEXT: 'STRING', BQ_INT64: 'INT64', BQ_FLOAT64: 'FLOAT64', BQ_BOOL_INT: 'BOOL', BQ_DATE_TEXT: 'DATE', BQ_TIMESTAMP_TEXT: 'TIMESTAMP',
}

interface Field {
  name: string
  type: string
  mode?: string
}

interface Table {
  schema: Field[]
  expirationTime?: string
  timePartitioning?: { type: string; field?: string }
  clustering?: { fields: string[] }
  labels?: Record<string, string>
}

interface Dataset {
  sqlite: SqliteDatabase.Database
  tables: Map<string, Table>
  labels: Record<string, string>
  location: string
}

export interface ReceivedJob {
  kind: 'query' | 'load'
  jobId: string
  sql?: string
  params?: { name: string; type: string; value: string | null }[]
  defaultDataset?: string
  maximumBytesBilled?: string
  jobTimeoutMs?: string
  destination?: string
  rows?: number
}

interface StoredJob {
  resource: Record<string, unknown>
  fields: Field[]
  rows: unknown[][]
  error?: { reason: string }
  polls: number
}

export interface Failure {
  status: number
  reason: string
  /** Only requests whose "METHOD path" contains this string. */
  match?: string
}

export interface FakeBigQuery {
  url: string
  project: string
  location: string
  serviceAccount: ServiceAccountFixture
  /** Every request, in order ("METHOD path"). */
  calls: string[]
  jobs: ReceivedJob[]
  tokensIssued: number
  /** Bytes every query "processes" (compared with maximumBytesBilled). */
  bytesProcessed: number
  /** Answer the next `count` matching calls with this error. */
  fail(count: number, failure: Failure): void
  /** Drop every injected failure not yet used. */
  clearFailures(): void
  datasetNames(): string[]
  dataset(name: string): { tables: Map<string, Table>; labels: Record<string, string>; location: string } | undefined
  /** Every staging table ever created, with its expirationTime. */
  stagingTables: { name: string; expirationTime?: string }[]
  close(): Promise<void>
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

class BqError extends Error {
  constructor(readonly status: number, readonly reason: string, detail = '') {
    super(`${detail} ${UPSTREAM_DETAIL}`.trim())
  }
}

function errorBody(status: number, reason: string, message: string) {
  return { error: { code: status, message, errors: [{ message, domain: 'global', reason }], status: status === 404 ? 'NOT_FOUND' : 'INVALID_ARGUMENT' } }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function checkValue(type: string, v: unknown, where: string): unknown {
  const bad = () => {
    throw new BqError(400, 'invalid', `${where}: could not parse value as ${type}`)
  }
  switch (type) {
    case 'STRING':
    case 'JSON':
      if (typeof v !== 'string') bad()
      return v
    case 'INT64':
    case 'INTEGER':
      if (typeof v === 'number' && Number.isSafeInteger(v)) return v
      if (typeof v === 'string' && /^-?\d{1,19}$/.test(v)) return Number(v)
      return bad()
    case 'FLOAT64':
    case 'FLOAT':
    case 'NUMERIC':
      if (typeof v === 'number' && Number.isFinite(v)) return v
      if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
      return bad()
    case 'BOOL':
    case 'BOOLEAN':
      if (v === true || v === 'true') return 1
      if (v === false || v === 'false') return 0
      return bad()
    case 'DATE':
      if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v)) bad()
      return v
    case 'TIMESTAMP': {
      const t = typeof v === 'string' ? Date.parse(v) : NaN
      if (Number.isNaN(t)) bad()
      return new Date(t).toISOString()
    }
    default:
      return bad()
  }
}

function outCell(type: string, v: unknown): string | null {
  if (v === null || v === undefined) return null
  if (type === 'BOOL') return v === 1 || v === true ? 'true' : 'false'
  if (type === 'TIMESTAMP') return String(Date.parse(String(v)) * 1000)
  return String(v)
}

function inferType(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? 'INT64' : 'FLOAT64'
  if (typeof v === 'bigint') return 'INT64'
  return 'STRING'
}

/** The fake's SQLite dialect for the SQL the dataset home emits (casts only; everything else runs as is). */
function toSqlite(sql: string): string {
  return sql
    .replace(/\bAS STRING\)/g, 'AS TEXT)')
    .replace(/\bAS FLOAT64\)/g, 'AS REAL)')
    .replace(/\bAS INT64\)/g, 'AS INTEGER)')
    .replace(/\bAS BOOL\)/g, 'AS INTEGER)')
}

const MERGE = /^MERGE `(\w+)`\.`(\w+)` AS T USING `(\w+)`\.`(\w+)` AS S ON (.+?)(?: WHEN MATCHED THEN UPDATE SET (.+?))? WHEN NOT MATCHED THEN INSERT \((.+?)\) VALUES \((.+?)\)( WHEN NOT MATCHED BY SOURCE THEN DELETE)?$/

export async function startFakeBigQuery(opts: { project?: string; location?: string; pageRows?: number } = {}): Promise<FakeBigQuery> {
  const project = opts.project ?? 'tf-warehouse-1'
  const location = opts.location ?? 'EU'
  const pageRows = opts.pageRows ?? 100
  const datasets = new Map<string, Dataset>()
  const jobsById = new Map<string, StoredJob>()
  const tokens = new Set<string>()
  const failures: (Failure & { left: number })[] = []
  let url = ''
  let sa: ServiceAccountFixture | null = null
  const fake: FakeBigQuery = {
    url: '',
    project,
    location,
    serviceAccount: null as unknown as ServiceAccountFixture,
    calls: [],
    jobs: [],
    tokensIssued: 0,
    bytesProcessed: 0,
    stagingTables: [],
    fail(count, failure) {
      failures.push({ ...failure, left: count })
    },
    clearFailures() {
      failures.length = 0
    },
    datasetNames: () => [...datasets.keys()].sort(),
    dataset: (name) => datasets.get(name),
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()))
      for (const d of datasets.values()) d.sqlite.close()
    },
  }

  function getDataset(name: string): Dataset {
    const d = datasets.get(name)
    if (!d) throw new BqError(404, 'notFound', `Not found: Dataset ${project}:${name}`)
    return d
  }

  function getTable(d: Dataset, dsName: string, name: string): Table {
    const t = d.tables.get(name)
    if (!t) throw new BqError(404, 'notFound', `Not found: Table ${project}:${dsName}.${name}`)
    return t
  }

  function createTable(dsName: string, body: Record<string, unknown>): Table {
    const d = getDataset(dsName)
    const ref = body.tableReference as { projectId?: string; datasetId?: string; tableId?: string } | undefined
    if (!ref || ref.projectId !== project || ref.datasetId !== dsName || !ref.tableId || !/^[A-Za-z0-9_]{1,1024}$/.test(ref.tableId)) throw new BqError(400, 'invalid', 'bad tableReference')
    if (d.tables.has(ref.tableId)) throw new BqError(409, 'duplicate', `Already Exists: Table ${ref.tableId}`)
    const schema = ((body.schema as { fields?: Field[] } | undefined)?.fields ?? []) as Field[]
    if (schema.length === 0) throw new BqError(400, 'invalid', 'schema required')
    for (const f of schema) {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,299}$/.test(f.name) || !FIELD_TYPES.has(f.type)) throw new BqError(400, 'invalid', 'bad field')
      if (f.mode && !['NULLABLE', 'REQUIRED'].includes(f.mode)) throw new BqError(400, 'invalid', 'bad mode')
    }
    const tp = body.timePartitioning as Table['timePartitioning']
    if (tp) {
      const f = schema.find((x) => x.name === tp.field)
      if (tp.type !== 'DAY' || !f || !['DATE', 'TIMESTAMP'].includes(f.type)) throw new BqError(400, 'invalid', 'bad timePartitioning')
    }
    const cl = body.clustering as Table['clustering']
    if (cl) {
      if (!Array.isArray(cl.fields) || cl.fields.length === 0 || cl.fields.length > 4) throw new BqError(400, 'invalid', 'clustering: 1..4 fields')
      for (const name of cl.fields) {
        const f = schema.find((x) => x.name === name)
        if (!f || !CLUSTER_TYPES.has(f.type)) throw new BqError(400, 'invalid', 'clustering field type')
      }
    }
    const expirationTime = body.expirationTime as string | undefined
    if (expirationTime !== undefined && !/^\d+$/.test(expirationTime)) throw new BqError(400, 'invalid', 'expirationTime')
    const cols = schema.map((f) => `"${f.name}" ${DECL[f.type]}${f.mode === 'REQUIRED' ? ' NOT NULL' : ''}`)
    d.sqlite.exec(`CREATE TABLE "${ref.tableId}" (${cols.join(', ')})`)
    const t: Table = { schema, expirationTime, timePartitioning: tp, clustering: cl, labels: body.labels as Record<string, string> | undefined }
    d.tables.set(ref.tableId, t)
    if (ref.tableId.startsWith('tenantflow_stage_')) fake.stagingTables.push({ name: ref.tableId, expirationTime })
    return t
  }

  function patchTable(dsName: string, name: string, body: Record<string, unknown>): Table {
    const d = getDataset(dsName)
    const t = getTable(d, dsName, name)
    const next = ((body.schema as { fields?: Field[] } | undefined)?.fields ?? []) as Field[]
    for (const old of t.schema) {
      const n = next.find((f) => f.name === old.name)
      if (!n) throw new BqError(400, 'invalid', `Provided Schema does not match Table. Field ${old.name} is missing in new schema`)
      if (n.type !== old.type || (n.mode ?? 'NULLABLE') !== (old.mode ?? 'NULLABLE')) throw new BqError(400, 'invalid', `Provided Schema does not match Table. Field ${old.name} has changed`)
    }
    for (const f of next.filter((x) => !t.schema.some((o) => o.name === x.name))) {
      if ((f.mode ?? 'NULLABLE') !== 'NULLABLE' || !FIELD_TYPES.has(f.type)) throw new BqError(400, 'invalid', 'new fields must be NULLABLE')
      d.sqlite.exec(`ALTER TABLE "${name}" ADD COLUMN "${f.name}" ${DECL[f.type]}`)
      t.schema.push(f)
    }
    return t
  }

  function tableResource(dsName: string, name: string, t: Table) {
    return { kind: 'bigquery#table', tableReference: { projectId: project, datasetId: dsName, tableId: name }, schema: { fields: t.schema }, ...(t.expirationTime ? { expirationTime: t.expirationTime } : {}) }
  }

  function jobResource(jobId: string, config: unknown, state: string, error?: { reason: string }) {
    return {
      kind: 'bigquery#job',
      jobReference: { projectId: project, jobId, location },
      configuration: config,
      status: { state, ...(error ? { errorResult: { reason: error.reason, message: `job failed ${UPSTREAM_DETAIL}` }, errors: [{ reason: error.reason, message: UPSTREAM_DETAIL }] } : {}) },
    }
  }

  function runSql(ds: Dataset, dsName: string, sql: string, params: Record<string, unknown>): { fields: Field[]; rows: unknown[][] } {
    // Every `dataset`. qualifier must be the job's dataset; then it is dropped (one SQLite database per dataset).
    for (const m of sql.matchAll(/`([^`]+)`\s*\.\s*`/g)) {
      if (m[1] !== dsName) throw new BqError(400, 'invalidQuery', `cross-dataset reference to ${m[1]}`)
    }
    if (/\bINFORMATION_SCHEMA\b/i.test(sql)) throw new BqError(400, 'invalidQuery', 'INFORMATION_SCHEMA reached the warehouse')
    const merge = MERGE.exec(sql)
    if (merge) return runMerge(ds, dsName, merge)
    const text = toSqlite(sql.replace(new RegExp(`\`${dsName}\`\\.`, 'g'), ''))
    try {
      const stmt = ds.sqlite.prepare(text)
      const args = Object.keys(params).length ? [params] : []
      if (!stmt.reader) {
        stmt.run(...args)
        return { fields: [], rows: [] }
      }
      const cols = stmt.columns()
      const raw = stmt.raw(true).all(...args) as unknown[][]
      const fields = cols.map((c, i) => ({ name: c.name, type: (c.type && FROM_DECL[c.type]) || inferType(raw.find((r) => r[i] !== null)?.[i]) }))
      return { fields, rows: raw.map((r) => r.map((v, i) => outCell(fields[i]!.type, v))) }
    } catch (err) {
      if (err instanceof BqError) throw err
      throw new BqError(400, 'invalidQuery', `Syntax error: ${(err as Error).message}`)
    }
  }

  function runMerge(ds: Dataset, dsName: string, m: RegExpExecArray): { fields: Field[]; rows: unknown[][] } {
    const [, tds, target, sds, source, on, set, insertCols, values, deleteBySource] = m
    if (tds !== dsName || sds !== dsName) throw new BqError(400, 'invalidQuery', 'cross-dataset MERGE')
    getTable(ds, dsName, target!)
    getTable(ds, dsName, source!)
    const keys = on!.split(' AND ').map((c) => {
      const k = /^T\.`(\w+)` = S\.`(\w+)`$/.exec(c)
      if (!k || k[1] !== k[2]) throw new BqError(400, 'invalidQuery', 'unsupported MERGE condition')
      return k[1]!
    })
    const cond = keys.map((k) => `T."${k}" = S."${k}"`).join(' AND ')
    const dup = ds.sqlite.prepare(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM "${source}" GROUP BY ${keys.map((k) => `"${k}"`).join(', ')} HAVING COUNT(*) > 1)`).get() as { n: number }
    if (dup.n > 0) throw new BqError(400, 'invalidQuery', 'UPDATE/MERGE must match at most one source row for each target row')
    const q = (s: string) => s.replace(/`/g, '"')
    ds.sqlite.transaction(() => {
      if (deleteBySource) ds.sqlite.prepare(`DELETE FROM "${target}" AS T WHERE NOT EXISTS (SELECT 1 FROM "${source}" AS S WHERE ${cond})`).run()
      if (set) ds.sqlite.prepare(`UPDATE "${target}" AS T SET ${q(set)} FROM "${source}" AS S WHERE ${cond}`).run()
      ds.sqlite.prepare(`INSERT INTO "${target}" (${q(insertCols!)}) SELECT ${q(values!)} FROM "${source}" AS S WHERE NOT EXISTS (SELECT 1 FROM "${target}" AS T WHERE ${cond})`).run()
    })()
    return { fields: [], rows: [] }
  }

  function queryJob(body: Record<string, unknown>): Record<string, unknown> {
    const ref = body.jobReference as { projectId?: string; jobId?: string; location?: string } | undefined
    if (!ref || ref.projectId !== project || !ref.jobId || !/^[A-Za-z0-9_-]{1,1024}$/.test(ref.jobId)) throw new BqError(400, 'invalid', 'jobReference')
    if (jobsById.has(ref.jobId)) throw new BqError(409, 'duplicate', `Already Exists: Job ${ref.jobId}`)
    if (ref.location !== location) throw new BqError(400, 'invalid', 'job location')
    const config = body.configuration as { query?: Record<string, unknown>; jobTimeoutMs?: string } | undefined
    const qc = config?.query
    if (!qc || typeof qc.query !== 'string') throw new BqError(400, 'invalid', 'configuration.query')
    if (qc.useLegacySql !== false) throw new BqError(400, 'invalid', 'legacy SQL')
    if (typeof qc.maximumBytesBilled !== 'string' || !/^\d+$/.test(qc.maximumBytesBilled)) throw new BqError(400, 'invalid', 'maximumBytesBilled missing')
    const dd = qc.defaultDataset as { projectId?: string; datasetId?: string } | undefined
    if (!dd || dd.projectId !== project || typeof dd.datasetId !== 'string') throw new BqError(400, 'invalid', 'defaultDataset missing')
    const job: ReceivedJob = { kind: 'query', jobId: ref.jobId, sql: qc.query, defaultDataset: dd.datasetId, maximumBytesBilled: qc.maximumBytesBilled, jobTimeoutMs: config?.jobTimeoutMs, params: [] }
    fake.jobs.push(job)
    const ds = getDataset(dd.datasetId)
    const used = new Set([...qc.query.matchAll(/@(\w+)/g)].map((x) => x[1]!))
    const params: Record<string, unknown> = {}
    const list = (qc.queryParameters ?? []) as { name?: string; parameterType?: { type?: string }; parameterValue?: { value?: unknown } }[]
    if (list.length > 0 && qc.parameterMode !== 'NAMED') throw new BqError(400, 'invalid', 'parameterMode must be NAMED')
    for (const p of list) {
      const type = p.parameterType?.type ?? ''
      if (!p.name || !/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(p.name) || p.name in params) throw new BqError(400, 'invalid', 'parameter name')
      if (!PARAM_TYPES.has(type)) throw new BqError(400, 'invalid', `parameter type ${type}`)
      const raw = p.parameterValue?.value
      if (raw !== undefined && typeof raw !== 'string') throw new BqError(400, 'invalid', 'parameter values are strings')
      params[p.name] = raw === undefined ? null : checkValue(type, raw, `parameter ${p.name}`)
      job.params!.push({ name: p.name, type, value: raw ?? null })
    }
    for (const name of used) if (!(name in params)) throw new BqError(400, 'invalidQuery', `Query parameter '${name}' not found`)
    for (const name of Object.keys(params)) if (!used.has(name)) delete params[name]
    let stored: StoredJob
    if (fake.bytesProcessed > Number(qc.maximumBytesBilled)) {
      stored = { resource: jobResource(ref.jobId, config, 'DONE', { reason: 'bytesBilledLimitExceeded' }), fields: [], rows: [], error: { reason: 'bytesBilledLimitExceeded' }, polls: 0 }
    } else {
      try {
        const r = runSql(ds, dd.datasetId, qc.query, params)
        stored = { resource: jobResource(ref.jobId, config, 'DONE'), fields: r.fields, rows: r.rows, polls: 0 }
      } catch (err) {
        if (!(err instanceof BqError)) throw err
        stored = { resource: jobResource(ref.jobId, config, 'DONE', { reason: err.reason }), fields: [], rows: [], error: { reason: err.reason }, polls: 0 }
      }
    }
    jobsById.set(ref.jobId, stored)
    return { ...stored.resource, status: { state: 'RUNNING' } }
  }

  function loadJob(req: IncomingMessage, raw: Buffer): Record<string, unknown> {
    const boundary = /boundary=([^;]+)/.exec(req.headers['content-type'] ?? '')?.[1]
    if (!req.headers['content-type']?.startsWith('multipart/related') || !boundary) throw new BqError(400, 'invalid', 'multipart/related required')
    const parts = raw.toString('utf8').split(`--${boundary}`).slice(1, -1).map((p) => {
      const sep = p.indexOf('\r\n\r\n')
      return p.slice(sep + 4).replace(/\r\n$/, '')
    })
    if (parts.length !== 2) throw new BqError(400, 'invalid', 'two parts required')
    const body = JSON.parse(parts[0]!) as Record<string, unknown>
    const ref = body.jobReference as { projectId?: string; jobId?: string; location?: string } | undefined
    if (!ref?.jobId || ref.projectId !== project || ref.location !== location) throw new BqError(400, 'invalid', 'jobReference')
    if (jobsById.has(ref.jobId)) throw new BqError(409, 'duplicate', 'Already Exists: Job')
    const config = body.configuration as { load?: Record<string, unknown> } | undefined
    const lc = config?.load
    const dest = lc?.destinationTable as { projectId?: string; datasetId?: string; tableId?: string } | undefined
    if (!lc || lc.sourceFormat !== 'NEWLINE_DELIMITED_JSON' || !dest || dest.projectId !== project) throw new BqError(400, 'invalid', 'configuration.load')
    const d = getDataset(dest.datasetId ?? '')
    const t = getTable(d, dest.datasetId!, dest.tableId ?? '')
    const lines = parts[1]!.split('\n').filter((l) => l.trim() !== '')
    fake.jobs.push({ kind: 'load', jobId: ref.jobId, destination: `${dest.datasetId}.${dest.tableId}`, rows: lines.length })
    let stored: StoredJob
    try {
      const rows = lines.map((line, n) => {
        const obj = JSON.parse(line) as Record<string, unknown>
        for (const k of Object.keys(obj)) if (!t.schema.some((f) => f.name === k)) throw new BqError(400, 'invalid', `row ${n}: no such field ${k}`)
        return t.schema.map((f) => {
          const v = obj[f.name]
          if (v === null || v === undefined) {
            if (f.mode === 'REQUIRED') throw new BqError(400, 'invalid', `row ${n}: missing required field ${f.name}`)
            return null
          }
          return checkValue(f.type, v, `row ${n} field ${f.name}`)
        })
      })
      const insert = d.sqlite.prepare(`INSERT INTO "${dest.tableId}" (${t.schema.map((f) => `"${f.name}"`).join(', ')}) VALUES (${t.schema.map(() => '?').join(', ')})`)
      if (lc.writeDisposition === 'WRITE_TRUNCATE') d.sqlite.prepare(`DELETE FROM "${dest.tableId}"`).run()
      d.sqlite.transaction(() => rows.forEach((r) => insert.run(...r)))()
      stored = { resource: jobResource(ref.jobId, config, 'DONE'), fields: [], rows: [], polls: 0 }
    } catch (err) {
      if (!(err instanceof BqError)) throw err
      stored = { resource: jobResource(ref.jobId, config, 'DONE', { reason: err.reason }), fields: [], rows: [], error: { reason: err.reason }, polls: 0 }
    }
    jobsById.set(ref.jobId, stored)
    return { ...stored.resource, status: { state: 'RUNNING' } }
  }

  function queryResults(jobId: string, q: URLSearchParams): Record<string, unknown> {
    const job = jobsById.get(jobId)
    if (!job) throw new BqError(404, 'notFound', `Not found: Job ${jobId}`)
    if (q.get('location') !== location) throw new BqError(404, 'notFound', 'Not found: Job (wrong location)')
    // The first poll finds the job still running, as a real long query would.
    if (job.polls++ === 0) return { kind: 'bigquery#getQueryResultsResponse', jobReference: { projectId: project, jobId, location }, jobComplete: false }
    if (job.error) throw new BqError(400, job.error.reason, 'job failed')
    const max = Math.min(Number(q.get('maxResults') ?? pageRows), pageRows)
    const start = Number(q.get('pageToken') ?? 0)
    const slice = job.rows.slice(start, start + max)
    const next = start + max < job.rows.length ? String(start + max) : undefined
    return {
      kind: 'bigquery#getQueryResultsResponse',
      jobReference: { projectId: project, jobId, location },
      jobComplete: true,
      schema: { fields: job.fields },
      totalRows: String(job.rows.length),
      rows: slice.map((r) => ({ f: r.map((v) => ({ v })) })),
      ...(next ? { pageToken: next } : {}),
    }
  }

  function token(body: string): Record<string, unknown> {
    const form = new URLSearchParams(body)
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') throw Object.assign(new Error('grant'), { oauth: 'unsupported_grant_type' })
    const [h, c, s] = (form.get('assertion') ?? '').split('.')
    const ok = !!h && !!c && !!s && createVerify('RSA-SHA256').update(`${h}.${c}`).verify(sa!.publicKeyPem, Buffer.from(s, 'base64url'))
    if (!ok) throw Object.assign(new Error('sig'), { oauth: 'invalid_grant' })
    const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>
    const claims = JSON.parse(Buffer.from(c!, 'base64url').toString()) as Record<string, unknown>
    const now = Math.floor(Date.now() / 1000)
    if (
      header.alg !== 'RS256' || claims.iss !== sa!.clientEmail || claims.aud !== `${url}/token` ||
      typeof claims.scope !== 'string' || !claims.scope.split(' ').includes('https://www.googleapis.com/auth/bigquery') ||
      typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || Math.abs(claims.iat - now) > 300 || claims.exp - claims.iat > 3600
    ) {
      throw Object.assign(new Error('claims'), { oauth: 'invalid_grant' })
    }
    const t = `ya29.${randomBytes(24).toString('base64url')}`
    tokens.add(t)
    fake.tokensIssued++
    return { access_token: t, expires_in: 3599, token_type: 'Bearer' }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x')
    const path = u.pathname
    const raw = await readBody(req)
    const call = `${req.method} ${path}`
    fake.calls.push(call)
    if (req.method === 'POST' && path === '/token') {
      try {
        return send(res, 200, token(raw.toString('utf8')))
      } catch (err) {
        return send(res, 400, { error: (err as { oauth?: string }).oauth ?? 'invalid_request', error_description: UPSTREAM_DETAIL })
      }
    }
    const injected = failures.find((f) => f.left > 0 && (!f.match || call.includes(f.match)))
    if (injected) {
      injected.left--
      return send(res, injected.status, errorBody(injected.status, injected.reason, `injected ${UPSTREAM_DETAIL}`))
    }
    const auth = req.headers.authorization ?? ''
    if (!auth.startsWith('Bearer ') || !tokens.has(auth.slice(7))) return send(res, 401, errorBody(401, 'authError', 'Request had invalid authentication credentials.'))
    try {
      const prefix = `/bigquery/v2/projects/${project}`
      const upload = `/upload/bigquery/v2/projects/${project}/jobs`
      const json = () => (raw.length ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {})
      if (req.method === 'POST' && path === upload) {
        if (u.searchParams.get('uploadType') !== 'multipart') throw new BqError(400, 'invalid', 'uploadType')
        return send(res, 200, loadJob(req, raw))
      }
      if (!path.startsWith(`${prefix}/`)) throw new BqError(404, 'notFound', 'Not found: Project')
      const rest = path.slice(prefix.length)
      let m: RegExpExecArray | null
      if (req.method === 'GET' && rest === '/datasets') return send(res, 200, { kind: 'bigquery#datasetList', datasets: [...datasets.keys()].slice(0, Number(u.searchParams.get('maxResults') ?? 50)).map((id) => ({ datasetReference: { projectId: project, datasetId: id } })) })
      if (req.method === 'POST' && rest === '/datasets') {
        const b = json()
        const ref = b.datasetReference as { projectId?: string; datasetId?: string } | undefined
        if (!ref || ref.projectId !== project || !ref.datasetId || !/^[A-Za-z0-9_]{1,1024}$/.test(ref.datasetId)) throw new BqError(400, 'invalid', 'datasetReference')
        if (b.location !== location) throw new BqError(400, 'invalid', 'location')
        if (datasets.has(ref.datasetId)) throw new BqError(409, 'duplicate', `Already Exists: Dataset ${ref.datasetId}`)
        const labels = (b.labels ?? {}) as Record<string, string>
        for (const [k, v] of Object.entries(labels)) if (!/^[a-z][a-z0-9_-]{0,62}$/.test(k) || !/^[a-z0-9_-]{0,63}$/.test(v)) throw new BqError(400, 'invalid', 'label')
        datasets.set(ref.datasetId, { sqlite: new SqliteDatabase(':memory:'), tables: new Map(), labels, location })
        return send(res, 200, { kind: 'bigquery#dataset', datasetReference: ref, location, labels })
      }
      if ((m = /^\/datasets\/(\w+)$/.exec(rest))) {
        const d = getDataset(m[1]!)
        if (req.method === 'GET') return send(res, 200, { kind: 'bigquery#dataset', datasetReference: { projectId: project, datasetId: m[1] }, location: d.location, labels: d.labels })
        if (req.method === 'DELETE') {
          if (d.tables.size > 0 && u.searchParams.get('deleteContents') !== 'true') throw new BqError(400, 'resourceInUse', 'Dataset is still in use')
          d.sqlite.close()
          datasets.delete(m[1]!)
          res.writeHead(204).end()
          return
        }
      }
      if ((m = /^\/datasets\/(\w+)\/tables$/.exec(rest)) && req.method === 'GET') {
        // tables.list, paged by pageToken (an offset) with maxResults.
        const names = [...getDataset(m[1]!).tables.keys()].sort()
        const max = Math.min(Number(u.searchParams.get('maxResults') ?? 50), 2)
        const start = Number(u.searchParams.get('pageToken') ?? 0)
        const next = start + max < names.length ? String(start + max) : undefined
        return send(res, 200, { kind: 'bigquery#tableList', totalItems: names.length, tables: names.slice(start, start + max).map((id) => ({ tableReference: { projectId: project, datasetId: m![1], tableId: id } })), ...(next ? { nextPageToken: next } : {}) })
      }
      if ((m = /^\/datasets\/(\w+)\/tables$/.exec(rest)) && req.method === 'POST') {
        const t = createTable(m[1]!, json())
        return send(res, 200, tableResource(m[1]!, (json().tableReference as { tableId: string }).tableId, t))
      }
      if ((m = /^\/datasets\/(\w+)\/tables\/(\w+)$/.exec(rest))) {
        const [, dsName, name] = m as unknown as [string, string, string]
        if (req.method === 'GET') return send(res, 200, tableResource(dsName, name, getTable(getDataset(dsName), dsName, name)))
        if (req.method === 'PATCH') return send(res, 200, tableResource(dsName, name, patchTable(dsName, name, json())))
        if (req.method === 'DELETE') {
          const d = getDataset(dsName)
          getTable(d, dsName, name)
          d.tables.delete(name)
          d.sqlite.exec(`DROP TABLE "${name}"`)
          res.writeHead(204).end()
          return
        }
      }
      if (req.method === 'POST' && rest === '/jobs') return send(res, 200, queryJob(json()))
      if (req.method === 'GET' && (m = /^\/jobs\/([\w-]+)$/.exec(rest))) {
        const job = jobsById.get(m[1]!)
        if (!job) throw new BqError(404, 'notFound', 'Not found: Job')
        return send(res, 200, job.resource)
      }
      if (req.method === 'GET' && (m = /^\/queries\/([\w-]+)$/.exec(rest))) return send(res, 200, queryResults(m[1]!, u.searchParams))
      throw new BqError(404, 'notFound', `Not found: ${call}`)
    } catch (err) {
      if (err instanceof BqError) return send(res, err.status, errorBody(err.status, err.reason, err.message))
      return send(res, 500, errorBody(500, 'internalError', `${(err as Error).message} ${UPSTREAM_DETAIL}`))
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  sa = makeServiceAccount(`${url}/token`, project)
  fake.url = url
  fake.serviceAccount = sa
  return fake
}

/** The BigQuery settings (as loadConfig would build them) pointing at a fake. */
export function fakeBigQueryConfig(fake: FakeBigQuery, extra: Partial<BigQueryConfig> = {}): BigQueryConfig {
  return {
    project: fake.project,
    location: fake.location,
    credentialsJson: fake.serviceAccount.json,
    apiEndpoint: fake.url,
    tokenUrl: null,
    maxBytesBilled: 1024 ** 3,
    jobTimeoutMs: 60_000,
    ...extra,
  }
}

/** The environment variables that select the fake as the dataset home. */
export function fakeBigQueryEnv(fake: FakeBigQuery): Record<string, string> {
  return {
    DATASET_BACKEND: 'bigquery',
    BIGQUERY_PROJECT: fake.project,
    BIGQUERY_LOCATION: fake.location,
    BIGQUERY_CREDENTIALS_JSON: fake.serviceAccount.json,
    BIGQUERY_API_ENDPOINT: fake.url,
  }
}

/** Makes `db`'s org datasets live in the fake (loopback egress, fast retries). */
export function attachFakeBigQuery(db: Db, fake: FakeBigQuery, extra: Partial<BigQueryConfig> = {}): { home: BigQueryHome; close(): Promise<void> } {
  const egress = createEgressClient({ allowLoopback: true, production: false, allowedHosts: [], timeoutMs: 60_000, maxSockets: 8 })
  const home = createBigQueryHome(fakeBigQueryConfig(fake, extra), egress, { baseDelayMs: 5 })
  useBigQueryHome(db, home)
  return { home, close: () => egress.close() }
}
