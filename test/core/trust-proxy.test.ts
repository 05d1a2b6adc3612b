// TRUST_PROXY and the failed-auth block: behind a trusted proxy each client address is limited on its
// own; with or without it, a valid key is never refused because of failures (the block hits failing attempts only).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, loadConfig } from '../../src/app/config.js'
import { backendNames, freshBackend, testEnv } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const BAD_KEY = { 'x-api-key': 'tf_live_not-a-real-key-000000000000000000000000' }

async function badAttempts(t: TestApp, n: number, headers: Record<string, string>): Promise<number[]> {
  const codes: number[] = []
  for (let i = 0; i < n; i++) {
    codes.push((await t.app.inject({ method: 'GET', url: '/api/v1/organizations/victim-org/quota', headers: { ...BAD_KEY, ...headers } })).statusCode)
  }
  return codes
}

for (const backend of backendNames()) {
  describe(`failed-auth block and TRUST_PROXY (${backend})`, () => {
    test('behind TRUST_PROXY: 40 bad keys from one client, then a valid key from another client behind the same proxy → 200', async () => {
      const t = await buildTestApp(backend, { env: { TRUST_PROXY: '127.0.0.1/32', FAILED_AUTH_PER_MINUTE: '30' } })
      try {
        const key = await t.onboard('victim-org')
        // inject() connects from 127.0.0.1, the trusted proxy; the client address is in X-Forwarded-For.
        const codes = await badAttempts(t, 40, { 'x-forwarded-for': '203.0.113.7' })
        assert.deepEqual(codes.slice(0, 30), Array(30).fill(401))
        assert.ok(codes.slice(30).every((c) => c === 429), `attempts over the limit are refused: ${codes.slice(30)}`)
        const other = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/victim-org/quota', headers: { ...t.org(key), 'x-forwarded-for': '198.51.100.20' } })
        assert.equal(other.statusCode, 200)
        const otherBad = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/victim-org/quota', headers: { ...BAD_KEY, 'x-forwarded-for': '198.51.100.20' } })
        assert.equal(otherBad.statusCode, 401, 'another client address behind the proxy is not blocked')
        const sameBad = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/victim-org/quota', headers: { ...BAD_KEY, 'x-forwarded-for': '203.0.113.7' } })
        assert.equal(sameBad.json().code, 'AUTH_RATE_LIMITED', 'the failing client stays blocked')
      } finally {
        await t.close()
      }
    })

    test('without TRUST_PROXY: a forwarded address is ignored, and a valid key after another client\'s failures is 200', async () => {
      const t = await buildTestApp(backend, { env: { FAILED_AUTH_PER_MINUTE: '30' } })
      try {
        const key = await t.onboard('victim-org')
        // The header is not trusted, so all 40 count against the socket address (127.0.0.1).
        const codes = await badAttempts(t, 40, { 'x-forwarded-for': '203.0.113.7' })
        assert.equal(codes.filter((c) => c === 429).length, 10)
        const ok = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/victim-org/quota', headers: { ...t.org(key), 'x-forwarded-for': '198.51.100.20' } })
        assert.equal(ok.statusCode, 200)
        const stillBlocked = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/victim-org/quota', headers: { ...BAD_KEY, 'x-forwarded-for': '198.51.100.20' } })
        assert.equal(stillBlocked.json().code, 'AUTH_RATE_LIMITED', 'a forged X-Forwarded-For does not escape the block')
      } finally {
        await t.close()
      }
    })

    test('a hop count trusts that many proxies; the per-IP limit keys on the reported client', async () => {
      const t = await buildTestApp(backend, { env: { TRUST_PROXY: '1', RATE_LIMIT_IP_PER_MINUTE: '3' } })
      try {
        const hit = (client: string) => t.app.inject({ method: 'GET', url: '/health/live', headers: { 'x-forwarded-for': client } })
        const codes: number[] = []
        for (let i = 0; i < 4; i++) codes.push((await hit('203.0.113.7')).statusCode)
        assert.deepEqual(codes, [200, 200, 200, 429])
        assert.equal((await hit('198.51.100.20')).statusCode, 200, 'another client behind the proxy has its own budget')
      } finally {
        await t.close()
      }
    })
  })
}

describe('TRUST_PROXY configuration', () => {
  test('off, a hop count, or a list of addresses/CIDRs; "true" and garbage are refused', async () => {
    const b = await freshBackend('sqlite')
    try {
      const load = (v: string) => loadConfig(testEnv(b, { TRUST_PROXY: v })).trustProxy
      assert.equal(load(''), false)
      assert.equal(load('off'), false)
      assert.equal(load('2'), 2)
      assert.deepEqual(load('10.0.0.0/8, 192.168.1.5,loopback,::1/128'), ['10.0.0.0/8', '192.168.1.5', 'loopback', '::1/128'])
      for (const bad of ['true', '10.0.0.0/33', 'proxy.example.com', '1.2.3.4/8/1', '99']) {
        assert.throws(() => load(bad), (e: unknown) => e instanceof ConfigError && e.variable === 'TRUST_PROXY', bad)
      }
    } finally {
      await b.cleanup()
    }
  })
})
