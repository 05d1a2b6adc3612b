// Random identifiers: base62 from pooled CSPRNG bytes, each byte used once, no modulo bias.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { newId, randomBase62, ID_PATTERN } from '../../src/core/ids.js'
import { generateApiKey, isWellFormedApiKey } from '../../src/core/security/api-keys.js'

test('randomBase62: the asked length, only base62, every symbol about equally often, never a repeat across pool refills', () => {
  const counts = new Map<string, number>()
  const seen = new Set<string>()
  for (let i = 0; i < 20_000; i++) {
    const s = randomBase62(31)
    assert.equal(s.length, 31)
    assert.match(s, /^[0-9A-Za-z]{31}$/)
    assert.ok(!seen.has(s), 'a repeated value')
    seen.add(s)
    for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1)
  }
  // 620,000 symbols: 10,000 expected each, a standard deviation of about 100; a biased or stuck
  // generator lands far outside ±15 %.
  assert.equal(counts.size, 62)
  for (const [c, n] of counts) assert.ok(n > 8_500 && n < 11_500, `${c} appeared ${n} times`)
})

test('ids and API keys keep their formats', () => {
  const re = new RegExp(ID_PATTERN)
  for (let i = 0; i < 1000; i++) {
    assert.match(newId('run'), re)
    assert.ok(isWellFormedApiKey(generateApiKey()))
  }
})
