// The operator-managed per-org egress allow-list: root-only routes, hostname validation, audit, and a
// change that applies without a restart on every instance (cache evicted through the event bus),
// for one org only, never unblocking private, loopback or metadata addresses.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { backendNames } from '../helpers/backends.js'
import { LocalBus } from '../../src/core/events/bus.js'
import { openDatabase } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { freshBackend } from '../helpers/backends.js'
import { normalizeEgressHost, OrgEgressHosts, orgEgressClient, replaceOrgEgressHosts } from '../../src/core/http/egress-allowlist.js'
import type { EgressRequest } from '../../src/core/http/types.js'

const PROD = { ENVIRONMENT: 'production', EGRESS_ALLOW_LOOPBACK: 'false', RATE_LIMIT_ENABLED: 'true', EGRESS_ALLOWED_HOSTS: 'api.global.example' }
const TOKEN = 'tok_partner_allowlist_0123456789'

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test('host entries: DNS names and *.suffix only; IPs, ports, localhost, internal and metadata names refused', () => {
  assert.equal(normalizeEgressHost(' API.Partner.Example. '), 'api.partner.example')
  assert.equal(normalizeEgressHost('*.eu.partner.example'), '*.eu.partner.example')
  for (const bad of ['10.0.0.1', '127.0.0.1', '::1', '[::1]', 'localhost', 'api.localhost', 'metadata.google.internal', 'x.internal', '*.internal',
    'printer.local', 'metadata.goog', 'api.partner.example:8443', 'https://api.partner.example', 'api.partner.example/v1', '*', '*.com.', 'a..b.example', '']) {
    assert.equal(normalizeEgressHost(bad), null, bad)
  }
})

test('the per-process cache is evicted by egress.changed, org.offboarded and auth.evict_all; the org client passes its hosts', async () => {
  const backend = await freshBackend('sqlite')
  const db = openDatabase({ databaseUrl: null, dataDir: backend.dataDir })
  try {
    await migrateToLatest(db)
    const bus = new LocalBus()
    const cache = new OrgEgressHosts(db.kysely)
    cache.attach(bus)
    const put = (org: string, hosts: string[]) => db.kysely.transaction().execute((trx) => replaceOrgEgressHosts(trx, org, hosts, Date.now()))
    assert.deepEqual(await cache.hostsFor('acme'), [])
    await put('acme', ['api.partner.example'])
    assert.deepEqual(await cache.hostsFor('acme'), [], 'cached until evicted')
    await bus.publish({ type: 'egress.changed', org_slug: 'acme' })
    assert.deepEqual(await cache.hostsFor('acme'), ['api.partner.example'])
    assert.deepEqual(await cache.hostsFor('globex'), [], 'another org has its own list')
    await put('acme', [])
    await bus.publish({ type: 'auth.evict_all' })
    assert.deepEqual(await cache.hostsFor('acme'), [])
    await put('acme', ['b.partner.example'])
    await bus.publish({ type: 'org.offboarded', org_slug: 'acme' })
    assert.deepEqual(await cache.hostsFor('acme'), ['b.partner.example'])

    const seen: EgressRequest[] = []
    const base = { request: async (_url: string, req: EgressRequest = {}) => (seen.push(req), { status: 200, headers: {}, body: Buffer.alloc(0), text: () => '', json: <T>() => ({}) as T }) }
    await orgEgressClient(base, () => cache.hostsFor('acme')).request('https://b.partner.example/x', { method: 'POST' })
    await orgEgressClient(base, () => cache.hostsFor('globex')).request('https://b.partner.example/x')
    assert.deepEqual([seen[0]!.extraAllowedHosts, seen[0]!.method, seen[1]!.extraAllowedHosts], [['b.partner.example'], 'POST', undefined])
  } finally {
    await db.close()
    await backend.cleanup()
  }
})

