import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createOpenAiCostProcessor, createOpenAiUsageProcessor } from '../../src/core/processors/openai/index.js'
import { seedDefaultPrices } from '../../src/core/processors/builtin.js'
import { ProcessorConfigError } from '../../src/core/processors/types.js'
import { backendNames } from '../helpers/backends.js'
import { allRows, expectProcessorError, json, makeCtx, setupEnv, startServer, type Env, type TestServer } from './helpers.js'

const SECRET = 'sk-admin-TOPSECRET-0123456789'
const LEAK = 'UPSTREAM-LEAK-TEXT'
const DATE = '2026-11-27'
const START = Date.parse(`${DATE}T00:00:00Z`) / 1000

const result = (model: string | null, project: string | null, i: number, o: number, c: number, n: number) => ({
  object: 'organization.usage.completions.result',
  input_tokens: i,
  output_tokens: o,
  input_cached_tokens: c,
  num_model_requests: n,
  project_id: project,
  user_id: null,
  api_key_id: null,
  model,
  batch: null,
})

/** Three pages of the documented shape; the first request for page 2 answers 429 with retry-after. */
const PAGES: Record<string, { results: ReturnType<typeof result>[]; next: string | null }> = {
  '': { results: [result('gpt-4o-2024-08-06', 'proj_a', 1_000_000, 200_000, 400_000, 50), result('gpt-4o-mini', 'proj_a', 500, 100, 0, 3)], next: 'page_2' },
  page_2: { results: [result('gpt-4o-2024-08-06', 'proj_b', 2_000, 1_000, 0, 4), result('ft:custom-model', null, 10, 5, 0, 1)], next: 'page_3' },
  page_3: { results: [result('gpt-4o-mini', 'proj_a', 500, 100, 0, 2)], next: null },
}

