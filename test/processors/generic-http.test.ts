import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createHttpExtractProcessor, validateHttpExtractConfig } from '../../src/core/processors/generic/index.js'
import { ProcessorConfigError } from '../../src/core/processors/types.js'
import { backendNames } from '../helpers/backends.js'
import { allRows, expectProcessorError, json, makeCtx, setupEnv, startServer, type Env, type TestServer } from './helpers.js'

const SECRET = 'api-token-TOPSECRET-987654'
const LEAK = 'UPSTREAM-LEAK-TEXT'
const DATE = '2026-11-27'
const ITEMS = Array.from({ length: 25 }, (_, i) => ({
  id: `it_${String(i).padStart(3, '0')}`,
  amount: { value: String(i * 1.5) },
  active: i % 2 === 0,
  created_at: `2026-11-27T10:${String(i).padStart(2, '0')}:00Z`,
}))

const fields = {
  item_id: { path: 'id', type: 'text' },
  day: { parameter: 'date', type: 'date' },
  amount: { path: 'amount.value', type: 'real' },
  active: { path: 'active', type: 'boolean' },
  created_at: { path: 'created_at', type: 'timestamp' },
}
const baseConfig = (pagination: unknown, extra: Record<string, unknown> = {}) => ({
  path: '/v1/items',
  query: { day: ':date', kind: 'all' },
  pagination,
  records_path: 'data',
  fields,
  table: { name: 'items', natural_key: ['item_id'], date_column: 'day' },
  ...extra,
})

for (const backend of backendNames()) {
  describe(`generic.http_extract on ${backend}`, () => {
    let env: Env
    let server: TestServer
    let other: TestServer
    let mode: 'ok' | 'unauthorized' | 'not-json' | 'foreign-link' = 'ok'
    let throttled = false
    before(async () => {
      env = await setupEnv(backend)
      other = await startServer((_req, res) => json(res, 200, { data: [] }))
      server = await startServer((req, res) => {
        const auth = req.headers.authorization
        const custom = req.headers['x-api-token']
        const basicOk = auth === `Basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`
        if (auth !== `Bearer ${SECRET}` && custom !== SECRET && !basicOk) return json(res, 401, { message: LEAK })
        if (mode === 'unauthorized') return json(res, 403, { message: `${LEAK} ${SECRET}` })
        if (mode === 'not-json') return json(res, 200, `not json ${LEAK}`)
        if (!req.url.pathname.startsWith('/api/v1/items')) return json(res, 404, { message: LEAK })
        const q = req.url.searchParams
        assert.equal(q.get('day'), DATE)
        assert.equal(q.get('kind'), 'all')
        const style = req.url.pathname.split('/')[4] ?? 'cursor'
        let from = 0
        let size = 10
        let headers: Record<string, string> = {}
        let extra: Record<string, unknown> = {}
        if (style === 'cursor') {
          from = Number(q.get('cursor') ?? '0')
          if (from === 10 && !throttled) {
            throttled = true
            return json(res, 429, { message: LEAK }, { 'retry-after': '1' })
          }
          extra = { meta: { next: from + size < ITEMS.length ? String(from + size) : null } }
        } else if (style === 'page') {
          size = Number(q.get('per_page'))
          from = (Number(q.get('p')) - 1) * size
        } else if (style === 'offset') {
          size = Number(q.get('limit'))
          from = Number(q.get('offset'))
        } else if (style === 'link') {
          from = Number(q.get('start') ?? '0')
          const nextUrl = mode === 'foreign-link' ? `${other.url}/api/v1/items/link?start=${from + size}&day=${DATE}&kind=all` : `/api/v1/items/link?start=${from + size}&day=${DATE}&kind=all`
          if (from + size < ITEMS.length) headers = { link: `<${nextUrl}>; rel="next", </api/v1/items/link?start=0>; rel="first"` }
        }
        json(res, 200, { data: ITEMS.slice(from, from + size), ...extra }, headers)
      })
    })
    after(async () => {
      await server.close()
      await other.close()
      await env.close()
    })

    const ctx = (auth: Record<string, unknown> = { auth_type: 'bearer' }, secret = SECRET) =>
      makeCtx(env, { provider: 'http', secret, metadata: { base_url: `${server.url}/api`, ...auth }, parameters: { date: DATE } })
    const p = createHttpExtractProcessor()

    test('cursor pagination with a 429 retried: every record loaded once, typed; re-run idempotent', async () => {
      const config = p.validateConfig(baseConfig({ type: 'cursor', cursor_param: 'cursor', cursor_path: 'meta.next' }))
      const r = await p.run(ctx(), config)
      assert.equal(throttled, true)
      assert.equal(r.rows_processed, 25)
      assert.equal(r.output?.pages, 3)
      const rows = await allRows(env.writer('acme'), 'items')
      assert.equal(rows.length, 25)
      assert.deepEqual(rows[3], { item_id: 'it_003', day: DATE, amount: 4.5, active: false, created_at: '2026-11-27T10:03:00.000Z' })
      await p.run(ctx(), config)
      assert.deepEqual(await allRows(env.writer('acme'), 'items'), rows)
    })

    test('page, offset and link-header pagination, and header/basic auth', async () => {
      const cases: [string, unknown, Record<string, unknown>, string][] = [
        ['/v1/items/page', { type: 'page', page_param: 'p', start_page: 1, page_size_param: 'per_page', page_size: 7 }, { auth_type: 'header', header_name: 'X-Api-Token' }, SECRET],
        ['/v1/items/offset', { type: 'offset', offset_param: 'offset', limit_param: 'limit', limit: 6 }, { auth_type: 'basic' }, `user:${SECRET}`],
        ['/v1/items/link', { type: 'link_header' }, { auth_type: 'bearer' }, SECRET],
      ]
      for (const [path, pagination, auth, secret] of cases) {
        const config = p.validateConfig(baseConfig(pagination, { path, table: { name: 'items_copy', natural_key: ['item_id'], date_column: 'day' } }))
        const r = await p.run(ctx(auth, secret), config)
        assert.equal(r.rows_processed, 25, path)
      }
      assert.equal((await allRows(env.writer('acme'), 'items_copy')).length, 25)
    })

    test('a Link to another origin is refused (BLOCKED_DESTINATION) and nothing of that run is written', async () => {
      mode = 'foreign-link'
      const config = p.validateConfig(baseConfig({ type: 'link_header' }, { path: '/v1/items/link', table: { name: 'items_link', natural_key: ['item_id'] } }))
      await expectProcessorError(p.run(ctx(), config), 'BLOCKED_DESTINATION')
      assert.equal(other.requests.length, 0)
      await assert.rejects(env.writer('acme').readPage('items_link', { limit: 10 }), /table not found/)
      mode = 'ok'
    })

    test('max_pages is a cap that fails the step rather than loading part of the data', async () => {
      const config = p.validateConfig(baseConfig({ type: 'cursor', cursor_param: 'cursor', cursor_path: 'meta.next' }, { max_pages: 2, table: { name: 'items_capped', natural_key: ['item_id'] } }))
      await expectProcessorError(p.run(ctx(), config), 'LIMIT_EXCEEDED')
      const config2 = p.validateConfig(baseConfig({ type: 'cursor', cursor_param: 'cursor', cursor_path: 'meta.next' }, { max_records: 5, table: { name: 'items_capped', natural_key: ['item_id'] } }))
      await expectProcessorError(p.run(ctx(), config2), 'LIMIT_EXCEEDED')
      await assert.rejects(env.writer('acme').readPage('items_capped', { limit: 10 }), /table not found/)
    })

    test('401/403 → UNAUTHORIZED; non-JSON → MALFORMED_RESPONSE; no leak of upstream text or token', async () => {
      const config = p.validateConfig(baseConfig({ type: 'none' }))
      await expectProcessorError(p.run(ctx({ auth_type: 'bearer' }, 'wrong-token'), config), 'UNAUTHORIZED', [LEAK, 'wrong-token'])
      mode = 'unauthorized'
      await expectProcessorError(p.run(ctx(), config), 'UNAUTHORIZED', [LEAK, SECRET])
      mode = 'not-json'
      await expectProcessorError(p.run(ctx(), config), 'MALFORMED_RESPONSE', [LEAK, SECRET])
      mode = 'ok'
    })

    test('a record missing a required field fails with INVALID_DATA naming the column only', async () => {
      const config = p.validateConfig(baseConfig({ type: 'none' }, { fields: { ...fields, missing: { path: 'nope', type: 'text' } }, table: { name: 'items_bad', natural_key: ['item_id'] } }))
      const err = await expectProcessorError(p.run(ctx(), config), 'INVALID_DATA')
      assert.match(err.message, /missing/)
    })

    test('an unusable integration (no base_url) is CREDENTIAL_UNUSABLE', async () => {
      const config = p.validateConfig(baseConfig({ type: 'none' }))
      await expectProcessorError(p.run(makeCtx(env, { secret: SECRET, metadata: { auth_type: 'bearer' } }), config), 'CREDENTIAL_UNUSABLE', [SECRET])
    })
  })
}

