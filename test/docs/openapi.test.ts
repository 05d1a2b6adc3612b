// The OpenAPI document: valid 3.1 (checked by @seriousme/openapi-schema-validator), every operation
// described and secured, error statuses exactly those the route's guard, input and handler can
// produce, problem+json errors, enums, named reused components; and the docs UI served offline.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Validator } from '@seriousme/openapi-schema-validator'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { ERROR_CODES, type ErrorCode } from '../../src/app/errors.js'
import { OPERATIONS, TAGS, operationKey } from '../../src/app/openapi/operations.js'
import { isDocsRoute } from '../../src/app/openapi/document.js'
import { routeErrorCodes } from '../../src/app/openapi/route-errors.js'
import { loadConfig } from '../../src/app/config.js'
import { handlerCodesByRoute } from './handler-codes.js'

type Json = Record<string, any>

const openapiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
const concrete = (url: string, org: string) =>
  url.replace(':org_slug', org).replace(/:run_id|:schedule_id/, 'run_0000000000000000000000').replace(/:([A-Za-z0-9_]+)/g, 'x_$1')

describe('OpenAPI document', () => {
  let t: TestApp
  let doc: Json
  let routes: TestApp['app']['routeTable']
  before(async () => {
    t = await buildTestApp('sqlite')
    doc = (await t.app.inject({ url: '/docs/openapi.json' })).json()
    routes = t.app.routeTable.filter((r) => !isDocsRoute(r.url))
  })
  after(() => t.close())

  const operation = (method: string, url: string): Json => doc.paths[openapiPath(url)]?.[method.toLowerCase()]

  test('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0')
    const result = await new Validator().validate(doc)
    assert.deepEqual(result.errors ?? [], [])
    assert.equal(result.valid, true)
  })

  test('every route has an entry in operations.ts, and every entry a route', () => {
    const keys = new Set(routes.map((r) => operationKey(r.method, r.url)))
    assert.deepEqual([...keys].filter((k) => !OPERATIONS[k]), [], 'routes without an operations.ts entry')
    assert.deepEqual(Object.keys(OPERATIONS).filter((k) => !keys.has(k)), [], 'operations.ts entries without a route')
  })

  test('every operation has operationId, summary, description, a known tag, security and described responses', () => {
    const ids = new Set<string>()
    const tags = new Set(TAGS.map((x) => x.name))
    for (const r of routes) {
      const op = operation(r.method, r.url)
      assert.ok(op, `${r.method} ${r.url} missing from the document`)
      assert.match(op.operationId, /^[a-z][A-Za-z0-9]+$/)
      assert.ok(!ids.has(op.operationId), `duplicate operationId ${op.operationId}`)
      ids.add(op.operationId)
      assert.ok(op.summary?.length > 3 && op.description?.length > 10, `${op.operationId} lacks summary/description`)
      assert.equal(op.tags?.length, 1)
      assert.ok(tags.has(op.tags[0]), `${op.operationId} has unknown tag ${op.tags[0]}`)
      assert.ok(Array.isArray(op.security), `${op.operationId} has no security`)
      const expected = { public: [], admin: [{ rootKey: [] }], org: [{ orgKey: [] }], org_or_admin: [{ orgKey: [] }, { rootKey: [] }] }[r.auth]
      assert.deepEqual(op.security, expected, `${op.operationId} security does not match its guard ${r.auth}`)
      for (const [status, res] of Object.entries(op.responses as Json)) {
        assert.ok(res.description && res.description !== 'Default Response', `${op.operationId} ${status} undescribed`)
        if (Number(status) >= 400) assert.deepEqual(Object.keys(res.content), ['application/problem+json'])
      }
      const body = op.requestBody?.content?.['application/json']
      if (body) assert.ok(body.example !== undefined, `${op.operationId} request body has no example`)
    }
  })

  test('error statuses are exactly those of the guard, the input and the handler (from the route source)', () => {
    const scanned = handlerCodesByRoute()
    for (const r of routes) {
      const key = operationKey(r.method, r.url)
      const fromSource = scanned.get(key)
      assert.ok(fromSource, `${key}: not found in src/app/routers (register routes as app.<method>('<url>', ...))`)
      assert.deepEqual([...OPERATIONS[key]!.errors].sort(), [...fromSource].sort(), `${key}: operations.ts errors differ from what the handler throws`)
      const codes = routeErrorCodes({ method: r.method, url: r.url, auth: r.auth, input: Object.keys(r.input) }, OPERATIONS[key]!.errors)
      const statuses = [...new Set(codes.map((c) => String(ERROR_CODES[c])))].sort()
      const documented = Object.keys(operation(r.method, r.url).responses).filter((s) => Number(s) >= 400).sort()
      assert.deepEqual(documented, statuses, key)
      for (const c of codes) assert.ok(operation(r.method, r.url).responses[String(ERROR_CODES[c])].description.includes(`\`${c}\``), `${key}: ${c} not listed`)
    }
    // Not vacuous: health/live is public and cannot say 401/403/404; a run read can say RUN_NOT_FOUND.
    assert.deepEqual(Object.keys(operation('GET', '/health/live').responses).sort(), ['200', '400', '429', '500', '503'])
    assert.ok(scanned.get('GET /api/v1/pipelines/:org_slug/runs/:run_id')!.has('RUN_NOT_FOUND'))
  })

  test('what the guards really answer is documented for every route', async () => {
    const keyA = await t.onboard('docs-org-a')
    await t.onboard('docs-org-b')
    for (const r of routes) {
      const op = operation(r.method, r.url)
      const probes: { headers: Record<string, string>; url: string; expect?: ErrorCode }[] = []
      const url = concrete(r.url, 'docs-org-b')
      if (r.auth !== 'public') probes.push({ headers: {}, url, expect: r.auth === 'admin' ? 'MISSING_ROOT_KEY' : 'MISSING_API_KEY' })
      if (r.auth === 'admin') probes.push({ headers: t.org(keyA), url, expect: 'ADMIN_REQUIRED' })
      if (r.auth !== 'admin' && r.auth !== 'public' && r.url.includes(':org_slug')) probes.push({ headers: t.org(keyA), url, expect: 'ORG_MISMATCH' })
      if (r.auth === 'public') probes.push({ headers: {}, url: `${url}?unexpected=1`, expect: 'VALIDATION_FAILED' })
      for (const p of probes) {
        const res = await t.app.inject({ method: r.method as 'GET', url: p.url, headers: p.headers, ...(r.input.body ? { payload: {} } : {}) })
        assert.ok(op.responses[String(res.statusCode)], `${r.method} ${r.url} answered ${res.statusCode}, not documented`)
        if (p.expect) assert.equal(res.json().code, p.expect, `${r.method} ${r.url}`)
      }
    }
  })

  test('errors, enums and components', () => {
    const text = JSON.stringify(doc)
    assert.ok(!text.includes('"application/json":{"schema":{"$ref":"#/components/schemas/Problem"}'), 'a problem is declared as application/json')
    const singleEnumUnions: Json[] = []
    const walk = (n: unknown) => {
      if (!n || typeof n !== 'object') return
      const o = n as Json
      if (Array.isArray(o.anyOf) && o.anyOf.filter((s: Json) => Array.isArray(s.enum) && s.enum.length === 1).length > 1) singleEnumUnions.push(o)
      Object.values(o).forEach(walk)
    }
    walk(doc)
    assert.deepEqual(singleEnumUnions, [], 'anyOf of single-value enums left in the document')
    const provider = operation('GET', '/api/v1/integrations/:org_slug/:provider').parameters.find((p: Json) => p.name === 'provider')
    assert.deepEqual(provider.schema, { type: 'string', enum: ['openai', 'anthropic', 'gcp', 'http'] })
    // Named components, reused by $ref: the list's items are the single-provider status.
    assert.ok(doc.components.schemas.Problem && doc.components.schemas.IntegrationStatus)
    const list = doc.components.schemas.ListIntegrationsResponse
    assert.deepEqual(list.properties.integrations.items, { $ref: '#/components/schemas/IntegrationStatus' })
    const refs = text.match(/"\$ref":"#\/components\/schemas\/Problem"/g) ?? []
    assert.ok(refs.length > routes.length, 'Problem is referenced by every operation')
    for (const ref of text.matchAll(/"\$ref":"#\/components\/schemas\/([A-Za-z0-9]+)"/g)) assert.ok(doc.components.schemas[ref[1]!], `dangling $ref ${ref[1]}`)
    assert.ok(doc.components.securitySchemes.rootKey && doc.components.securitySchemes.orgKey)
  })

  test('operations endpoints are in the document', () => {
    for (const p of ['/health', '/health/live', '/health/ready', '/metrics']) assert.ok(doc.paths[p]?.get, `${p} missing`)
    assert.ok(doc.paths['/metrics'].get.responses['200'].content['text/plain'])
    assert.deepEqual(doc.paths['/metrics'].get.security, [{ rootKey: [] }])
  })

  test('the docs UI is served from the package, with no external asset', async () => {
    const page = await t.app.inject({ url: '/docs/' })
    assert.equal(page.statusCode, 200)
    assert.match(page.headers['content-type'] as string, /text\/html/)
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    assert.ok(assets.length >= 3)
    for (const a of assets) {
      assert.ok(!/^(https?:)?\/\//.test(a), `external asset ${a}`)
      const res = await t.app.inject({ url: new URL(a, 'http://x/docs/').pathname })
      assert.equal(res.statusCode, 200, a)
    }
    const csp = String(page.headers['content-security-policy'])
    assert.match(csp, /default-src 'self'/)
    assert.ok(!/https?:|upgrade-insecure-requests/.test(csp), csp)
    const init = await t.app.inject({ url: '/docs/static/swagger-initializer.js' })
    assert.match(init.body, /validatorUrl: null/)
    assert.equal((await t.app.inject({ url: '/docs/json' })).json().openapi, '3.1.0')
  })
})

describe('docs off in production unless enabled', () => {
  test('production defaults to no docs', async () => {
    const prodLike = loadConfig({ ENVIRONMENT: 'production', CA_ROOT_API_KEY: 'x'.repeat(40), KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64'), DATABASE_URL: 'postgres://u@127.0.0.1/db' })
    assert.equal(prodLike.enableApiDocs, false)
  })
  test('ENABLE_API_DOCS=false: /docs and the document are 404', async () => {
    const t = await buildTestApp('sqlite', { env: { ENABLE_API_DOCS: 'false' } })
    try {
      for (const u of ['/docs', '/docs/', '/docs/openapi.json', '/docs/static/swagger-ui-bundle.js']) {
        assert.equal((await t.app.inject({ url: u })).statusCode, 404, u)
      }
    } finally {
      await t.close()
    }
  })
})
