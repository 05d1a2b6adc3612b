// The auth cache: sized from memory by default, evicts one org without touching the others.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { defaultAuthCacheMax } from '../../src/app/config.js'
import { buildTestApp } from '../helpers/app.js'

test('default cache size follows the heap limit, within bounds', () => {
  const GiB = 1024 ** 3
  assert.equal(defaultAuthCacheMax(256 * 1024 ** 2), 10_000)
  assert.equal(defaultAuthCacheMax(4 * GiB), Math.floor((4 * GiB * 0.025) / 1024))
  assert.ok(defaultAuthCacheMax(2 * GiB) >= 50_000, '50,000 orgs fit a 2 GiB heap')
  assert.equal(defaultAuthCacheMax(1024 * GiB), 1_000_000)
})

test('evicting one org drops only its cached keys; others stay cached', async () => {
  const t = await buildTestApp('sqlite')
  try {
    const keys = new Map<string, string>()
    for (const slug of ['cache-a', 'cache-b', 'cache-c']) keys.set(slug, await t.onboard(slug))
    const quota = (slug: string) => t.app.inject({ method: 'GET', url: `/api/v1/organizations/${slug}/quota`, headers: t.org(keys.get(slug)!) })
    for (const slug of keys.keys()) assert.equal((await quota(slug)).statusCode, 200)
    const before = t.ctx.auth.lookups
    for (const slug of keys.keys()) assert.equal((await quota(slug)).statusCode, 200)
    assert.equal(t.ctx.auth.lookups, before, 'all three served from the cache')
    await t.ctx.auth.evictOrg('cache-b')
    for (const slug of keys.keys()) assert.equal((await quota(slug)).statusCode, 200)
    assert.equal(t.ctx.auth.lookups, before + 1, 'only the evicted org was looked up again')
  } finally {
    await t.close()
  }
})
