// Bound LIMIT/OFFSET values are compiled into SQLite statements as validated integer literals.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { inlineLimits, limitParameterSlots } from '../../src/core/db/database.js'

test('finds LIMIT and OFFSET placeholders, not other ones or ones in quoted text', () => {
  const text = `select * from t where a = ? and b = '?limit ?' and "c?" = ? order by a limit ? offset ?`
  assert.deepEqual(limitParameterSlots(text), [2, 3])
  assert.deepEqual(limitParameterSlots('select 1 where x = ?'), [])
  assert.deepEqual(limitParameterSlots('select 1 LIMIT ?'), [0])
})

test('inlines safe non-negative integers and keeps every other value bound', () => {
  const text = 'select * from t where a = ? limit ? offset ?'
  const slots = limitParameterSlots(text)
  assert.deepEqual(inlineLimits(text, ['x', 10, 20], slots), { sql: 'select * from t where a = ? limit 10 offset 20', parameters: ['x'] })
  // Anything that is not a plain non-negative integer stays a bound parameter.
  for (const bad of [1.5, -1, Number.MAX_SAFE_INTEGER + 2, '5; drop table t', null, 10n]) {
    const r = inlineLimits(text, ['x', bad, 0], slots)
    assert.equal(r.sql, 'select * from t where a = ? limit ? offset 0')
    assert.deepEqual(r.parameters, ['x', bad])
  }
})
