// DATASET_BACKEND=bigquery configuration: validated with messages naming variables only, never a value.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ConfigError, loadConfig } from '../../src/app/config.js'
import { makeServiceAccount } from '../integrations/fakes.js'

const BASE = {
  ENVIRONMENT: 'development',
  DATA_DIR: '/nonexistent/tf-bq',
  CA_ROOT_API_KEY: 'bigquery-config-test-root-key-0123456789',
  KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 5).toString('base64'),
}
const sa = makeServiceAccount('https://oauth2.googleapis.com/token', 'tf-warehouse-1')

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig({ ...BASE, ...env })
    return []
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    return err.problems.map((p) => p.variable)
  }
}

test('default: org datasets stay next to the system tables', () => {
  const { backend, bigquery } = loadConfig(BASE).datasets
  assert.deepEqual({ backend, bigquery }, { backend: 'system', bigquery: null })
  assert.equal(loadConfig({ ...BASE, DATASET_BACKEND: 'sqlite' }).datasets.backend, 'system')
  assert.deepEqual(problems({ DATASET_BACKEND: 'postgres' }), ['DATASET_BACKEND'], 'postgres datasets need DATABASE_URL')
  assert.deepEqual(problems({ DATASET_BACKEND: 'snowflake' }), ['DATASET_BACKEND'])
})

test('bigquery: project, location and a service-account key (file or JSON), with defaults', () => {
  const c = loadConfig({ ...BASE, DATASET_BACKEND: 'bigquery', BIGQUERY_PROJECT: 'tf-warehouse-1', BIGQUERY_CREDENTIALS_JSON: sa.json })
  assert.equal(c.datasets.backend, 'bigquery')
  assert.deepEqual({ ...c.datasets.bigquery, credentialsJson: undefined }, {
    project: 'tf-warehouse-1', location: 'US', credentialsJson: undefined, apiEndpoint: 'https://bigquery.googleapis.com', tokenUrl: null,
    maxBytesBilled: 10 * 1024 ** 3, jobTimeoutMs: 120_000,
  })
  const dir = mkdtempSync(join(tmpdir(), 'tf-bq-'))
  try {
    writeFileSync(join(dir, 'key.json'), sa.json)
    const f = loadConfig({ ...BASE, DATASET_BACKEND: 'bigquery', BIGQUERY_PROJECT: 'tf-warehouse-1', BIGQUERY_CREDENTIALS_FILE: join(dir, 'key.json'), BIGQUERY_LOCATION: 'EU', BIGQUERY_MAX_BYTES_BILLED: '104857600' })
    assert.equal(f.datasets.bigquery!.credentialsJson, sa.json)
    assert.equal(f.datasets.bigquery!.location, 'EU')
    assert.equal(f.datasets.bigquery!.maxBytesBilled, 104857600)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('bigquery: every problem is named by its variable and no value is echoed', () => {
  assert.deepEqual(problems({ DATASET_BACKEND: 'bigquery' }).sort(), ['BIGQUERY_CREDENTIALS_FILE', 'BIGQUERY_PROJECT'])
  const broken = JSON.stringify({ ...JSON.parse(sa.json), private_key: 'SECRET-NOT-A-KEY' })
  try {
    loadConfig({ ...BASE, DATASET_BACKEND: 'bigquery', BIGQUERY_PROJECT: 'tf-warehouse-1', BIGQUERY_CREDENTIALS_JSON: broken, BIGQUERY_MAX_BYTES_BILLED: '5', BIGQUERY_API_ENDPOINT: 'ftp://x' })
    assert.fail('must refuse')
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    assert.deepEqual(err.problems.map((p) => p.variable).sort(), ['BIGQUERY_API_ENDPOINT', 'BIGQUERY_CREDENTIALS_JSON', 'BIGQUERY_MAX_BYTES_BILLED'])
    assert.ok(!err.message.includes('SECRET-NOT-A-KEY') && !err.message.includes('PRIVATE KEY'))
  }
  assert.deepEqual(problems({ DATASET_BACKEND: 'bigquery', BIGQUERY_PROJECT: 'tf-warehouse-1', BIGQUERY_CREDENTIALS_JSON: sa.json, BIGQUERY_CREDENTIALS_FILE: '/x' }), ['BIGQUERY_CREDENTIALS_FILE'])
  assert.deepEqual(problems({ DATASET_BACKEND: 'bigquery', BIGQUERY_PROJECT: 'tf-warehouse-1', BIGQUERY_CREDENTIALS_FILE: '/nonexistent/key.json' }), ['BIGQUERY_CREDENTIALS_FILE'])
})
