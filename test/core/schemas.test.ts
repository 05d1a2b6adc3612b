// Every input schema of every registered route is bounded (SPEC §6): strings have maxLength, arrays
// maxItems, numbers both bounds, objects reject unknown fields. New routes are covered automatically.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { buildTestApp, type TestApp } from '../helpers/app.js'

type Schema = Record<string, unknown>

/** Returns the paths (inside one schema) that break a bound rule. */
export function unboundedPaths(schema: unknown, path: string, isRoot = false, part = ''): string[] {
  if (!schema || typeof schema !== 'object') return []
  const s = schema as Schema
  const out: string[] = []
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (Array.isArray(s[key])) (s[key] as unknown[]).forEach((sub, i) => out.push(...unboundedPaths(sub, `${path}/${key}${i}`, isRoot, part)))
  }
  const isConst = 'const' in s || Array.isArray(s.enum)
  switch (s.type) {
    case 'string':
      if (!isConst && typeof s.maxLength !== 'number') out.push(`${path}: string without maxLength`)
      break
    case 'number':
    case 'integer':
      if (!isConst && (s.minimum === undefined && s.exclusiveMinimum === undefined)) out.push(`${path}: number without minimum`)
      if (!isConst && (s.maximum === undefined && s.exclusiveMaximum === undefined)) out.push(`${path}: number without maximum`)
      break
    case 'array':
      if (typeof s.maxItems !== 'number') out.push(`${path}: array without maxItems`)
      out.push(...unboundedPaths(s.items, `${path}/items`))
      break
    case 'object': {
      // Headers carry the client's other headers too; every other object refuses unknown fields.
      if (!(isRoot && part === 'headers') && s.additionalProperties !== false) out.push(`${path}: object accepts unknown fields`)
      for (const [k, v] of Object.entries((s.properties as Schema | undefined) ?? {})) out.push(...unboundedPaths(v, `${path}/${k}`))
      for (const [k, v] of Object.entries((s.patternProperties as Schema | undefined) ?? {})) out.push(...unboundedPaths(v, `${path}/${k}`))
      if (s.patternProperties && typeof s.maxProperties !== 'number') out.push(`${path}: map without maxProperties`)
      break
    }
  }
  return out
}

describe('input schema bounds', () => {
  let t: TestApp
  before(async () => {
    t = await buildTestApp('sqlite')
  })
  after(async () => t.close())

  test('the walker catches each kind of unbounded input', () => {
    assert.deepEqual(unboundedPaths({ type: 'string' }, 'x'), ['x: string without maxLength'])
    assert.deepEqual(unboundedPaths({ type: 'integer', minimum: 1 }, 'x'), ['x: number without maximum'])
    assert.deepEqual(unboundedPaths({ type: 'array', maxItems: 2, items: { type: 'string', maxLength: 3 } }, 'x'), [])
    assert.deepEqual(unboundedPaths({ type: 'array', items: { type: 'string', maxLength: 3 } }, 'x'), ['x: array without maxItems'])
    assert.deepEqual(unboundedPaths({ type: 'object', properties: {} }, 'x'), ['x: object accepts unknown fields'])
    assert.deepEqual(unboundedPaths({ type: 'object', properties: {} }, 'x', true, 'headers'), [])
    assert.deepEqual(unboundedPaths({ anyOf: [{ type: 'string', const: 'A' }, { type: 'null' }] }, 'x'), [])
  })

  test('every route with input declares bounded, closed schemas', () => {
    const problems: string[] = []
    let walked = 0
    for (const r of t.app.routeTable) {
      for (const [part, schema] of Object.entries(r.input)) {
        walked++
        problems.push(...unboundedPaths(schema, `${r.method} ${r.url} ${part}`, true, part))
      }
      // A route with path parameters must validate them.
      if (r.url.includes('/:') && !r.input.params) problems.push(`${r.method} ${r.url}: path parameters without a schema`)
      // Every route validates its query string (an empty closed object when it takes none).
      if (!r.input.querystring) problems.push(`${r.method} ${r.url}: no querystring schema`)
      // Every POST/PUT/DELETE declares its body (an empty strict object when it takes none).
      if (['POST', 'PUT', 'DELETE'].includes(r.method) && !r.input.body) problems.push(`${r.method} ${r.url}: no body schema`)
    }
    assert.ok(walked >= 10)
    assert.deepEqual(problems, [])
  })
})
