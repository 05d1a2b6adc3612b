// The per-org run-completion webhook: routes (secret shown once, never again), a delivery recorded
// with each terminal run state, signed like notify.webhook and checked by a local receiver, retried
// with backoff on 500 until delivered or FAILED, picked up again after a crashed sender's lease, and
// sent exactly once when two engine instances on PostgreSQL race for the same deliveries.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { backendNames, needsPostgres } from '../helpers/backends.js'
import { ManualClock } from '../../src/core/clock.js'
import { WebhookDispatcher } from '../../src/core/webhooks/dispatcher.js'
import type { EgressRequest, EgressResponse } from '../../src/core/http/types.js'

const TOKEN = 'tok_webhook_test_0123456789'

interface Received { headers: IncomingHttpHeaders; body: string }

/** Receives POST /hook (answers with the next queued status, default 200) and serves /v1/orders for the example pipeline. */
async function receiver() {
  const received: Received[] = []
  const statuses: number[] = []
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/hook') {
        received.push({ headers: req.headers, body })
        return res.writeHead(statuses.shift() ?? 200).end('{}')
      }
      if (req.method === 'POST' && req.url === '/hook-big') {
        // A receiver that accepts with a large page (e.g. an HTML "thanks"): the answer is its status.
        received.push({ headers: req.headers, body })
        return res.writeHead(200, { 'content-type': 'text/html' }).end('<p>ok</p>'.repeat(32 * 1024))
      }
      if (req.url?.startsWith('/v1/orders')) {
        res.setHeader('content-type', 'application/json')
        return res.end(JSON.stringify({ data: [{ id: 'o1', status: 'paid', amount: 1, currency: 'USD', created_at: '2026-11-20T10:00:00Z', customer: { name: 'A' } }], next_cursor: null }))
      }
      res.writeHead(404).end('{}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, received, statuses, close: () => new Promise<void>((r) => server.close(() => r())) }
}