for (const backend of backendNames()) {
  describe(`per-org egress allow-list routes (${backend}, production)`, () => {
    // On PostgreSQL a second instance on the same database proves the change reaches every instance.
    let a: TestApp
    let b: TestApp
    let acme: string
    let globex: string
    before(async () => {
      a = await buildTestApp(backend, { env: PROD })
      b = backend === 'postgres' ? await buildTestApp(backend, { env: PROD, backend: a.backend }) : a
      acme = await a.onboard('acme', 'PROFESSIONAL')
      globex = await a.onboard('globex', 'PROFESSIONAL')
    })
    after(async () => {
      if (b !== a) await b.close()
      await a.close()
    })

    const hostsUrl = (org: string) => `/api/v1/admin/organizations/${org}/egress-hosts`
    const put = (hosts: unknown[], headers: Record<string, string> = a.root, org = 'acme') => a.app.inject({ method: 'PUT', url: hostsUrl(org), headers, payload: { hosts } })
    const setupOn = (t: TestApp, org: string, key: string, base_url: string) =>
      t.app.inject({
        method: 'POST', url: `/api/v1/integrations/${org}/http/setup`, headers: t.org(key),
        payload: { credential: TOKEN, metadata: { auth_type: 'bearer', base_url }, skip_validation: true },
      })

    test('an allowed host works at once without a restart, for that org only', async () => {
      // Both instances first see (and cache) the empty list.
      for (const t of new Set([a, b])) {
        const before = await setupOn(t, 'acme', acme, 'https://api.partner.example/v1')
        assert.deepEqual([before.statusCode, before.json().code], [400, 'DESTINATION_NOT_ALLOWED'])
      }
      const res = await put(['API.partner.example', '*.eu.partner.example', 'api.partner.example'])
      assert.equal(res.statusCode, 200, res.body)
      assert.deepEqual(res.json(), { org_slug: 'acme', hosts: ['*.eu.partner.example', 'api.partner.example'], added: ['*.eu.partner.example', 'api.partner.example'], removed: [] })

      assert.equal((await setupOn(a, 'acme', acme, 'https://api.partner.example/v1')).statusCode, 200, 'the instance that changed it')
      await until(async () => (await setupOn(b, 'acme', acme, 'https://fr.eu.partner.example/v1')).statusCode === 200, 'the other instance to see the new list')
      const ok = await setupOn(b, 'acme', acme, 'https://api.partner.example/v1')
      assert.deepEqual([ok.statusCode, ok.json().status], [200, 'PENDING'])

      for (const t of new Set([a, b])) {
        const other = await setupOn(t, 'globex', globex, 'https://api.partner.example/v1')
        assert.deepEqual([other.statusCode, other.json().code], [400, 'DESTINATION_NOT_ALLOWED'], 'other orgs are unaffected')
      }
      const get = await b.app.inject({ method: 'GET', url: hostsUrl('acme'), headers: b.root })
      assert.deepEqual(get.json(), { org_slug: 'acme', hosts: ['*.eu.partner.example', 'api.partner.example'] })
      assert.deepEqual((await b.app.inject({ method: 'GET', url: hostsUrl('globex'), headers: b.root })).json().hosts, [])

      const audit = (await a.app.inject({ method: 'GET', url: '/api/v1/organizations/acme/audit-logs?action=egress_hosts.replaced', headers: a.org(acme) })).json()
      assert.equal(audit.logs.length, 1)
      assert.deepEqual([audit.logs[0].actor, audit.logs[0].details], ['root', { added: ['*.eu.partner.example', 'api.partner.example'], removed: [] }])

      // Removing it applies the same way.
      const cleared = await put(['*.eu.partner.example'])
      assert.deepEqual(cleared.json().removed, ['api.partner.example'])
      await until(async () => (await setupOn(b, 'acme', acme, 'https://api.partner.example/v1')).statusCode === 400, 'the removal to reach the other instance')
      // The stored credential names the removed host: validating it is refused, its status left alone.
      const v = await b.app.inject({ method: 'POST', url: '/api/v1/integrations/acme/http/validate', headers: b.org(acme), payload: {} })
      assert.deepEqual([v.statusCode, v.json().code], [400, 'DESTINATION_NOT_ALLOWED'], v.body)
      assert.equal((await b.app.inject({ method: 'GET', url: '/api/v1/integrations/acme/http', headers: b.org(acme) })).json().status, 'PENDING')
    })

    test('private, loopback and metadata addresses stay blocked even with a wildcard listed; bad entries are each reported', async () => {
      const bad = await put(['ok.partner.example', '10.0.0.1', 'metadata.google.internal', 'localhost', 'api.partner.example:443', '169.254.169.254'])
      assert.equal(bad.statusCode, 400, bad.body)
      assert.equal(bad.json().code, 'VALIDATION_FAILED')
      assert.deepEqual(bad.json().errors.map((e: { path: string }) => e.path), ['body/hosts/1', 'body/hosts/2', 'body/hosts/3', 'body/hosts/4', 'body/hosts/5'])
      assert.ok(!bad.body.includes('10.0.0.1') && !bad.body.includes('metadata.google'), 'values are not echoed')
      assert.deepEqual((await a.app.inject({ method: 'GET', url: hostsUrl('acme'), headers: a.root })).json().hosts, ['*.eu.partner.example'], 'nothing changed')

      assert.equal((await put(['*.partner.example'])).statusCode, 200)
      for (const url of ['https://169.254.169.254/latest', 'https://10.0.0.1/', 'https://127.0.0.1/', 'https://[::1]/', 'https://metadata.google.internal/', 'http://x.partner.example/']) {
        const res = await setupOn(a, 'acme', acme, url)
        assert.equal(res.statusCode, 400, `${url} ${res.body}`)
        assert.ok(['DESTINATION_NOT_ALLOWED', 'INVALID_CREDENTIAL_FORMAT'].includes(res.json().code), url)
      }
      assert.equal((await setupOn(a, 'acme', acme, 'https://x.partner.example/')).statusCode, 200)
    })

    test("a run's calls use the org's list: the listed host is reached (DNS), not refused; a removed host refuses the trigger", async () => {
      assert.equal((await put(['*.partner.example'])).statusCode, 200)
      const setup = await setupOn(a, 'acme', acme, 'https://orders.partner.example')
      assert.equal(setup.statusCode, 200, setup.body)
      // The process-wide client alone refuses the host (production, not in EGRESS_ALLOWED_HOSTS).
      await assert.rejects(a.ctx.egress.request('https://orders.partner.example/v1/orders'), (e: unknown) => (e as { code?: string }).code === 'BLOCKED_DESTINATION')
      a.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
      const trig = await a.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/acme/generic/http/example', headers: a.org(acme), payload: { parameters: { date: '2026-11-20' } } })
      assert.equal(trig.statusCode, 202, trig.body)
      let run: { status: string; error_code: string | null } = { status: 'PENDING', error_code: null }
      await until(async () => {
        run = await a.ctx.db.kysely.selectFrom('org_pipeline_runs').select(['status', 'error_code']).where('run_id', '=', trig.json().run_id).executeTakeFirstOrThrow()
        return !['PENDING', 'RUNNING'].includes(run.status)
      }, 'the run to finish')
      // No DNS for the name on this machine: the call got past the policy and failed to connect.
      assert.deepEqual([run.status, run.error_code], ['FAILED', 'UNREACHABLE'])

      assert.equal((await put([])).statusCode, 200)
      await until(async () => (await b.ctx.egressHosts.hostsFor('acme')).length === 0, 'the removal to reach the other instance')
      const refused = await b.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/acme/generic/http/example', headers: b.org(acme), payload: { parameters: { date: '2026-11-21' } } })
      assert.deepEqual([refused.statusCode, refused.json().code], [400, 'DESTINATION_NOT_ALLOWED'], refused.body)
    })

    test('root key only: an org key gets 403 (even for its own org), an unknown org 404, unknown fields 400', async () => {
      for (const method of ['GET', 'PUT'] as const) {
        const res = await a.app.inject({ method, url: hostsUrl('acme'), headers: a.org(acme), ...(method === 'PUT' ? { payload: { hosts: ['evil.example'] } } : {}) })
        assert.deepEqual([res.statusCode, res.json().code], [403, 'ADMIN_REQUIRED'], method)
      }
      assert.deepEqual((await a.app.inject({ method: 'GET', url: hostsUrl('acme') })).statusCode, 401)
      assert.deepEqual((await a.app.inject({ method: 'GET', url: hostsUrl('nobody'), headers: a.root })).json().code, 'ORG_NOT_FOUND')
      assert.deepEqual((await put(['a.example'], a.root, 'nobody')).json().code, 'ORG_NOT_FOUND')
      const extra = await a.app.inject({ method: 'PUT', url: hostsUrl('acme'), headers: a.root, payload: { hosts: [], more: 1 } })
      assert.equal(extra.statusCode, 400)
      const many = await put(Array.from({ length: 101 }, (_, i) => `h${i}.example`))
      assert.equal(many.statusCode, 400)
      assert.ok(!(await a.app.inject({ method: 'GET', url: hostsUrl('acme'), headers: a.root })).json().hosts.includes('evil.example'))
    })
  })
}
