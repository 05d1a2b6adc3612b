// The PostgreSQL LISTEN connection (issue 8 item 10): killed or silently dropped, it reconnects with
// backoff, clears the auth caches once it is back (events may have been missed), and revocations
// propagate again over the new connection.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { buildTestApp } from '../helpers/app.js'
import { freshBackend, needsPostgres } from '../helpers/backends.js'
import { startFreezableProxy } from '../helpers/freezable-proxy.js'
import { PostgresBus, type BusEvent } from '../../src/core/events/bus.js'

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Records every event with whether the bus was connected when it was delivered. */
function record(bus: PostgresBus): { type: BusEvent['type']; org?: string; connected: boolean }[] {
  const seen: { type: BusEvent['type']; org?: string; connected: boolean }[] = []
  bus.subscribe((e) => seen.push({ type: e.type, org: e.org_slug, connected: bus.connected }))
  return seen
}

describe('events connection (postgres)', { skip: needsPostgres() }, () => {
  test('a killed LISTEN backend reconnects, clears the caches, and revocation propagates again', async () => {
    const backend = await freshBackend('postgres')
    // A cache that would outlive the test: only an eviction can make the old key fail.
    const env = { AUTH_CACHE_TTL_MS: '300000', AUTH_NEGATIVE_CACHE_TTL_MS: '300000' }
    const a = await buildTestApp('postgres', { backend, env })
    const b = await buildTestApp('postgres', { backend, env })
    try {
      const key = await a.onboard('bus-org')
      const url = '/api/v1/organizations/bus-org/quota'
      assert.equal((await b.app.inject({ method: 'GET', url, headers: b.org(key) })).statusCode, 200)
      const bus = b.ctx.bus as PostgresBus
      const seen = record(bus)
      const pid = bus.backendPid
      assert.ok(pid, 'the bus reports its backend')

      // A revocation whose event this instance never receives: b still trusts its cache.
      await sql`UPDATE org_api_keys SET revoked_at = ${Date.now()} WHERE org_slug = 'bus-org'`.execute(a.ctx.db.kysely)
      assert.equal((await b.app.inject({ method: 'GET', url, headers: b.org(key) })).statusCode, 200, 'served from the cache')

      await sql`SELECT pg_terminate_backend(${pid}::int)`.execute(a.ctx.db.kysely)
      await eventually(() => bus.backendPid !== null && bus.backendPid !== pid, 'the bus to reconnect')
      await eventually(() => seen.some((e) => e.type === 'auth.evict_all' && e.connected), 'caches cleared once reconnected')
      assert.equal((await b.app.inject({ method: 'GET', url, headers: b.org(key) })).statusCode, 401, 'the missed revocation holds')

      // Over the new connection, a rotation on instance a evicts instance b's cache.
      const key2 = (await a.app.inject({ method: 'POST', url: '/api/v1/organizations/bus-org/api-key/rotate', headers: a.root, payload: { grace_seconds: 0 } })).json().api_key as string
      assert.equal((await b.app.inject({ method: 'GET', url, headers: b.org(key2) })).statusCode, 200)
      const key3 = (await a.app.inject({ method: 'POST', url: '/api/v1/organizations/bus-org/api-key/rotate', headers: a.root, payload: { grace_seconds: 0 } })).json().api_key as string
      assert.ok(key3)
      await eventually(async () => (await b.app.inject({ method: 'GET', url, headers: b.org(key2) })).statusCode === 401, 'the rotation to reach b')
    } finally {
      await b.close()
      await a.close()
      await backend.cleanup()
    }
  })

  test('a silently dropped LISTEN connection is noticed by the keepalive ping and replaced', async () => {
    const t = await buildTestApp('postgres')
    const target = new URL(t.backend.databaseUrl!)
    const proxy = await startFreezableProxy(target.hostname, Number(target.port || 5432))
    const viaProxy = new URL(target)
    viaProxy.host = `127.0.0.1:${proxy.port}`
    const bus = new PostgresBus(viaProxy.toString(), t.ctx.db.pgPool!, { pingIntervalMs: 200, pingTimeoutMs: 1000, reconnectBaseMs: 100 })
    try {
      await bus.start()
      const seen = record(bus)
      const pid = bus.backendPid
      assert.ok(pid)
      proxy.freezeOpen()
      await eventually(() => bus.backendPid !== null && bus.backendPid !== pid, 'a new LISTEN connection')
      assert.ok(seen.some((e) => e.type === 'auth.evict_all' && e.connected), 'caches cleared once reconnected')
      await t.ctx.bus.publish({ type: 'auth.evict_org', org_slug: 'after-drop' })
      await eventually(() => seen.some((e) => e.org === 'after-drop'), 'an event over the new connection')
    } finally {
      await bus.close()
      await proxy.close()
      await t.close()
    }
  })
})