for (const backend of backendNames()) {
  describe(`openai processors on ${backend}`, () => {
    let env: Env
    let server: TestServer
    let mode: 'ok' | 'unauthorized' | 'not-json' | 'bad-shape' | 'rate-limited' = 'ok'
    let throttledOnce = false
    before(async () => {
      env = await setupEnv(backend)
      server = await startServer((req, res) => {
        if (req.url.pathname !== '/v1/organization/usage/completions') return json(res, 404, { error: LEAK })
        if (req.headers.authorization !== `Bearer ${SECRET}`) return json(res, 401, { error: { message: `${LEAK} bad key` } })
        if (mode === 'unauthorized') return json(res, 401, { error: { message: `${LEAK} invalid admin key ${SECRET}` } })
        if (mode === 'not-json') return json(res, 200, `<html>${LEAK}</html>`)
        if (mode === 'bad-shape') return json(res, 200, { object: 'page', data: [{ object: 'bucket', start_time: START, results: [{ input_tokens: 'many' }] }], has_more: false })
        if (mode === 'rate-limited') return json(res, 429, { error: LEAK }, { 'retry-after': '3600' })
        const q = req.url.searchParams
        assert.equal(q.get('start_time'), String(START))
        assert.equal(q.get('end_time'), String(START + 86_400))
        assert.equal(q.get('bucket_width'), '1d')
        assert.deepEqual(q.getAll('group_by'), ['model', 'project_id'])
        const page = q.get('page') ?? ''
        if (page === 'page_2' && !throttledOnce) {
          throttledOnce = true
          return json(res, 429, { error: LEAK }, { 'retry-after': '1' })
        }
        const p = PAGES[page]
        if (!p) return json(res, 400, { error: LEAK })
        json(res, 200, {
          object: 'page',
          data: [{ object: 'bucket', start_time: START, end_time: START + 86_400, results: p.results }],
          has_more: p.next !== null,
          next_page: p.next,
        })
      })
    })
    after(async () => {
      await server.close()
      await env.close()
    })

    const usage = () => createOpenAiUsageProcessor({ baseUrl: server.url })
    const ctx = () => makeCtx(env, { provider: 'openai', secret: SECRET, parameters: { date: DATE } })

    test('usage: follows pages, retries a 429, loads each (date, model, project) once; re-run is idempotent', async () => {
      mode = 'ok'
      const p = usage()
      const r1 = await p.run(ctx(), p.validateConfig({}))
      assert.equal(throttledOnce, true)
      assert.equal(r1.rows_processed, 4)
      const rows1 = await allRows(env.writer('acme'), 'openai_usage_daily')
      assert.equal(rows1.length, 4)
      const mini = rows1.find((r) => r.model === 'gpt-4o-mini')!
      assert.deepEqual(mini, { date: DATE, model: 'gpt-4o-mini', project_id: 'proj_a', input_tokens: 1000, output_tokens: 200, cached_tokens: 0, requests: 5 })
      assert.equal(rows1.find((r) => r.model === 'ft:custom-model')!.project_id, '')
      const r2 = await p.run(ctx(), p.validateConfig({}))
      assert.equal(r2.rows_processed, 4)
      assert.deepEqual(await allRows(env.writer('acme'), 'openai_usage_daily'), rows1)
    })

    test('usage: the date defaults to yesterday UTC', async () => {
      mode = 'ok'
      const p = usage()
      const r = await p.run(makeCtx(env, { provider: 'openai', secret: SECRET, now: Date.parse('2026-11-28T00:30:00Z') }), p.validateConfig({}))
      assert.equal(r.output?.date, DATE)
    })

    test('cost: prices usage with the seeded table (snapshot prefix match) and reports unpriced models', async () => {
      assert.ok((await seedDefaultPrices(env.writer('acme'))) > 10)
      assert.equal(await seedDefaultPrices(env.writer('acme')), 0, 'seeding never overwrites an existing price table')
      const p = createOpenAiCostProcessor()
      const r = await p.run(ctx(), p.validateConfig({}))
      assert.equal(r.rows_processed, 3)
      assert.deepEqual(r.output?.unpriced_models, ['ft:custom-model'])
      const rows = await allRows(env.writer('acme'), 'openai_cost_daily')
      assert.equal(rows.length, 3)
      const big = rows.find((x) => x.model === 'gpt-4o-2024-08-06' && x.project_id === 'proj_a')!
      // 600k uncached × $2.50 + 400k cached × $1.25 + 200k output × $10 per 1M
      assert.equal(big.input_cost_usd, 1.5)
      assert.equal(big.cached_input_cost_usd, 0.5)
      assert.equal(big.output_cost_usd, 2)
      assert.equal(big.total_cost_usd, 4)
      assert.equal(big.price_model, 'gpt-4o')
      const again = await p.run(ctx(), p.validateConfig({}))
      assert.equal(again.rows_processed, 3)
      assert.equal((await allRows(env.writer('acme'), 'openai_cost_daily')).length, 3)
    })

    test('401 is UNAUTHORIZED, not retryable, and leaks neither upstream text nor the key', async () => {
      mode = 'unauthorized'
      const p = usage()
      const err = await expectProcessorError(p.run(ctx(), p.validateConfig({})), 'UNAUTHORIZED', [LEAK, SECRET])
      assert.equal(err.retryable, false)
    })

    test('a body that is not JSON, or not the documented shape, is MALFORMED_RESPONSE and loads nothing', async () => {
      const before = (await allRows(env.writer('acme'), 'openai_usage_daily')).length
      for (const m of ['not-json', 'bad-shape'] as const) {
        mode = m
        const p = usage()
        await expectProcessorError(p.run(ctx(), p.validateConfig({})), 'MALFORMED_RESPONSE', [LEAK, SECRET])
      }
      assert.equal((await allRows(env.writer('acme'), 'openai_usage_daily')).length, before)
    })

    test('a long Retry-After goes back to the engine as RATE_LIMITED with retryAfterMs', async () => {
      mode = 'rate-limited'
      const p = usage()
      const t0 = Date.now()
      const err = await expectProcessorError(p.run(ctx(), p.validateConfig({})), 'RATE_LIMITED', [LEAK])
      assert.equal(err.retryable, true)
      assert.equal(err.options.retryAfterMs, 3_600_000)
      assert.ok(Date.now() - t0 < 3000)
    })

    test('config: base_url and unknown keys are refused naming the field', () => {
      const p = usage()
      assert.throws(() => p.validateConfig({ base_url: 'https://evil.example' }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'base_url')
      assert.throws(() => p.validateConfig({ max_pages: 0 }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'max_pages')
      assert.throws(() => createOpenAiCostProcessor().validateConfig({ x: 1 }), ProcessorConfigError)
    })

    test('an invalid date parameter is refused before any call', async () => {
      mode = 'ok'
      const p = usage()
      const n = server.requests.length
      await expectProcessorError(p.run(makeCtx(env, { provider: 'openai', secret: SECRET, parameters: { date: '2026-02-30' } }), p.validateConfig({})), 'INVALID_DATA')
      assert.equal(server.requests.length, n)
    })
  })
}
