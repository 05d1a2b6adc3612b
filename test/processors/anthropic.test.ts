import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createAnthropicCostProcessor, createAnthropicUsageProcessor } from '../../src/core/processors/anthropic/index.js'
import { seedDefaultPrices } from '../../src/core/processors/builtin.js'
import { ProcessorConfigError } from '../../src/core/processors/types.js'
import { backendNames } from '../helpers/backends.js'
import { allRows, expectProcessorError, json, makeCtx, setupEnv, startServer, type Env, type TestServer } from './helpers.js'

const SECRET = 'sk-ant-admin01-TOPSECRET-abcdef'
const LEAK = 'UPSTREAM-LEAK-TEXT'
const DATE = '2026-11-27'

const result = (model: string, uncached: number, read: number, w5: number, w1h: number, out: number) => ({
  uncached_input_tokens: uncached,
  cache_creation: { ephemeral_1h_input_tokens: w1h, ephemeral_5m_input_tokens: w5 },
  cache_read_input_tokens: read,
  output_tokens: out,
  server_tool_use: { web_search_requests: 0 },
  api_key_id: null,
  workspace_id: null,
  model,
  service_tier: null,
  context_window: null,
})

const bucket = (results: ReturnType<typeof result>[]) => ({ starting_at: `${DATE}T00:00:00Z`, ending_at: '2026-11-28T00:00:00Z', results })

const PAGES: Record<string, { data: ReturnType<typeof bucket>[]; next: string | null }> = {
  '': { data: [bucket([result('claude-sonnet-4-20250514', 1_000_000, 1_000_000, 1_000_000, 0, 100_000)])], next: 'page_MjAyNi0xMS0yNw==' },
  'page_MjAyNi0xMS0yNw==': { data: [bucket([result('claude-3-5-haiku-20241022', 10, 0, 0, 0, 5), result('claude-experimental', 1, 0, 0, 0, 1)])], next: 'page_Mw==' },
  'page_Mw==': { data: [bucket([result('claude-3-5-haiku-20241022', 90, 0, 0, 0, 5)])], next: null },
}

for (const backend of backendNames()) {
  describe(`anthropic processors on ${backend}`, () => {
    let env: Env
    let server: TestServer
    let mode: 'ok' | 'unauthorized' | 'not-json' | 'bad-shape' = 'ok'
    let throttledOnce = false
    before(async () => {
      env = await setupEnv(backend)
      server = await startServer((req, res) => {
        if (req.url.pathname !== '/v1/organizations/usage_report/messages') return json(res, 404, { error: LEAK })
        if (req.headers['x-api-key'] !== SECRET || req.headers['anthropic-version'] !== '2023-06-01') {
          return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: LEAK } })
        }
        if (mode === 'unauthorized') return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: `${LEAK} ${SECRET}` } })
        if (mode === 'not-json') return json(res, 200, `${LEAK} {`)
        if (mode === 'bad-shape') return json(res, 200, { data: [{ starting_at: `${DATE}T00:00:00Z`, results: [{ uncached_input_tokens: -1, output_tokens: 1 }] }], has_more: false, next_page: null })
        const q = req.url.searchParams
        assert.equal(q.get('starting_at'), `${DATE}T00:00:00Z`)
        assert.equal(q.get('ending_at'), '2026-11-28T00:00:00Z')
        assert.equal(q.get('bucket_width'), '1d')
        assert.deepEqual(q.getAll('group_by[]'), ['model'])
        const page = q.get('page') ?? ''
        if (page === 'page_Mw==' && !throttledOnce) {
          throttledOnce = true
          return json(res, 429, { type: 'error', error: { type: 'rate_limit_error', message: LEAK } }, { 'retry-after': '1' })
        }
        const p = PAGES[page]
        if (!p) return json(res, 400, { error: LEAK })
        json(res, 200, { data: p.data, has_more: p.next !== null, next_page: p.next })
      })
    })
    after(async () => {
      await server.close()
      await env.close()
    })

    const usage = () => createAnthropicUsageProcessor({ baseUrl: server.url })
    const ctx = () => makeCtx(env, { provider: 'anthropic', secret: SECRET, parameters: { date: DATE } })

    test('usage: pages, a 429 retried, one row per (date, model); re-run idempotent', async () => {
      mode = 'ok'
      const p = usage()
      const r = await p.run(ctx(), p.validateConfig({}))
      assert.equal(throttledOnce, true)
      assert.equal(r.rows_processed, 3)
      const rows = await allRows(env.writer('acme'), 'anthropic_usage_daily')
      assert.equal(rows.length, 3)
      const haiku = rows.find((x) => x.model === 'claude-3-5-haiku-20241022')!
      assert.equal(haiku.uncached_input_tokens, 100)
      assert.equal(haiku.output_tokens, 10)
      const sonnet = rows.find((x) => x.model === 'claude-sonnet-4-20250514')!
      assert.equal(sonnet.cache_creation_5m_tokens, 1_000_000)
      await p.run(ctx(), p.validateConfig({}))
      assert.deepEqual(await allRows(env.writer('acme'), 'anthropic_usage_daily'), rows)
    })

    test('cost: cache reads and writes priced, unpriced models reported', async () => {
      await seedDefaultPrices(env.writer('acme'))
      const p = createAnthropicCostProcessor()
      const r = await p.run(ctx(), p.validateConfig({}))
      assert.equal(r.rows_processed, 2)
      assert.deepEqual(r.output?.unpriced_models, ['claude-experimental'])
      const rows = await allRows(env.writer('acme'), 'anthropic_cost_daily')
      const sonnet = rows.find((x) => x.model === 'claude-sonnet-4-20250514')!
      // 1M × $3 input + 1M × $0.30 cache read + 1M × $3.75 5-minute write + 100k × $15 output
      assert.equal(sonnet.input_cost_usd, 3)
      assert.equal(sonnet.cache_read_cost_usd, 0.3)
      assert.equal(sonnet.cache_write_cost_usd, 3.75)
      assert.equal(sonnet.output_cost_usd, 1.5)
      assert.equal(sonnet.total_cost_usd, 8.55)
      await p.run(ctx(), p.validateConfig({}))
      assert.equal((await allRows(env.writer('acme'), 'anthropic_cost_daily')).length, 2)
    })

    test('401 → UNAUTHORIZED without upstream text or key', async () => {
      mode = 'unauthorized'
      const p = usage()
      await expectProcessorError(p.run(ctx(), p.validateConfig({})), 'UNAUTHORIZED', [LEAK, SECRET])
    })

    test('malformed bodies → MALFORMED_RESPONSE', async () => {
      for (const m of ['not-json', 'bad-shape'] as const) {
        mode = m
        const p = usage()
        await expectProcessorError(p.run(ctx(), p.validateConfig({})), 'MALFORMED_RESPONSE', [LEAK, SECRET])
      }
    })

    test('a missing integration fails the step (no fake success)', async () => {
      mode = 'ok'
      const p = usage()
      await expectProcessorError(p.run(makeCtx(env, { secret: null, parameters: { date: DATE } }), p.validateConfig({})), 'INTEGRATION_NOT_CONFIGURED')
    })

    test('config rejects unknown keys', () => {
      assert.throws(() => usage().validateConfig({ base_url: 'http://x' }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'base_url')
    })
  })
}
