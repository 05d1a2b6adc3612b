// docs/guide.md stays true: every curl in it targets a route that exists with that method, and every
// operation group of the API is walked through (each route appears at least once).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { isDocsRoute } from '../../src/app/openapi/document.js'

const GUIDE = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'guide.md'), 'utf8')

/** The curl calls of the guide as [method, path] (shell variables stand for path segments). */
function curlCalls(): [string, string][] {
  const text = GUIDE.replace(/\\\n\s*/g, ' ')
  const calls: [string, string][] = []
  for (const line of text.split('\n')) {
    for (const m of line.matchAll(/curl [^|]*?"?\$TF(\/[^\s"?']*)/g)) {
      const method = /-X (GET|POST|PUT|DELETE|PATCH)\b/.exec(line.slice(0, m.index! + m[0].length))?.[1] ?? 'GET'
      calls.push([method, m[1]!])
    }
  }
  return calls
}

const matches = (routeUrl: string, path: string) => {
  const r = routeUrl.split('/')
  const p = path.split('/')
  return r.length === p.length && r.every((seg, i) => seg.startsWith(':') || seg === p[i] || (p[i]!.startsWith('$') && seg.startsWith(':')))
}

describe('docs/guide.md', () => {
  let t: TestApp
  before(async () => {
    t = await buildTestApp('sqlite')
  })
  after(() => t.close())

  test('every curl targets an existing route with its method', () => {
    const calls = curlCalls()
    assert.ok(calls.length >= 30, `only ${calls.length} curl calls found`)
    for (const [method, path] of calls) {
      assert.ok(t.app.routeTable.some((r) => r.method === method && matches(r.url, path)), `${method} ${path} is not a route`)
    }
  })

  test('every API route is shown at least once', () => {
    const calls = curlCalls()
    const missing = t.app.routeTable
      .filter((r) => !isDocsRoute(r.url) && !r.url.startsWith('/health') && r.url !== '/metrics')
      // The web console's pages and cookie session are for browsers, not curl.
      .filter((r) => r.url !== '/console' && !r.url.startsWith('/console/'))
      .filter((r) => !calls.some(([m, p]) => m === r.method && matches(r.url, p)))
      .map((r) => `${r.method} ${r.url}`)
    assert.deepEqual(missing, [])
  })
})