describe('generic.http_extract config', () => {
  const bad = (patch: Record<string, unknown>, field: string) =>
    assert.throws(() => validateHttpExtractConfig({ ...baseConfig({ type: 'none' }), ...patch }), (e: unknown) => e instanceof ProcessorConfigError && e.field.startsWith(field), field)
  test('the URL can only be a relative path on the integration origin', () => {
    bad({ path: 'https://evil.example/x' }, 'path')
    bad({ path: '//evil.example/x' }, 'path')
    bad({ path: '/v1/../../admin' }, 'path')
    bad({ path: '/v1/items?token=x' }, 'path')
    bad({ base_url: 'https://evil.example' }, 'base_url')
    bad({ method: 'POST' }, 'method')
  })
  test('pagination, fields and table are checked', () => {
    bad({ pagination: { type: 'cursor', cursor_param: 'c' } }, 'pagination.cursor_path')
    bad({ pagination: { type: 'page', page_param: 'p', limit: 5 } }, 'pagination.limit')
    bad({ pagination: { type: 'sideways' } }, 'pagination.type')
    bad({ fields: { x: { path: '__proto__.y', type: 'text' } } }, 'fields.x.path')
    bad({ fields: { x: { path: 'a', parameter: 'date', type: 'text' } } }, 'fields.x')
    bad({ fields: { x: { path: 'a', type: 'blob' } } }, 'fields.x.type')
    bad({ table: { name: 'org_profiles', natural_key: ['item_id'] } }, 'table')
    bad({ table: { name: 'items', natural_key: ['nope'] } }, 'table')
    bad({ max_pages: 1001 }, 'max_pages')
    bad({ query: { day: ':Bad-Param' } }, 'query.day')
  })
})
