// No leaks: a forced internal failure returns the standard 500 body; logs never hold key material.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, TEST_ROOT_KEY, type TestApp } from '../helpers/app.js'

for (const backend of backendNames()) {
  describe(`no leaks (${backend})`, () => {
    let t: TestApp
    let key: string
    before(async () => {
      t = await buildTestApp(backend)
      key = await t.onboard('leak-org')
    })
    after(async () => t.close())

    test('a forced internal failure returns only the standard 500 body with a request id', async () => {
      const secretish = `SELECT * FROM org_api_keys /srv/tenantflow/secret.ts ${key}`
      const original = t.ctx.db.kysely.selectFrom.bind(t.ctx.db.kysely)
      ;(t.ctx.db.kysely as { selectFrom: unknown }).selectFrom = () => {
        throw new Error(secretish)
      }
      try {
        const res = await t.app.inject({
          method: 'GET',
          url: '/api/v1/organizations/leak-org/subscription',
          headers: { ...t.root, 'x-request-id': 'req-forced-500' },
        })
        assert.equal(res.statusCode, 500)
        assert.deepEqual(res.json(), {
          type: 'https://tenantflow.dev/problems/internal-error',
          title: 'Internal error',
          status: 500,
          detail: 'Internal error. Check server logs.',
          code: 'INTERNAL_ERROR',
          request_id: 'req-forced-500',
        })
        assert.equal(res.headers['x-request-id'], 'req-forced-500')
      } finally {
        ;(t.ctx.db.kysely as { selectFrom: unknown }).selectFrom = original
      }
      const logged = t.logs.join('')
      assert.ok(logged.includes('req-forced-500'), 'the failure is logged with its request id')
      assert.ok(!logged.includes(key), 'org key is scrubbed from the logged error')
    })

    test('insane request ids are replaced, sane ones echoed', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'bad id <script>' } })
      assert.notEqual(res.headers['x-request-id'], 'bad id <script>')
      assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/)
    })

    test('logs contain no key material after authenticated traffic', async () => {
      await t.app.inject({ method: 'GET', url: '/api/v1/organizations/leak-org/quota', headers: t.org(key) })
      await t.app.inject({ method: 'GET', url: '/api/v1/admin/organizations', headers: t.root })
      await t.app.inject({ method: 'GET', url: '/api/v1/organizations/leak-org/quota', headers: { 'x-api-key': key.slice(0, -1) + 'Z' } })
      const rotated = await t.app.inject({ method: 'POST', url: '/api/v1/organizations/leak-org/api-key/rotate', headers: t.org(key), payload: {} })
      const newKey = rotated.json().api_key as string
      const logged = t.logs.join('')
      assert.ok(logged.split('\n').filter(Boolean).length > 5, 'lines were logged')
      for (const secret of [key, newKey, TEST_ROOT_KEY, key.slice(3, 33)]) assert.ok(!logged.includes(secret), 'secret found in logs')
    })
  })
}
