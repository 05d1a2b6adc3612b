import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { createWebhookProcessor } from '../../src/core/processors/notify/index.js'
import { ProcessorConfigError } from '../../src/core/processors/types.js'
import { expectProcessorError, json, makeCtx, setupEnv, startServer, type Env, type TestServer } from './helpers.js'

const SECRET = 'whsec-TOPSECRET-signing-key'
const LEAK = 'UPSTREAM-LEAK-TEXT'

describe('notify.webhook', () => {
  let env: Env
  let server: TestServer
  let status = 200
  let failOnce = false
  before(async () => {
    env = await setupEnv('sqlite')
    server = await startServer((_req, res) => {
      if (failOnce) {
        failOnce = false
        return json(res, 503, { error: LEAK }, { 'retry-after': '0' })
      }
      json(res, status, status === 200 ? { ok: true } : { error: LEAK })
    })
  })
  after(async () => {
    await server.close()
    await env.close()
  })
  const ctx = () =>
    makeCtx(env, {
      secret: SECRET,
      now: Date.parse('2026-11-28T06:00:00Z'),
      upstream: { usage: { status: 'COMPLETED', rows_processed: 4, output: { token: 'x' } }, cost: { status: 'COMPLETED', rows_processed: 3 } },
    })
  const p = createWebhookProcessor()

  test('POSTs a signed, secret-free summary; the receiver can verify the HMAC', async () => {
    status = 200
    failOnce = true
    const r = await p.run(ctx(), p.validateConfig({ url: `${server.url}/hook` }))
    assert.equal(r.output?.delivered, true)
    const req = server.requests.at(-1)!
    assert.equal(server.requests.length, 2, 'a 503 is retried inside the step')
    assert.equal(req.method, 'POST')
    assert.equal(req.headers['content-type'], 'application/json')
    const ts = req.headers['x-tenantflow-timestamp'] as string
    assert.equal(ts, String(Date.parse('2026-11-28T06:00:00Z') / 1000))
    const expected = `sha256=${createHmac('sha256', SECRET).update(`${ts}.${req.body}`).digest('hex')}`
    assert.equal(req.headers['x-tenantflow-signature'], expected)
    const body = JSON.parse(req.body)
    assert.equal(body.org_slug, 'acme')
    assert.equal(body.run_id, 'run_test0000000000')
    assert.equal(body.status, 'COMPLETED')
    assert.equal(body.rows_processed, 7)
    assert.deepEqual(body.steps.map((s: { step_id: string }) => s.step_id), ['usage', 'cost'])
    assert.ok(!req.body.includes(SECRET))
    assert.ok(!req.body.includes('token'), 'step outputs are not forwarded')
  })

  test('receiver errors fail the step without upstream text', async () => {
    status = 401
    await expectProcessorError(p.run(ctx(), p.validateConfig({ url: `${server.url}/hook` })), 'UNAUTHORIZED', [LEAK, SECRET])
    status = 400
    await expectProcessorError(p.run(ctx(), p.validateConfig({ url: `${server.url}/hook` })), 'UPSTREAM_ERROR', [LEAK, SECRET])
    status = 200
  })

  test('config: absolute http(s) URL without credentials, no unknown keys', () => {
    for (const url of ['ftp://x.example/a', '/relative', 'https://user:pw@x.example/a']) {
      assert.throws(() => p.validateConfig({ url }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'url')
    }
    assert.throws(() => p.validateConfig({ url: 'https://x.example', secret: 's' }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'secret')
  })
})
