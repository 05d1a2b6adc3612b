// gcp.billing: reads the org's own Cloud Billing export table in BigQuery with the org's own service
// account (integration `gcp`; platform credentials are never used) → gcp_billing_daily, one row per
// (date, service, project, currency). The query is fixed; the table id is a validated identifier
// and the date a named query parameter (@date), never interpolated. The table comes from the org's
// gcp integration metadata (`billing_table`, checked again here) unless the template names one, so a
// shared template serves every tenant with its own export.
// BigQuery REST: POST {base}/bigquery/v2/projects/{project}/queries (jobs.query), then
// GET .../queries/{jobId} (jobs.getQueryResults) while jobComplete is false or a pageToken remains.
import { BILLING_LOCATION, BILLING_TABLE_ID, gcpAccessToken, parseServiceAccount, type ServiceAccountKey } from '../../integrations/providers/gcp.js'
import { ProviderCallError, type ProviderConfig } from '../../integrations/providers/types.js'
import type { EgressClient } from '../../http/types.js'
import type { TableSpec } from '../../datasets/types.js'
import { asObject, optInt, optString } from '../shared/config.js'
import { runDate } from '../shared/dates.js'
import { datasetOp } from '../shared/errors.js'
import { callJson, egressToProcessorError, joinBase, malformed } from '../shared/http.js'
import { ProcessorConfigError, ProcessorError, type Processor, type ProcessorContext } from '../types.js'

export const GCP_BILLING_SPEC: TableSpec = {
  name: 'gcp_billing_daily',
  columns: [
    { name: 'date', type: 'date' },
    { name: 'service', type: 'text' },
    { name: 'project_id', type: 'text' },
    { name: 'currency', type: 'text' },
    { name: 'cost', type: 'real' },
    { name: 'credits', type: 'real' },
    { name: 'net_cost', type: 'real' },
  ],
  naturalKey: ['date', 'service', 'project_id', 'currency'],
  dateColumn: 'date',
}

export interface GcpBillingConfig {
  /** Absent: the org's gcp integration metadata.billing_table. */
  billing_table?: string
  query_project?: string
  location?: string
  max_pages: number
}

const LABEL = 'BigQuery API'
const PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/
const LOCATION = BILLING_LOCATION
const POLL_TIMEOUT_MS = 10_000
const MAX_POLLS = 60

export function validateGcpBillingConfig(config: unknown): GcpBillingConfig {
  const o = asObject(config, '', ['billing_table', 'query_project', 'location', 'max_pages'])
  const billing_table = optString(o, 'billing_table', 'billing_table', { max: 300 })
  if (billing_table !== undefined && !BILLING_TABLE_ID.test(billing_table)) throw new ProcessorConfigError('billing_table', 'must be project.dataset.table')
  const query_project = optString(o, 'query_project', 'query_project', { max: 30, pattern: PROJECT })
  const location = optString(o, 'location', 'location', { max: 40, pattern: LOCATION })
  return {
    ...(billing_table ? { billing_table } : {}),
    ...(query_project ? { query_project } : {}),
    ...(location ? { location } : {}),
    max_pages: optInt(o, 'max_pages', 'max_pages', 1, 1000, 100),
  }
}

/** The only SQL this processor runs. The table id matched TABLE_ID, so backtick quoting is safe. */
export function billingQuery(table: string): string {
  if (!BILLING_TABLE_ID.test(table)) throw new ProcessorError('INVALID_DATA', 'Invalid billing table')
  return [
    'SELECT DATE(usage_start_time) AS usage_date,',
    "IFNULL(service.description, '') AS service,",
    "IFNULL(project.id, '') AS project_id,",
    'currency,',
    'SUM(cost) AS cost,',
    'SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS credits',
    `FROM \`${table}\``,
    'WHERE DATE(usage_start_time) = @date',
    'GROUP BY usage_date, service, project_id, currency',
  ].join(' ')
}

/** The org's own billing export, from its gcp integration metadata (checked at setup and here). */
function integrationTable(metadata: Record<string, unknown>): string {
  const t = metadata.billing_table
  if (typeof t !== 'string' || !BILLING_TABLE_ID.test(t)) {
    throw new ProcessorError('INTEGRATION_NOT_CONFIGURED', 'The gcp integration has no valid metadata.billing_table (project.dataset.table)')
  }
  return t
}

function integrationLocation(metadata: Record<string, unknown>): string | undefined {
  const l = metadata.billing_location
  return typeof l === 'string' && BILLING_LOCATION.test(l) ? l : undefined
}

export type TokenSource = (sa: ServiceAccountKey, http: EgressClient, signal: AbortSignal, nowMs: number) => Promise<string>

/** The default token source: the integrations module's JWT-bearer exchange. */
export function serviceAccountTokens(gcpTokenUri: string | null): TokenSource {
  // gcpAccessToken reads only providers.gcpTokenUri from its config.
  const cfg = { providers: { gcpTokenUri } } as unknown as ProviderConfig
  return (sa, http, signal, nowMs) => gcpAccessToken(sa, http, cfg, signal, nowMs)
}

interface GcpAccess {
  sa: ServiceAccountKey
  token: string
  metadata: Record<string, unknown>
}