const sign = (secret: string, ts: string, body: string) => `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function prepareOrg(t: TestApp, org: string, api: string): Promise<Record<string, string>> {
  const key = t.org(await t.onboard(org, 'SCALE'))
  // An http credential without validation_url is PENDING and usable (docs/credentials.md).
  const setup = await t.app.inject({ method: 'POST', url: `/api/v1/integrations/${org}/http/setup`, headers: key, payload: { credential: TOKEN, metadata: { auth_type: 'bearer', base_url: api } } })
  assert.equal(setup.statusCode, 200, setup.body)
  return key
}

/** Triggers the example pipeline and cancels it while PENDING: a terminal run without a worker. */
async function cancelledRun(t: TestApp, org: string, key: Record<string, string>, day: string): Promise<string> {
  const trig = await t.app.inject({ method: 'POST', url: `/api/v1/pipelines/run/${org}/generic/http/example`, headers: key, payload: { parameters: { date: day } } })
  assert.equal(trig.statusCode, 202, trig.body)
  const runId = trig.json().run_id as string
  const c = await t.app.inject({ method: 'POST', url: `/api/v1/pipelines/${org}/runs/${runId}/cancel`, headers: key, payload: {} })
  assert.deepEqual([c.statusCode, c.json().status], [202, 'CANCELLED'], c.body)
  return runId
}

const day = (i: number) => `2026-11-${String(1 + i).padStart(2, '0')}`

for (const backend of backendNames()) {
  describe(`org run-completion webhook (${backend})`, () => {
    let t: TestApp
    let rx: Awaited<ReturnType<typeof receiver>>
    let key: Record<string, string>
    let other: Record<string, string>
    let secret = ''
    const clock = new ManualClock(Date.now())
    before(async () => {
      rx = await receiver()
      t = await buildTestApp(backend, { clock })
      key = await prepareOrg(t, 'hook-org', rx.url)
      other = await prepareOrg(t, 'quiet-org', rx.url)
    })
    after(async () => {
      await t.close()
      await rx.close()
    })
    const hook = () => t.app.inject({ method: 'GET', url: '/api/v1/organizations/hook-org/webhook?limit=100', headers: key })
    const pass = () => t.ctx.engine!.webhooks!.runOnce() as Promise<{ claimed: number; delivered: number; retried: number; failed: number }>

    test('set: 201 with the secret once; update and read never show it; bad URLs are refused', async () => {
      const none = await hook()
      assert.deepEqual([none.statusCode, none.json().code], [404, 'NOT_FOUND'])
      const put = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/hook-org/webhook', headers: key, payload: { url: `${rx.url}/hook` } })
      assert.equal(put.statusCode, 201, put.body)
      assert.equal(put.headers['cache-control'], 'no-store')
      secret = put.json().signing_secret
      assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/)
      const again = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/hook-org/webhook', headers: key, payload: { url: `${rx.url}/hook` } })
      assert.deepEqual([again.statusCode, again.json().signing_secret, again.json().webhook_id], [200, null, put.json().webhook_id])
      const got = await hook()
      assert.equal(got.statusCode, 200)
      assert.ok(!got.body.includes(secret) && !('signing_secret' in got.json()))
      assert.deepEqual([got.json().url, got.json().deliveries], [`${rx.url}/hook`, []])
      const row = await t.ctx.db.kysely.selectFrom('org_run_webhooks').selectAll().where('org_slug', '=', 'hook-org').executeTakeFirstOrThrow()
      assert.ok(row.ciphertext && !row.ciphertext.includes(secret) && row.wrapped_key, 'stored envelope-encrypted')

      for (const [url, code] of [['not a url', 'VALIDATION_FAILED'], ['ftp://x.example/hook', 'VALIDATION_FAILED'], ['http://169.254.169.254/latest', 'DESTINATION_NOT_ALLOWED'], ['http://metadata.google.internal/', 'DESTINATION_NOT_ALLOWED']] as const) {
        const res = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/hook-org/webhook', headers: key, payload: { url } })
        assert.deepEqual([res.statusCode, res.json().code, res.json().errors[0].path], [400, code, 'body/url'], url)
      }
      const cross = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/hook-org/webhook', headers: other })
      assert.deepEqual([cross.statusCode, cross.json().code], [403, 'ORG_MISMATCH'])
      const audit = (await t.app.inject({ method: 'GET', url: '/api/v1/organizations/hook-org/audit-logs?action=webhook.created', headers: key })).json()
      assert.equal(audit.logs.length, 1)
      assert.ok(!JSON.stringify(audit).includes(secret))
    })

    test('a finished run is recorded with its outcome, retried on 500 with backoff, then delivered signed', async () => {
      const runId = await cancelledRun(t, 'hook-org', key, day(1))
      const rows = await t.ctx.db.kysely.selectFrom('org_webhook_deliveries').selectAll().where('run_id', '=', runId).execute()
      assert.deepEqual(rows.map((r) => [r.status, r.attempts]), [['PENDING', 0]], 'recorded with the run outcome, before any send')
      await cancelledRun(t, 'quiet-org', other, day(1))
      assert.equal((await t.ctx.db.kysely.selectFrom('org_webhook_deliveries').select('delivery_id').where('org_slug', '=', 'quiet-org').execute()).length, 0, 'no webhook, no delivery')

      rx.statuses.push(500, 500)
      assert.deepEqual(await pass(), { claimed: 1, delivered: 0, retried: 1, failed: 0 })
      assert.deepEqual(await pass(), { claimed: 0, delivered: 0, retried: 0, failed: 0 }, 'not due before its backoff')
      clock.advance(11_000)
      assert.deepEqual(await pass(), { claimed: 1, delivered: 0, retried: 1, failed: 0 })
      clock.advance(11_000)
      assert.equal((await pass()).claimed, 0, 'the second backoff is longer')
      clock.advance(11_000)
      assert.deepEqual(await pass(), { claimed: 1, delivered: 1, retried: 0, failed: 0 })

      assert.equal(rx.received.length, 3)
      const ids = new Set(rx.received.map((r) => r.headers['x-tenantflow-delivery']))
      assert.equal(ids.size, 1, 'one delivery id across retries')
      for (const r of rx.received) {
        const ts = String(r.headers['x-tenantflow-timestamp'])
        assert.equal(r.headers['x-tenantflow-signature'], sign(secret, ts, r.body), 'signature verifies')
        assert.equal(r.headers['x-tenantflow-event'], 'run.finished')
        assert.equal(r.headers['content-type'], 'application/json')
      }
      assert.notEqual(rx.received[0]!.headers['x-tenantflow-signature'], sign('whsec_wrong', String(rx.received[0]!.headers['x-tenantflow-timestamp']), rx.received[0]!.body))
      const body = JSON.parse(rx.received[2]!.body)
      assert.deepEqual(Object.keys(body).sort(), ['created_at', 'delivery_id', 'error_code', 'event', 'finished_at', 'org_slug', 'pipeline_id', 'run_id', 'started_at', 'status', 'trigger_type'])
      assert.deepEqual([body.run_id, body.status, body.error_code, body.pipeline_id, body.org_slug], [runId, 'CANCELLED', 'CANCELLED', 'generic/http/example', 'hook-org'])
      assert.ok(!rx.received.some((r) => r.body.includes(TOKEN) || r.body.includes(secret)), 'no secret in any payload')

      const metrics = await t.ctx.metrics.registry.getSingleMetricAsString('tenantflow_webhook_deliveries_total')
      assert.match(metrics, /tenantflow_webhook_deliveries_total\{outcome="retried"\} 2/)
      assert.match(metrics, /tenantflow_webhook_deliveries_total\{outcome="delivered"\} 1/)
      const view = (await hook()).json()
      assert.deepEqual([view.last_delivery_status, view.deliveries[0].status, view.deliveries[0].attempts, view.deliveries[0].last_status_code], ['DELIVERED', 'DELIVERED', 3, 200])
    })

    test('a receiver that keeps failing: FAILED after the bounded attempts', async () => {
      rx.received.length = 0
      await cancelledRun(t, 'hook-org', key, day(2))
      rx.statuses.push(...new Array(20).fill(500))
      let failed = 0
      for (let i = 0; i < 30 && failed === 0; i++) {
        failed = (await pass()).failed
        clock.advance(3_600_000)
      }
      assert.equal(failed, 1)
      assert.equal(rx.received.length, 8, 'eight sends in all')
      const d = (await hook()).json().deliveries[0]
      assert.deepEqual([d.status, d.attempts, d.last_status_code, d.last_error_code], ['FAILED', 8, 500, 'HTTP_ERROR'])
      rx.statuses.length = 0
    })

    test("a sender that died mid-send: its lease expires and the delivery is sent; deleting the webhook fails what is left", async () => {
      rx.received.length = 0
      const runId = await cancelledRun(t, 'hook-org', key, day(3))
      const k = t.ctx.db.kysely
      await k.updateTable('org_webhook_deliveries').set({ status: 'DELIVERING', lease_owner: 'whd_dead', lease_expires_at: clock.now() + 60_000, attempts: 1 }).where('run_id', '=', runId).execute()
      assert.equal((await pass()).claimed, 0, 'a live lease is respected')
      clock.advance(61_000)
      assert.deepEqual(await pass(), { claimed: 1, delivered: 1, retried: 0, failed: 0 })
      assert.equal(rx.received.length, 1)

      const pendingRun = await cancelledRun(t, 'hook-org', key, day(4))
      const del = await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/hook-org/webhook', headers: key, payload: {} })
      assert.deepEqual([del.statusCode, del.json().deleted], [200, true])
      const left = await k.selectFrom('org_webhook_deliveries').select(['status', 'last_error_code']).where('run_id', '=', pendingRun).executeTakeFirstOrThrow()
      assert.deepEqual([left.status, left.last_error_code], ['FAILED', 'WEBHOOK_DELETED'])
      assert.equal((await pass()).claimed, 0)
      assert.equal((await hook()).statusCode, 404)
      assert.equal((await t.app.inject({ method: 'DELETE', url: '/api/v1/organizations/hook-org/webhook', headers: key, payload: {} })).statusCode, 404)
      assert.equal((await k.selectFrom('org_run_webhooks').select('org_slug').where('org_slug', '=', 'hook-org').execute()).length, 0, 'the secret is gone')
    })
  })
}

for (const backend of backendNames()) {
  describe(`webhook deliveries stay bounded whatever goes wrong (${backend})`, () => {
    let t: TestApp
    let rx: Awaited<ReturnType<typeof receiver>>
    let key: Record<string, string>
    const clock = new ManualClock(Date.now())
    const quiet = { warn() {}, error() {} }
    const delivery = (runId: string) =>
      t.ctx.db.kysely.selectFrom('org_webhook_deliveries').select(['status', 'attempts', 'last_error_code', 'lease_owner']).where('run_id', '=', runId).executeTakeFirstOrThrow()
    before(async () => {
      rx = await receiver()
      t = await buildTestApp(backend, { clock })
      key = await prepareOrg(t, 'odd-org', rx.url)
      const put = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/odd-org/webhook', headers: key, payload: { url: `${rx.url}/hook` } })
      assert.equal(put.statusCode, 201, put.body)
    })
    after(async () => {
      await t.close()
      await rx.close()
    })

    test('an unexpected error in one send counts as an attempt and does not strand the rest of the batch', async () => {
      const runs = [await cancelledRun(t, 'odd-org', key, day(1)), await cancelledRun(t, 'odd-org', key, day(2))]
      let sends = 0
      const broken = new WebhookDispatcher({
        db: t.ctx.db, kms: t.ctx.kms, clock, logger: quiet,
        httpFor: () => ({ request: async () => { sends++; throw new TypeError('not an egress error') } }),
      })
      assert.deepEqual(await broken.runOnce(), { claimed: 2, delivered: 0, retried: 2, failed: 0 })
      assert.equal(sends, 2, 'the second delivery was still tried')
      for (const runId of runs) assert.deepEqual(await delivery(runId), { status: 'PENDING', attempts: 1, last_error_code: 'INTERNAL_ERROR', lease_owner: null })
      // Done with them: the next test counts its own deliveries only.
      await t.ctx.db.kysely.updateTable('org_webhook_deliveries').set({ status: 'FAILED' }).where('run_id', 'in', runs).execute()
    })

    test('slow receivers: a delivery is claimed just before its send, so a batch outlasting the lease is never sent twice', async () => {
      const runs: string[] = []
      for (let i = 0; i < 7; i++) runs.push(await cancelledRun(t, 'odd-org', key, day(10 + i)))
      const sends = new Map<string, number>()
      const start = clock.now()
      let other: WebhookDispatcher | null = null
      let raced = false
      // Each send takes 11 s (just over the 10 s send timeout): seven outlast the 60 s lease. Once past it,
      // a second process runs a pass in the middle of this one.
      const slow = {
        request: async (_url: string, req: EgressRequest = {}): Promise<EgressResponse> => {
          const id = String(req.headers?.['x-tenantflow-delivery'])
          sends.set(id, (sends.get(id) ?? 0) + 1)
          clock.advance(11_000)
          if (!raced && clock.now() > start + 60_000) {
            raced = true
            await other!.runOnce()
          }
          const body = Buffer.from('{}')
          return { status: 200, headers: {}, body, text: () => '{}', json: <T>() => ({}) as T }
        },
      }
      const deps = { db: t.ctx.db, kms: t.ctx.kms, clock, logger: quiet, httpFor: () => slow }
      // Seven of one org in a pass here; in production a pass of 20 across orgs outlasts the lease the same way.
      const first = new WebhookDispatcher(deps, { perOrg: 20 })
      other = new WebhookDispatcher(deps, { perOrg: 20 })
      const r = await first.runOnce()
      assert.ok(raced, 'the second pass ran while the first was still sending')
      assert.equal(sends.size, 7)
      assert.deepEqual([...sends.values()], new Array(7).fill(1), 'each delivery sent once')
      assert.equal(r.delivered + (7 - r.claimed), 7)
      for (const runId of runs) assert.equal((await delivery(runId)).status, 'DELIVERED')
    })

    test('a 2xx with a large body is delivered at once (the body is not read), not retried as too large', async () => {
      const hookUrl = (path: string) => t.app.inject({ method: 'PUT', url: '/api/v1/organizations/odd-org/webhook', headers: key, payload: { url: `${rx.url}${path}` } })
      assert.equal((await hookUrl('/hook-big')).statusCode, 200)
      rx.received.length = 0
      const runId = await cancelledRun(t, 'odd-org', key, day(20))
      const r = await t.ctx.engine!.webhooks!.runOnce()
      assert.deepEqual(r, { claimed: 1, delivered: 1, retried: 0, failed: 0 })
      assert.equal(rx.received.length, 1)
      assert.deepEqual(await delivery(runId), { status: 'DELIVERED', attempts: 1, last_error_code: null, lease_owner: null })
      assert.equal((await hookUrl('/hook')).statusCode, 200)
    })

    test("one org's backlog does not hold back another org's deliveries: a pass takes a few per org", async () => {
      const busy = await prepareOrg(t, 'busy-org', rx.url)
      assert.equal((await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/busy-org/webhook', headers: busy, payload: { url: `${rx.url}/hook` } })).statusCode, 201)
      // A backlog larger than a pass's window of rows (5 × batch): older than the other org's delivery.
      const whk = (await t.ctx.db.kysely.selectFrom('org_run_webhooks').select('webhook_id').where('org_slug', '=', 'busy-org').executeTakeFirstOrThrow()).webhook_id
      const at = clock.now() - 60_000
      await t.ctx.db.kysely
        .insertInto('org_webhook_deliveries')
        .values(Array.from({ length: 150 }, (_, i) => ({
          delivery_id: `dlv_busy_${String(i).padStart(4, '0')}`, org_slug: 'busy-org', webhook_id: whk, run_id: `run_busy_${i}`, event: 'run.finished', payload: '{}',
          status: 'PENDING' as const, attempts: 0, next_attempt_at: at + i, lease_owner: null, lease_expires_at: null, last_status_code: null, last_error_code: null,
          delivered_at: null, created_at: at, updated_at: at,
        })))
        .execute()
      const late = await cancelledRun(t, 'odd-org', key, day(21))
      const seen: string[] = []
      const counting = new WebhookDispatcher({
        db: t.ctx.db, kms: t.ctx.kms, clock, logger: quiet,
        httpFor: (org) => ({ request: async () => { seen.push(org); const body = Buffer.alloc(0); return { status: 200, headers: {}, body, text: () => '', json: <T>() => ({}) as T } } }),
      })
      await counting.runOnce()
      assert.equal((await delivery(late)).status, 'DELIVERED', "the other org's delivery went out in the first pass")
      assert.ok(seen.filter((o) => o === 'busy-org').length <= 5, 'at most a few of the busy org per pass')
      for (let i = 0; i < 60 && seen.length < 151; i++) await counting.runOnce()
      assert.equal(seen.length, 151, 'the backlog drains over the next passes')
    })

    test('a lease that expires after the last attempt fails the delivery instead of sending it a ninth time', async () => {
      rx.received.length = 0
      const runId = await cancelledRun(t, 'odd-org', key, day(3))
      await t.ctx.db.kysely
        .updateTable('org_webhook_deliveries')
        .set({ status: 'DELIVERING', lease_owner: 'whd_dead', lease_expires_at: clock.now() - 1, attempts: 8 })
        .where('run_id', '=', runId)
        .execute()
      const r = await t.ctx.engine!.webhooks!.runOnce()
      assert.deepEqual(r, { claimed: 0, delivered: 0, retried: 0, failed: 1 })
      assert.equal(rx.received.length, 0, 'not sent again')
      assert.deepEqual(await delivery(runId), { status: 'FAILED', attempts: 8, last_error_code: 'LEASE_EXPIRED', lease_owner: null })
      const view = (await t.app.inject({ method: 'GET', url: '/api/v1/organizations/odd-org/webhook', headers: key })).json()
      assert.deepEqual([view.last_delivery_status, view.last_error_code], ['FAILED', 'LEASE_EXPIRED'], 'the webhook shows the last outcome')
    })
  })
}

describe('two engine instances on PostgreSQL send each delivery exactly once', { skip: needsPostgres() }, () => {
  let a: TestApp
  let b: TestApp
  let rx: Awaited<ReturnType<typeof receiver>>
  before(async () => {
    rx = await receiver()
    a = await buildTestApp('postgres')
    b = await buildTestApp('postgres', { backend: a.backend })
  })
  after(async () => {
    await b.close()
    await a.close()
    await rx.close()
  })

  test('runs finished on either instance; both dispatchers race; the receiver sees each delivery once', async () => {
    const key = await prepareOrg(a, 'race-org', rx.url)
    const put = await a.app.inject({ method: 'PUT', url: '/api/v1/organizations/race-org/webhook', headers: key, payload: { url: `${rx.url}/hook` } })
    assert.equal(put.statusCode, 201, put.body)
    const runs: string[] = []
    for (let i = 0; i < 6; i++) runs.push(await cancelledRun(i % 2 ? b : a, 'race-org', key, day(i + 1)))
    // Both instances run workers (so their dispatchers poll on their own) while the test also races explicit passes.
    a.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
    b.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
    // Two completed by a worker too.
    for (let i = 0; i < 2; i++) {
      const trig = await b.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/race-org/generic/http/example', headers: key, payload: { parameters: { date: day(10 + i) } } })
      assert.equal(trig.statusCode, 202, trig.body)
      runs.push(trig.json().run_id)
    }
    const delivered = async () =>
      (await a.ctx.db.kysely.selectFrom('org_webhook_deliveries').select('delivery_id').where('org_slug', '=', 'race-org').where('status', '=', 'DELIVERED').execute()).length
    while ((await delivered()) < runs.length) {
      await Promise.all([a.ctx.engine!.webhooks!.runOnce(), b.ctx.engine!.webhooks!.runOnce(), a.ctx.engine!.webhooks!.runOnce(), b.ctx.engine!.webhooks!.runOnce()])
      await until(async () => true, 'a tick')
    }
    await Promise.all([a.ctx.engine!.webhooks!.runOnce(), b.ctx.engine!.webhooks!.runOnce()])
    const perDelivery = new Map<string, number>()
    for (const r of rx.received) perDelivery.set(String(r.headers['x-tenantflow-delivery']), (perDelivery.get(String(r.headers['x-tenantflow-delivery'])) ?? 0) + 1)
    assert.equal(perDelivery.size, runs.length)
    assert.deepEqual([...perDelivery.values()], new Array(runs.length).fill(1), 'each delivery sent exactly once')
    const bodies = rx.received.map((r) => JSON.parse(r.body) as { run_id: string; status: string })
    assert.deepEqual(bodies.map((x) => x.run_id).sort(), [...runs].sort())
    assert.deepEqual(bodies.filter((x) => x.status === 'COMPLETED').length, 2)
  })
})
