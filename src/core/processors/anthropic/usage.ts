// anthropic.usage: the Admin API messages usage report for one UTC day, grouped by model, followed
// across pages (has_more / next_page) → anthropic_usage_daily.
// GET {base}/v1/organizations/usage_report/messages?starting_at&ending_at&bucket_width=1d
//   &group_by[]=model&limit&page, headers x-api-key (admin key) and anthropic-version: 2023-06-01.
import type { TableSpec } from '../../datasets/types.js'
import { pagedConfig, type PagedConfig } from '../shared/config.js'
import { dayBounds, runDate } from '../shared/dates.js'
import { loadRows } from '../shared/day-rows.js'
import { callJson, joinBase, malformed, nextPageToken } from '../shared/http.js'
import { ProcessorError, type Processor } from '../types.js'

export const ANTHROPIC_USAGE_SPEC: TableSpec = {
  name: 'anthropic_usage_daily',
  columns: [
    { name: 'date', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'uncached_input_tokens', type: 'integer' },
    { name: 'cache_read_input_tokens', type: 'integer' },
    { name: 'cache_creation_5m_tokens', type: 'integer' },
    { name: 'cache_creation_1h_tokens', type: 'integer' },
    { name: 'output_tokens', type: 'integer' },
    { name: 'web_search_requests', type: 'integer' },
  ],
  naturalKey: ['date', 'model'],
  dateColumn: 'date',
}

const COUNTERS = [
  'uncached_input_tokens',
  'cache_read_input_tokens',
  'cache_creation_5m_tokens',
  'cache_creation_1h_tokens',
  'output_tokens',
  'web_search_requests',
] as const

const LABEL = 'Anthropic usage report API'
export const ANTHROPIC_VERSION = '2023-06-01'
const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const optCount = (v: unknown) => v === undefined || v === null || isCount(v)
const n = (v: unknown) => (typeof v === 'number' ? v : 0)
const obj = (v: unknown): Record<string, unknown> | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null)

export function createAnthropicUsageProcessor(opts: { baseUrl: string }): Processor<PagedConfig> {
  return {
    name: 'anthropic.usage',
    description: 'Anthropic Admin API messages usage (daily, by model) → anthropic_usage_daily',
    integration: 'anthropic',
    validateConfig: pagedConfig,
    async run(ctx, config) {
      const date = runDate(ctx)
      const { startMs, endMs } = dayBounds(date)
      const cred = await ctx.getCredential()
      const totals = new Map<string, Record<string, number | string>>()
      let page: string | null = null
      let pages = 0
      for (;;) {
        if (pages >= config.max_pages) throw new ProcessorError('LIMIT_EXCEEDED', `${LABEL}: more than ${config.max_pages} pages`)
        const q = new URLSearchParams({
          starting_at: new Date(startMs).toISOString().replace('.000Z', 'Z'),
          ending_at: new Date(endMs).toISOString().replace('.000Z', 'Z'),
          bucket_width: '1d',
        })
        q.append('group_by[]', 'model')
        q.set('limit', '31')
        if (page) q.set('page', page)
        const body = obj(
          await callJson(ctx, joinBase(opts.baseUrl, `/v1/organizations/usage_report/messages?${q}`), {
            label: LABEL,
            headers: { 'x-api-key': cred.secret, 'anthropic-version': ANTHROPIC_VERSION },
          }),
        )
        pages++
        if (!body || !Array.isArray(body.data)) throw malformed(LABEL, 'data')
        for (const raw of body.data) {
          const bucket = obj(raw)
          if (!bucket || typeof bucket.starting_at !== 'string' || !Array.isArray(bucket.results)) throw malformed(LABEL, 'bucket')
          const start = Date.parse(bucket.starting_at)
          if (Number.isNaN(start)) throw malformed(LABEL, 'bucket starting_at')
          if (new Date(start).toISOString().slice(0, 10) !== date) continue
          for (const rr of bucket.results) {
            const r = obj(rr)
            const creation = obj(r?.cache_creation)
            const tool = obj(r?.server_tool_use)
            if (
              !r ||
              !isCount(r.uncached_input_tokens) ||
              !isCount(r.output_tokens) ||
              !optCount(r.cache_read_input_tokens) ||
              !optCount(creation?.ephemeral_5m_input_tokens) ||
              !optCount(creation?.ephemeral_1h_input_tokens) ||
              !optCount(tool?.web_search_requests)
            ) {
              throw malformed(LABEL, 'result counts')
            }
            if (r.model !== undefined && r.model !== null && (typeof r.model !== 'string' || r.model.length > 256)) {
              throw malformed(LABEL, 'result model')
            }
            const model = (r.model as string | null | undefined) ?? 'unknown'
            const row = totals.get(model) ?? { date, model, ...Object.fromEntries(COUNTERS.map((c) => [c, 0])) }
            const add = (k: (typeof COUNTERS)[number], v: unknown) => (row[k] = (row[k] as number) + n(v))
            add('uncached_input_tokens', r.uncached_input_tokens)
            add('cache_read_input_tokens', r.cache_read_input_tokens)
            add('cache_creation_5m_tokens', creation?.ephemeral_5m_input_tokens)
            add('cache_creation_1h_tokens', creation?.ephemeral_1h_input_tokens)
            add('output_tokens', r.output_tokens)
            add('web_search_requests', tool?.web_search_requests)
            totals.set(model, row)
          }
        }
        ctx.reportProgress?.({ rows: totals.size, counters: { pages, rows: totals.size } })
        page = nextPageToken(body, page, LABEL)
        if (page === null) break
      }
      const rows = [...totals.values()]
      const written = await loadRows(ctx.dataset, ANTHROPIC_USAGE_SPEC, rows)
      return { rows_processed: written, output: { date, pages, models: rows.length } }
    },
  }
}