async function accessToken(ctx: ProcessorContext, tokens: TokenSource): Promise<GcpAccess> {
  const cred = await ctx.getCredential()
  let sa: ServiceAccountKey
  try {
    sa = parseServiceAccount(cred.secret)
  } catch {
    throw new ProcessorError('CREDENTIAL_UNUSABLE', 'The gcp integration is not a usable service-account key')
  }
  try {
    return { sa, token: await tokens(sa, ctx.http, ctx.signal, ctx.now()), metadata: cred.metadata ?? {} }
  } catch (err) {
    const code = err instanceof ProviderCallError ? err.code : null
    if (code === 'UNAUTHORIZED') throw new ProcessorError('UNAUTHORIZED', 'GCP token exchange: credential rejected')
    if (code === 'TIMEOUT') throw new ProcessorError('TIMEOUT', 'GCP token exchange: timed out', { retryable: true })
    if (code === 'UNREACHABLE') throw new ProcessorError('UNREACHABLE', 'GCP token exchange: unreachable', { retryable: true })
    if (code) throw new ProcessorError('UPSTREAM_ERROR', 'GCP token exchange failed', { retryable: true })
    throw egressToProcessorError(err, 'GCP token exchange')
  }
}

interface QueryPage {
  jobComplete: boolean
  rows: unknown[][]
  pageToken: string | null
  jobId: string
  location: string | null
}

function parsePage(body: unknown, fieldCount: number): QueryPage {
  const b = body as Record<string, unknown> | null
  if (!b || typeof b !== 'object') throw malformed(LABEL, 'body')
  const job = b.jobReference as Record<string, unknown> | undefined
  if (!job || typeof job.jobId !== 'string' || !/^[A-Za-z0-9_-]{1,1024}$/.test(job.jobId)) throw malformed(LABEL, 'jobReference')
  const location = typeof job.location === 'string' && LOCATION.test(job.location) ? job.location : null
  if (b.jobComplete === false) return { jobComplete: false, rows: [], pageToken: null, jobId: job.jobId, location }
  const rawRows = b.rows === undefined ? [] : b.rows
  if (!Array.isArray(rawRows)) throw malformed(LABEL, 'rows')
  const rows = rawRows.map((r) => {
    const f = (r as { f?: unknown })?.f
    if (!Array.isArray(f) || f.length !== fieldCount) throw malformed(LABEL, 'row cells')
    return f.map((cell) => (cell as { v?: unknown })?.v ?? null)
  })
  const token = b.pageToken
  if (token !== undefined && token !== null && (typeof token !== 'string' || token.length > 4096)) throw malformed(LABEL, 'pageToken')
  return { jobComplete: true, rows, pageToken: (token as string | undefined) || null, jobId: job.jobId, location }
}

function toRow(cells: unknown[], date: string): Record<string, unknown> {
  const [d, service, project, currency, cost, credits] = cells
  const num = (v: unknown) => {
    const n = typeof v === 'string' ? Number(v) : NaN
    if (!Number.isFinite(n)) throw malformed(LABEL, 'numeric cell')
    return n
  }
  if (d !== date || typeof service !== 'string' || typeof project !== 'string' || typeof currency !== 'string' || currency.length > 8) {
    throw malformed(LABEL, 'row values')
  }
  const c = num(cost)
  const cr = credits === null ? 0 : num(credits)
  return { date, service, project_id: project, currency, cost: c, credits: cr, net_cost: Math.round((c + cr) * 1e9) / 1e9 }
}

export function createGcpBillingProcessor(opts: { bigqueryBaseUrl: string; tokens: TokenSource }): Processor<GcpBillingConfig> {
  return {
    name: 'gcp.billing',
    description: "GCP billing export (BigQuery) read with the org's own service account → gcp_billing_daily",
    integration: 'gcp',
    validateConfig: validateGcpBillingConfig,
    async run(ctx, config) {
      const date = runDate(ctx)
      const { sa, token, metadata } = await accessToken(ctx, opts.tokens)
      const table = config.billing_table ?? integrationTable(metadata)
      const location = config.location ?? integrationLocation(metadata)
      const project = config.query_project ?? sa.project_id
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
      const jobsBase = joinBase(opts.bigqueryBaseUrl, `/bigquery/v2/projects/${encodeURIComponent(project)}/queries`)
      const request = {
        query: billingQuery(table),
        useLegacySql: false,
        parameterMode: 'NAMED',
        queryParameters: [{ name: 'date', parameterType: { type: 'DATE' }, parameterValue: { value: date } }],
        timeoutMs: POLL_TIMEOUT_MS,
        maxResults: 1000,
        ...(location ? { location } : {}),
      }
      let page = parsePage(await callJson(ctx, jobsBase, { label: LABEL, method: 'POST', headers, body: JSON.stringify(request) }), 6)
      const rows: Record<string, unknown>[] = []
      let pages = 0
      let polls = 0
      for (;;) {
        if (!page.jobComplete) {
          if (++polls > MAX_POLLS) throw new ProcessorError('TIMEOUT', `${LABEL}: query did not complete`, { retryable: true })
        } else {
          pages++
          rows.push(...page.rows.map((cells) => toRow(cells, date)))
          if (!page.pageToken) break
          if (pages >= config.max_pages) throw new ProcessorError('LIMIT_EXCEEDED', `${LABEL}: more than ${config.max_pages} pages`)
        }
        const q = new URLSearchParams({ timeoutMs: String(POLL_TIMEOUT_MS), maxResults: '1000' })
        if (page.location) q.set('location', page.location)
        if (page.jobComplete && page.pageToken) q.set('pageToken', page.pageToken)
        const next = await callJson(ctx, `${jobsBase}/${encodeURIComponent(page.jobId)}?${q}`, { label: LABEL, headers })
        page = parsePage(next, 6)
      }
      const written = await datasetOp(async () => {
        await ctx.dataset.ensureTable(GCP_BILLING_SPEC)
        return ctx.dataset.upsertRows(GCP_BILLING_SPEC.name, rows)
      })
      return { rows_processed: written, output: { date, pages, billing_table: table } }
    },
  }
}
