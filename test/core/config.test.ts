// Production startup refusals, one test per rule, and the CLI's exit code without printing secrets.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, statSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '../../src/app/config.js'

const ROOT = 'p'.repeat(40)
const MASTER = Buffer.alloc(32, 1).toString('base64')
const prod = (extra: Record<string, string | undefined> = {}) => ({
  ENVIRONMENT: 'production',
  CA_ROOT_API_KEY: ROOT,
  KMS_LOCAL_MASTER_KEY: MASTER,
  DATA_DIR: mkdtempSync(join(tmpdir(), 'tf-cfg-')),
  ...extra,
})

function refuses(env: Record<string, string | undefined>, variable: string) {
  assert.throws(
    () => loadConfig(env as Record<string, string>),
    (err: unknown) => err instanceof ConfigError && err.variable === variable,
  )
}

describe('production startup checks', () => {
  test('a complete production config loads with docs off', () => {
    const c = loadConfig(prod())
    assert.equal(c.environment, 'production')
    assert.equal(c.enableApiDocs, false)
    assert.equal(c.rateLimitEnabled, true)
  })
  test('root key must be set', () => refuses(prod({ CA_ROOT_API_KEY: undefined }), 'CA_ROOT_API_KEY'))
  test('root key must be >= 32 chars', () => refuses(prod({ CA_ROOT_API_KEY: 'short-root-key' }), 'CA_ROOT_API_KEY'))
  test('auth cannot be disabled', () => refuses(prod({ DISABLE_AUTH: 'true' }), 'DISABLE_AUTH'))
  test('auth cannot be disabled in development either', () => refuses({ ...prod(), ENVIRONMENT: 'development', DISABLE_AUTH: 'true' }, 'DISABLE_AUTH'))
  test('rate limiting must be on', () => refuses(prod({ RATE_LIMIT_ENABLED: 'false' }), 'RATE_LIMIT_ENABLED'))
  test('local KMS master key must be explicit', () => refuses(prod({ KMS_LOCAL_MASTER_KEY: undefined }), 'KMS_LOCAL_MASTER_KEY'))
  test('gcp KMS key name must be set', () => refuses(prod({ KMS_PROVIDER: 'gcp' }), 'GCP_KMS_KEY_NAME'))
  test('KMS master key must be 32 bytes', () => refuses(prod({ KMS_LOCAL_MASTER_KEY: Buffer.alloc(16).toString('base64') }), 'KMS_LOCAL_MASTER_KEY'))
  test('loopback egress is refused', () => refuses(prod({ EGRESS_ALLOW_LOOPBACK: 'true' }), 'EGRESS_ALLOW_LOOPBACK'))
  test('docs only when explicitly enabled', () => assert.equal(loadConfig(prod({ ENABLE_API_DOCS: 'true' })).enableApiDocs, true))
  test('bad values name the variable', () => {
    refuses(prod({ PORT: 'eighty' }), 'PORT')
    refuses(prod({ ENVIRONMENT: 'prod' }), 'ENVIRONMENT')
    refuses(prod({ DATABASE_URL: 'mysql://x' }), 'DATABASE_URL')
  })
})

describe('development secrets', () => {
  test('generated once, stored with mode 0600, reused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-dev-'))
    const a = loadConfig({ DATA_DIR: dir }, { persistDevSecrets: true })
    assert.equal(a.rootKeyGenerated, true)
    assert.ok(a.rootApiKey.length >= 32)
    assert.equal(statSync(join(dir, 'root-key')).mode & 0o777, 0o600)
    assert.equal(statSync(join(dir, 'kms-master-key')).mode & 0o777, 0o600)
    const b = loadConfig({ DATA_DIR: dir }, { persistDevSecrets: true })
    assert.equal(b.rootKeyGenerated, false)
    assert.equal(b.rootApiKey, a.rootApiKey)
    assert.equal(readFileSync(join(dir, 'root-key'), 'utf8').trim(), a.rootApiKey)
  })
})

describe('CLI', () => {
  test('a bad production config exits non-zero, names the variable and never prints its value', () => {
    const secret = 'too-short-secret-value'
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
      env: { ...process.env, ...prod({ CA_ROOT_API_KEY: secret }), DATABASE_URL: '' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /CA_ROOT_API_KEY/)
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret))
  })
})
