// Forged keyset cursors (non-integer or huge numbers, wrong types, NUL, wrong arity) answer 400
// INVALID_CURSOR on every cursor-paged route of the live route table, on both backends; never 5xx.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { concretePath, guardHeaders, queryFields } from '../helpers/routes.js'
import { writeTemplates } from '../engine/fixtures.js'
import { checkKeyValues, CursorError, decodeCursorToken, KEY_COLUMNS } from '../../src/core/cursor.js'

const templateDir = writeTemplates({
  'tests/local/cursor.yml': `
description: cursor test template
parameters:
  n: { type: integer, min: 0, max: 1000 }
steps:
  - id: summarize
    processor: generic.sql_transform
    config:
      sql: SELECT 1 AS n
      destination:
        name: cursor_out
        columns:
          - { name: n, type: integer }
        natural_key: [n]
      max_rows: 10
`,
})

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url')
const FORGED: [string, string][] = [
  ['fraction', b64([1.5, 'x'])],
  ['huge', b64([1e20, 'x'])],
  ['unsafe integer', b64([2 ** 53 + 2, 'x'])],
  ['swapped types', b64(['x', 1])],
  ['NUL in text', b64([1, 'a\u0000b'])],
  ['empty text', b64([1, ''])],
  ['object', b64({ a: 1 })],
  ['wrong arity', b64([1, 'x', 'y'])],
  ['not json', Buffer.from('[1,', 'utf8').toString('base64url')],
]
// The one-column cursors (admin lists keyed by slug) get their own forgeries.
const FORGED_ONE: [string, string][] = [
  ['number for text', b64([1.5])],
  ['NUL', b64(['a\u0000'])],
  ['two values', b64(['a', 'b'])],
]

test('the cursor codec checks each key against its column', () => {
  const cols = [KEY_COLUMNS.integer, KEY_COLUMNS.text]
  assert.deepEqual(checkKeyValues(decodeCursorToken(b64([1700000000000, 'run_x']), 512), cols), [1700000000000, 'run_x'])
  for (const [name, c] of FORGED) assert.throws(() => checkKeyValues(decodeCursorToken(c, 512), cols), CursorError, name)
  assert.throws(() => decodeCursorToken('a'.repeat(513), 512), CursorError)
  assert.throws(() => decodeCursorToken('not base64!', 512), CursorError)
})

for (const backend of backendNames()) {
  describe(`forged cursors (${backend})`, () => {
    test('every cursor-paged route answers 400 INVALID_CURSOR, never 5xx', async () => {
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
      try {
        const key = await t.onboard('cursor-org')
        const org = t.org(key)
        const run = await t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/cursor-org/tests/local/cursor', headers: org, payload: { parameters: { n: 1 } } })
        assert.equal(run.statusCode, 202, run.body)
        const values = { org_slug: 'cursor-org', run_id: run.json().run_id as string }
        // Data routes decode the dataset cursor (test/datasets covers it) only once the table exists.
        const routes = t.app.routeTable.filter((r) => r.method === 'GET' && queryFields(r).includes('cursor') && !r.url.includes(':table'))
        const urls = routes.map((r) => r.url)
        for (const expected of ['/api/v1/pipelines/:org_slug/runs', '/api/v1/pipelines/:org_slug/runs/:run_id/steps', '/api/v1/scheduler/:org_slug/schedules', '/api/v1/admin/audit-logs/:org_slug']) {
          assert.ok(urls.includes(expected), `${expected} is cursor-paged`)
        }
        for (const route of routes) {
          const headers = guardHeaders(route, t.root, org)
          const path = concretePath(route.url, values)
          const ok = await t.app.inject({ method: 'GET', url: path, headers })
          assert.equal(ok.statusCode, 200, `${route.url} answers without a cursor: ${ok.body}`)
          const oneColumn = route.url.endsWith('/organizations') || route.url.includes('/overview/')
          for (const [name, cursor] of [...FORGED, ...(oneColumn ? FORGED_ONE : [])]) {
            const res = await t.app.inject({ method: 'GET', url: `${path}?cursor=${cursor}`, headers })
            assert.equal(res.statusCode, 400, `${route.url} with a ${name} cursor: ${res.body}`)
            assert.equal(res.json().code, 'INVALID_CURSOR', `${route.url} with a ${name} cursor`)
          }
        }
      } finally {
        await t.close()
      }
    })
  })
}
