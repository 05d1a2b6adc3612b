// Query and load jobs in one org's BigQuery dataset. Every query job names the org's dataset as its
// default dataset, uses NAMED typed parameters only, carries maximumBytesBilled and a job timeout; a
// load job writes NDJSON (multipart upload) into a staging table of the same dataset.
import { DatasetError } from '../errors.js'
import { abortableSleep, BigQueryClient, jobError } from './client.js'
import type { BqField, QueryParameter } from './sql.js'

const POLL_MS = 10_000
const PAGE_ROWS = 1000
/** Time allowed on top of the job's own timeout for queueing and the last poll. */
const WAIT_MARGIN_MS = 30_000

export interface JobScope {
  client: BigQueryClient
  location: string
  /** The org's BigQuery dataset (bigQueryDatasetOf). */
  bqDataset: string
  maxBytesBilled: number
  jobTimeoutMs: number
  signal?: AbortSignal
  now: () => number
}

export interface QueryResult {
  fields: BqField[]
  rows: unknown[][]
}

interface ResultsPage {
  jobComplete?: boolean
  schema?: { fields?: BqField[] }
  rows?: { f?: { v?: unknown }[] }[]
  pageToken?: string
  errors?: unknown[]
}

function deadline(scope: JobScope): number {
  return scope.now() + scope.jobTimeoutMs + WAIT_MARGIN_MS
}

/** Runs one query job and reads at most maxRows rows (getQueryResults pages). */
export async function runQuery(scope: JobScope, query: string, params: QueryParameter[], maxRows: number): Promise<QueryResult> {
  const { client } = scope
  const jobId = BigQueryClient.jobId()
  const until = deadline(scope)
  await client.call({
    path: '/jobs',
    body: {
      jobReference: { projectId: client.project, jobId, location: scope.location },
      configuration: {
        jobTimeoutMs: String(scope.jobTimeoutMs),
        query: {
          query,
          useLegacySql: false,
          parameterMode: 'NAMED',
          queryParameters: params,
          defaultDataset: { projectId: client.project, datasetId: scope.bqDataset },
          maximumBytesBilled: String(scope.maxBytesBilled),
        },
      },
    },
    signal: scope.signal,
    deadline: until,
    duplicateIsSuccess: true,
  })
  const fields: BqField[] = []
  const rows: unknown[][] = []
  let pageToken: string | undefined
  let waits = 0
  for (;;) {
    if (scope.now() > until) throw new DatasetError('DATASET_UNAVAILABLE', 'bigquery job did not finish in BIGQUERY_JOB_TIMEOUT_MS')
    const query: Record<string, string> = {
      location: scope.location,
      timeoutMs: String(POLL_MS),
      maxResults: String(Math.min(PAGE_ROWS, Math.max(1, maxRows - rows.length))),
      'formatOptions.useInt64Timestamp': 'true',
    }
    if (pageToken) query.pageToken = pageToken
    const page = await client.call<ResultsPage>({ path: `/queries/${encodeURIComponent(jobId)}`, query, signal: scope.signal, deadline: until, notFound: 'QUERY_FAILED' })
    if (page.errors && page.errors.length > 0) throw jobError(page.errors[0])
    if (page.jobComplete !== true) {
      // getQueryResults already long-polls (timeoutMs); a service answering at once is not spun on.
      await abortableSleep(Math.min(2000, 50 * 2 ** Math.min(waits++, 6)), scope.signal).catch(() => {
        throw new DatasetError('WRITE_FENCED', 'bigquery query stopped: the step was stopped or its run no longer holds its lease')
      })
      continue
    }
    if (fields.length === 0) fields.push(...(page.schema?.fields ?? []))
    for (const r of page.rows ?? []) {
      const cells = r.f
      if (!Array.isArray(cells) || cells.length !== fields.length) throw new DatasetError('QUERY_FAILED', 'bigquery answered with malformed rows')
      rows.push(cells.map((c) => c?.v ?? null))
    }
    pageToken = typeof page.pageToken === 'string' && page.pageToken.length <= 4096 ? page.pageToken : undefined
    if (!pageToken || rows.length >= maxRows) return { fields, rows }
  }
}

interface JobResource {
  status?: { state?: string; errorResult?: unknown }
}

/** Loads NDJSON into `table` (a staging table of the scope's dataset) and waits for the job to finish. */
export async function runLoad(scope: JobScope, table: string, fields: BqField[], ndjson: string): Promise<void> {
  const { client } = scope
  const jobId = BigQueryClient.jobId()
  const until = deadline(scope)
  let job = await client.call<JobResource>({
    path: '/jobs',
    upload: {
      resource: {
        jobReference: { projectId: client.project, jobId, location: scope.location },
        configuration: {
          jobTimeoutMs: String(scope.jobTimeoutMs),
          load: {
            destinationTable: { projectId: client.project, datasetId: scope.bqDataset, tableId: table },
            sourceFormat: 'NEWLINE_DELIMITED_JSON',
            schema: { fields },
            createDisposition: 'CREATE_NEVER',
            writeDisposition: 'WRITE_APPEND',
            ignoreUnknownValues: false,
            maxBadRecords: 0,
          },
        },
      },
      data: ndjson,
    },
    signal: scope.signal,
    deadline: until,
    timeoutMs: 120_000,
    duplicateIsSuccess: true,
  })
  let polls = 0
  while (job.status?.state !== 'DONE') {
    if (scope.now() > until) throw new DatasetError('DATASET_UNAVAILABLE', 'bigquery load job did not finish in BIGQUERY_JOB_TIMEOUT_MS')
    if (polls++ > 0) {
      await abortableSleep(Math.min(2000, 100 * polls), scope.signal).catch(() => {
        throw new DatasetError('WRITE_FENCED', 'bigquery load stopped: the step was stopped or its run no longer holds its lease')
      })
    }
    job = await client.call<JobResource>({ path: `/jobs/${encodeURIComponent(jobId)}`, query: { location: scope.location }, signal: scope.signal, deadline: until, notFound: 'QUERY_FAILED' })
  }
  if (job.status.errorResult) throw jobError(job.status.errorResult)
}
