// Review hardening: server timeouts, no generated secrets outside development, configuration
// secrets scrubbed from logs by value.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '../../src/app/config.js'
import { buildTestApp, TEST_ROOT_KEY, type TestApp } from '../helpers/app.js'

describe('server timeouts', () => {
  let t: TestApp
  before(async () => {
    t = await buildTestApp('sqlite')
  })
  after(async () => t.close())

  test('requestTimeout, headersTimeout and keepAliveTimeout are set explicitly', () => {
    const s = t.app.server
    assert.equal(s.requestTimeout, 60_000)
    assert.equal(s.headersTimeout, 30_000)
    assert.equal(s.keepAliveTimeout, 72_000)
  })

  test('the root key is scrubbed by value from any log line', async () => {
    const marker = 'scrub-marker-root'
    t.ctx.logger.warn({ note: `${marker} ${TEST_ROOT_KEY}` }, `${marker} message ${TEST_ROOT_KEY}`)
    await new Promise((r) => setImmediate(r))
    const lines = t.logs.filter((l) => l.includes(marker))
    assert.equal(lines.length, 1)
    assert.ok(!lines[0]!.includes(TEST_ROOT_KEY), 'root key reached the log')
    assert.ok(lines[0]!.includes('[REDACTED]'))
  })
})

describe('secrets are generated in development only', () => {
  for (const variable of ['CA_ROOT_API_KEY', 'KMS_LOCAL_MASTER_KEY']) {
    test(`staging without ${variable} refuses to start and writes nothing`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'tf-stg-'))
      const env: Record<string, string> = {
        ENVIRONMENT: 'staging',
        DATA_DIR: dir,
        CA_ROOT_API_KEY: 's'.repeat(40),
        KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'),
      }
      delete env[variable]
      assert.throws(
        () => loadConfig(env, { persistDevSecrets: true }),
        (err: unknown) => err instanceof ConfigError && err.variable === variable,
      )
      assert.equal(existsSync(join(dir, 'root-key')), false)
      assert.equal(existsSync(join(dir, 'kms-master-key')), false)
    })
  }
})
