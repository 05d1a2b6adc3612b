// The credential state machine through the API (docs/credentials.md): a refused setup never replaces a
// working credential, a PENDING one is validated at its first use, and a destination refused by the
// egress policy has its own code, distinct from a malformed URL.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { backendNames } from '../helpers/backends.js'
import { eventually } from '../engine/fixtures.js'

const DAY = '2026-11-27'
const TOKEN = 'tok_orders_lifecycle_0123456789'
const WRONG = 'tok_orders_lifecycle_typo456789'

/** A JSON API for generic/http/example: one page of orders and a validation endpoint, Bearer TOKEN only. */
async function ordersApi(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return res.writeHead(401).end('{"error":"bad token"}')
    if (req.url === '/v1/me') return res.end('{"ok":true}')
    if (req.url?.startsWith('/v1/orders')) {
      return res.end(JSON.stringify({ data: [{ id: 'o1', status: 'paid', amount: 10, currency: 'USD', created_at: `${DAY}T10:00:00Z`, customer: { name: 'A' } }], next_cursor: null }))
    }
    res.writeHead(404).end('{}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) }
}

for (const backend of backendNames()) {
  describe(`credential lifecycle through the API (${backend})`, () => {
    let t: TestApp
    let api: Awaited<ReturnType<typeof ordersApi>>
    before(async () => {
      api = await ordersApi()
      t = await buildTestApp(backend)
      t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
    })
    after(async () => {
      await t.close()
      await api.close()
    })

    const meta = () => ({ base_url: api.url, auth_type: 'bearer', validation_url: `${api.url}/v1/me` })
    const setup = (org: string, key: string, payload: Record<string, unknown>) =>
      t.app.inject({ method: 'POST', url: `/api/v1/integrations/${org}/http/setup`, headers: t.org(key), payload })
    const status = async (org: string, key: string) => (await t.app.inject({ method: 'GET', url: `/api/v1/integrations/${org}/http`, headers: t.org(key) })).json()
    const trigger = (org: string, key: string) =>
      t.app.inject({ method: 'POST', url: `/api/v1/pipelines/run/${org}/generic/http/example`, headers: t.org(key), payload: { parameters: { date: DAY } } })
    const outcome = (org: string, key: string, runId: string) =>
      eventually(async () => {
        const s = (await t.app.inject({ method: 'GET', url: `/api/v1/pipelines/${org}/runs/${runId}`, headers: t.org(key) })).json().status as string
        return ['PENDING', 'RUNNING'].includes(s) ? undefined : s
      }, 'the run to finish')

    test('a refused setup over a VALID credential keeps it: 422 with the reason, and a run still succeeds', async () => {
      const key = await t.onboard('keep-org', 'PROFESSIONAL')
      const good = await setup('keep-org', key, { credential: TOKEN, metadata: meta() })
      assert.equal(good.json().status, 'VALID', good.body)

      const typo = await setup('keep-org', key, { credential: WRONG, metadata: meta() })
      assert.equal(typo.statusCode, 422, typo.body)
      assert.equal(typo.headers['content-type'], 'application/problem+json; charset=utf-8')
      const p = typo.json()
      assert.deepEqual([p.code, p.title, p.reason, p.detail], ['CREDENTIAL_REJECTED', 'Credential rejected by the provider', 'UNAUTHORIZED', 'Invalid request format'])
      assert.ok(!typo.body.includes(WRONG) && !typo.body.includes('bad token'), 'no secret, no upstream text')

      const kept = await status('keep-org', key)
      assert.deepEqual([kept.status, kept.credential_id, kept.fingerprint], ['VALID', good.json().credential_id, TOKEN.slice(-4)])
      const trig = await trigger('keep-org', key)
      assert.equal(trig.statusCode, 202, trig.body)
      assert.equal(await outcome('keep-org', key, trig.json().run_id), 'COMPLETED')

      const audit = (await t.app.inject({ method: 'GET', url: '/api/v1/organizations/keep-org/audit-logs?action=credential.rejected', headers: t.org(key) })).json()
      assert.equal(audit.logs.length, 1)
      assert.deepEqual([audit.logs[0].details.error_code, audit.logs[0].details.fingerprint], ['UNAUTHORIZED', WRONG.slice(-4)])
      assert.ok(!JSON.stringify(audit).includes(WRONG))

      // Asked for explicitly, the refused credential is stored INVALID and replaces the good one.
      const forced = await setup('keep-org', key, { credential: WRONG, metadata: meta(), store_invalid: true })
      assert.equal(forced.statusCode, 200, forced.body)
      assert.equal(forced.json().status, 'INVALID')
      assert.deepEqual([(await status('keep-org', key)).status, (await status('keep-org', key)).last_error_code], ['INVALID', 'UNAUTHORIZED'])
      const refused = await trigger('keep-org', key)
      assert.deepEqual([refused.statusCode, refused.json().code, refused.json().reason], [400, 'CREDENTIAL_INVALID', 'UNAUTHORIZED'])
    })

    test('skip_validation, then a trigger validates it: VALID and the run succeeds', async () => {
      const key = await t.onboard('pending-ok', 'PROFESSIONAL')
      const s = await setup('pending-ok', key, { credential: TOKEN, metadata: meta(), skip_validation: true })
      assert.equal(s.json().status, 'PENDING', s.body)
      const trig = await trigger('pending-ok', key)
      assert.equal(trig.statusCode, 202, trig.body)
      const v = await status('pending-ok', key)
      assert.deepEqual([v.status, v.last_error_code], ['VALID', null])
      assert.ok(v.last_validated_at)
      assert.equal(await outcome('pending-ok', key, trig.json().run_id), 'COMPLETED')
    })

    test('skip_validation with a wrong token, then a trigger: 422 CREDENTIAL_REJECTED, then CREDENTIAL_INVALID', async () => {
      const key = await t.onboard('pending-bad', 'PROFESSIONAL')
      assert.equal((await setup('pending-bad', key, { credential: WRONG, metadata: meta(), skip_validation: true })).json().status, 'PENDING')
      const first = await trigger('pending-bad', key)
      assert.deepEqual([first.statusCode, first.json().code, first.json().reason], [422, 'CREDENTIAL_REJECTED', 'UNAUTHORIZED'])
      assert.deepEqual([(await status('pending-bad', key)).status], ['INVALID'])
      const second = await trigger('pending-bad', key)
      assert.deepEqual([second.statusCode, second.json().code], [400, 'CREDENTIAL_INVALID'])
      const runs = (await t.app.inject({ method: 'GET', url: '/api/v1/pipelines/pending-bad/runs', headers: t.org(key) })).json()
      assert.equal(runs.runs.length, 0, 'no run was admitted')
    })

    test('a schedule for a PENDING credential validates it at creation', async () => {
      const key = await t.onboard('pending-sched', 'PROFESSIONAL')
      await setup('pending-sched', key, { credential: TOKEN, metadata: meta(), skip_validation: true })
      const res = await t.app.inject({
        method: 'POST', url: '/api/v1/scheduler/pending-sched/schedules', headers: t.org(key),
        payload: { pipeline_id: 'generic/http/example', cron: '0 3 * * *', timezone: 'UTC', parameters: { date: DAY } },
      })
      assert.equal(res.statusCode, 201, res.body)
      assert.equal((await status('pending-sched', key)).status, 'VALID')
      const id = res.json().schedule_id as string
      const fire = async () => {
        await t.ctx.db.kysely.updateTable('org_schedules').set({ next_run_at: Date.now() - 1000 }).where('schedule_id', '=', id).execute()
        return (await t.ctx.engine!.scheduler.tick())[id]
      }
      const last = async () => t.ctx.db.kysely.selectFrom('org_schedules').select(['last_status', 'last_error_code']).where('schedule_id', '=', id).executeTakeFirstOrThrow()

      // A fire refused because the credential is INVALID records that code, not a generic one.
      await setup('pending-sched', key, { credential: WRONG, metadata: meta(), store_invalid: true })
      await fire()
      assert.deepEqual(await last(), { last_status: 'REFUSED', last_error_code: 'CREDENTIAL_INVALID' })
      // A PENDING credential is validated by the fire itself, then the run is admitted.
      await setup('pending-sched', key, { credential: TOKEN, metadata: meta(), skip_validation: true })
      assert.equal(await fire(), 'admitted')
      assert.equal((await status('pending-sched', key)).status, 'VALID')
    })
  })
}

describe('egress policy refusals are DESTINATION_NOT_ALLOWED, malformed URLs INVALID_CREDENTIAL_FORMAT (production)', () => {
  let t: TestApp
  let key: string
  before(async () => {
    t = await buildTestApp('sqlite', {
      env: { ENVIRONMENT: 'production', EGRESS_ALLOW_LOOPBACK: 'false', RATE_LIMIT_ENABLED: 'true', EGRESS_ALLOWED_HOSTS: 'api.allowed.example' },
    })
    key = await t.onboard('prod-org', 'PROFESSIONAL')
  })
  after(() => t.close())

  const setup = (base_url: string) =>
    t.app.inject({
      method: 'POST', url: '/api/v1/integrations/prod-org/http/setup', headers: t.org(key),
      payload: { credential: TOKEN, metadata: { auth_type: 'bearer', base_url }, skip_validation: true },
    })

  test('each case gets its own code and names the field', async () => {
    for (const [url, status, code] of [
      ['https://api.not-listed.example/v1', 400, 'DESTINATION_NOT_ALLOWED'],
      ['https://169.254.169.254/latest', 400, 'DESTINATION_NOT_ALLOWED'],
      ['https://metadata.google.internal/', 400, 'DESTINATION_NOT_ALLOWED'],
      ['not a url at all', 400, 'INVALID_CREDENTIAL_FORMAT'],
      ['ftp://api.allowed.example/', 400, 'INVALID_CREDENTIAL_FORMAT'],
      ['http://api.allowed.example/', 400, 'INVALID_CREDENTIAL_FORMAT'],
      ['https://api.allowed.example/v1', 200, null],
    ] as const) {
      const res = await setup(url)
      assert.equal(res.statusCode, status, `${url}: ${res.body}`)
      if (code) {
        assert.equal(res.json().code, code, url)
        assert.equal(res.json().errors[0].path, 'body/metadata/base_url', url)
        assert.ok(!res.body.includes(url), 'the value is not echoed')
      }
    }
    const denied = await setup('https://api.not-listed.example/v1')
    assert.deepEqual(denied.json().errors, [{ path: 'body/metadata/base_url', message: 'is not an allowed destination' }])
    assert.equal(denied.json().title, 'Destination not allowed by egress policy')
  })
})
