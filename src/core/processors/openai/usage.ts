// openai.usage: the organization Usage API for completions, one UTC day in daily buckets grouped by
// model and project, followed across pages (has_more / next_page) → openai_usage_daily.
// GET {base}/v1/organization/usage/completions?start_time&end_time&bucket_width=1d&group_by=model
//   &group_by=project_id&limit&page, Authorization: Bearer <admin key>.
import type { TableSpec } from '../../datasets/types.js'
import { pagedConfig, type PagedConfig } from '../shared/config.js'
import { dayBounds, runDate } from '../shared/dates.js'
import { loadRows } from '../shared/day-rows.js'
import { callJson, joinBase, malformed, nextPageToken } from '../shared/http.js'
import { ProcessorError, type Processor } from '../types.js'

export const OPENAI_USAGE_SPEC: TableSpec = {
  name: 'openai_usage_daily',
  columns: [
    { name: 'date', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'project_id', type: 'text' },
    { name: 'input_tokens', type: 'integer' },
    { name: 'output_tokens', type: 'integer' },
    { name: 'cached_tokens', type: 'integer' },
    { name: 'requests', type: 'integer' },
  ],
  naturalKey: ['date', 'model', 'project_id'],
  dateColumn: 'date',
}

const LABEL = 'OpenAI usage API'
const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const optCount = (v: unknown) => v === undefined || v === null || count(v)
const optText = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.length <= 256)

export function createOpenAiUsageProcessor(opts: { baseUrl: string }): Processor<PagedConfig> {
  return {
    name: 'openai.usage',
    description: 'OpenAI organization completions usage (daily, by model and project) → openai_usage_daily',
    integration: 'openai',
    validateConfig: pagedConfig,
    async run(ctx, config) {
      const date = runDate(ctx)
      const { startMs, endMs } = dayBounds(date)
      const cred = await ctx.getCredential()
      const totals = new Map<string, Record<string, unknown> & { input_tokens: number; output_tokens: number; cached_tokens: number; requests: number }>()
      let page: string | null = null
      let pages = 0
      for (;;) {
        if (pages >= config.max_pages) throw new ProcessorError('LIMIT_EXCEEDED', `${LABEL}: more than ${config.max_pages} pages`)
        const q = new URLSearchParams({
          start_time: String(startMs / 1000),
          end_time: String(endMs / 1000),
          bucket_width: '1d',
        })
        q.append('group_by', 'model')
        q.append('group_by', 'project_id')
        q.set('limit', '31')
        if (page) q.set('page', page)
        const body = (await callJson(ctx, joinBase(opts.baseUrl, `/v1/organization/usage/completions?${q}`), {
          label: LABEL,
          headers: { authorization: `Bearer ${cred.secret}` },
        })) as Record<string, unknown> | null
        pages++
        if (!body || typeof body !== 'object' || !Array.isArray(body.data)) throw malformed(LABEL, 'data')
        for (const bucket of body.data as Record<string, unknown>[]) {
          if (!bucket || typeof bucket.start_time !== 'number' || !Array.isArray(bucket.results)) throw malformed(LABEL, 'bucket')
          const bucketDate = new Date(bucket.start_time * 1000).toISOString().slice(0, 10)
          if (bucketDate !== date) continue
          for (const r of bucket.results as Record<string, unknown>[]) {
            if (!r || !count(r.input_tokens) || !count(r.output_tokens) || !optCount(r.input_cached_tokens) || !optCount(r.num_model_requests)) {
              throw malformed(LABEL, 'result counts')
            }
            if (!optText(r.model) || !optText(r.project_id)) throw malformed(LABEL, 'result grouping')
            const model = (r.model as string | null | undefined) ?? 'unknown'
            const project = (r.project_id as string | null | undefined) ?? ''
            const key = JSON.stringify([model, project])
            const row = totals.get(key) ?? { date, model, project_id: project, input_tokens: 0, output_tokens: 0, cached_tokens: 0, requests: 0 }
            row.input_tokens += r.input_tokens as number
            row.output_tokens += r.output_tokens as number
            row.cached_tokens += (r.input_cached_tokens as number | undefined) ?? 0
            row.requests += (r.num_model_requests as number | undefined) ?? 0
            totals.set(key, row)
          }
        }
        ctx.reportProgress?.({ rows: totals.size, counters: { pages, rows: totals.size } })
        page = nextPageToken(body, page, LABEL)
        if (page === null) break
      }
      const rows = [...totals.values()]
      const written = await loadRows(ctx.dataset, OPENAI_USAGE_SPEC, rows)
      return { rows_processed: written, output: { date, pages, models: new Set(rows.map((r) => r.model)).size } }
    },
  }
}
