// `tenantflow doctor` checks a deployment without changing it and prints every problem at once with
// a fix hint and no secret.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshBackend, needsPostgres, TEST_ROOT_KEY } from '../helpers/backends.js'
import { writeTemplates } from '../engine/fixtures.js'
import { runCli } from './cli-run.js'

const KEY = Buffer.alloc(32, 4).toString('base64')

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

test('a healthy embedded deployment passes every check and prints no secret', async () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-doc-')), 'data')
  const env = { DATA_DIR: dataDir, CA_ROOT_API_KEY: TEST_ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY }
  assert.equal((await runCli(['migrate'], env)).code, 0)
  const r = await runCli(['doctor'], env)
  assert.equal(r.code, 0, r.stdout + r.stderr)
  for (const line of [/^ok {4}configuration: development, embedded SQLite, local KMS key v1/m, /^ok {4}database: embedded SQLite reachable, all migrations applied/m, /^ok {4}kms: encrypt\/decrypt round trip/m, /^skip {2}redis/m, /^ok {4}templates/m, /^no problems found$/m]) {
    assert.match(r.stdout, line)
  }
  assert.ok(!r.stdout.includes(TEST_ROOT_KEY) && !r.stdout.includes(KEY))
})

test('unreachable PostgreSQL and Redis and a broken template are all reported in one run', async () => {
  const [pgPort, redisPort] = [await closedPort(), await closedPort()]
  const templates = writeTemplates({ 'acme/usage/daily.yml': 'description: x\nsurprise: 1\nsteps: []\n' })
  const r = await runCli(['doctor'], {
    DATA_DIR: join(tmpdir(), 'tf-doc-never'),
    CA_ROOT_API_KEY: TEST_ROOT_KEY,
    KMS_LOCAL_MASTER_KEY: KEY,
    DATABASE_URL: `postgres://tf:Sup3rSecretPw@127.0.0.1:${pgPort}/tf`,
    REDIS_URL: `redis://:R3disSecretPw@127.0.0.1:${redisPort}`,
    PIPELINE_CONFIG_DIRS: templates,
  })
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout, new RegExp(`cannot connect to PostgreSQL at 127.0.0.1:${pgPort} \\(connection refused\\)`))
  assert.match(r.stdout, new RegExp(`cannot connect to Redis at 127.0.0.1:${redisPort}`))
  assert.ok(r.stdout.includes(`${join(templates, 'acme/usage/daily.yml')}: surprise: unknown key`), r.stdout)
  assert.match(r.stdout, /^ok {4}kms/m, 'the KMS check does not need the database')
  assert.equal((r.stdout.match(/^ {6}fix: /gm) ?? []).length, 3, r.stdout)
  assert.match(r.stdout, /^3 problem\(s\) found$/m)
  assert.ok(!r.stdout.includes('Sup3rSecretPw') && !r.stdout.includes('R3disSecretPw') && !r.stdout.includes(TEST_ROOT_KEY))
  assert.equal(existsSync(join(tmpdir(), 'tf-doc-never')), false)
})

test('configuration problems are listed together and the dependent checks are skipped', async () => {
  const r = await runCli(['doctor'], { ENVIRONMENT: 'production', RATE_LIMIT_ENABLED: 'false', CA_ROOT_API_KEY: 'tiny-secret', DATA_DIR: join(tmpdir(), 'tf-doc-never') })
  assert.equal(r.code, 1)
  assert.match(r.stdout, /^FAIL {2}configuration: 3 problem\(s\)/m)
  for (const v of ['RATE_LIMIT_ENABLED', 'CA_ROOT_API_KEY must be at least 32', 'KMS_LOCAL_MASTER_KEY']) assert.ok(r.stdout.includes(v), r.stdout)
  assert.match(r.stdout, /^skip {2}database: needs a valid configuration/m)
  assert.ok(!r.stdout.includes('tiny-secret'))
})

test('a fresh development checkout: secrets not generated yet is fine, no database yet is a problem, nothing is created', async () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-doc-')), 'data')
  const r = await runCli(['doctor'], { DATA_DIR: dataDir })
  assert.equal(r.code, 1)
  assert.match(r.stdout, /^ok {4}configuration: .*not set: the first 'tenantflow serve' generates them/m)
  assert.match(r.stdout, /embedded database .* does not exist yet/)
  assert.equal(existsSync(dataDir), false)
})

test('a PostgreSQL database without the migrations is reported, and doctor applies none', { skip: needsPostgres() }, async () => {
  const b = await freshBackend('postgres')
  try {
    const env = { DATA_DIR: b.dataDir, DATABASE_URL: b.databaseUrl!, CA_ROOT_API_KEY: TEST_ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY }
    const r = await runCli(['doctor'], env)
    assert.equal(r.code, 1)
    assert.match(r.stdout, /database is not fully migrated: pending 001_core/)
    const again = await runCli(['doctor'], env)
    assert.match(again.stdout, /pending 001_core/, 'the first doctor run migrated nothing')
  } finally {
    await b.cleanup()
  }
})

test('doctor reports a KMS key that cannot unwrap the database key-check value, without changing it', async () => {
  const { loadConfig } = await import('../../src/app/config.js')
  const { createRuntime } = await import('../../src/app/runtime.js')
  const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-doc-')), 'data')
  const env = { ENVIRONMENT: 'development', DATA_DIR: dataDir, CA_ROOT_API_KEY: TEST_ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY }
  await (await createRuntime(loadConfig(env))).close() // writes the key-check value with KEY
  const other = Buffer.alloc(32, 5).toString('base64')
  const r = await runCli(['doctor'], { ...env, KMS_LOCAL_MASTER_KEY: other })
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout, /^FAIL {2}kms/m)
  assert.match(r.stdout, /KMS key mismatch/)
  assert.ok(!r.stdout.includes(KEY) && !r.stdout.includes(other))
  const ok = await runCli(['doctor'], env)
  assert.match(ok.stdout, /unwraps the database key-check value/)
})

test('datasets on BigQuery: the credential must reach the project; failures name no key or upstream text', async () => {
  const { startFakeBigQuery, fakeBigQueryEnv, UPSTREAM_DETAIL } = await import('../helpers/fake-bigquery.js')
  const fake = await startFakeBigQuery()
  const other = await startFakeBigQuery({ project: fake.project })
  try {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-doc-')), 'data')
    const env = { DATA_DIR: dataDir, CA_ROOT_API_KEY: TEST_ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY, EGRESS_ALLOW_LOOPBACK: 'true', ...fakeBigQueryEnv(fake) }
    assert.equal((await runCli(['migrate'], env)).code, 0)
    const ok = await runCli(['doctor'], env)
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, new RegExp(`^ok {4}datasets: BigQuery project ${fake.project} \\(EU\\) reachable`, 'm'))
    assert.ok(fake.tokensIssued >= 1 && fake.calls.includes(`GET /bigquery/v2/projects/${fake.project}/datasets`))
    // A key the token endpoint cannot verify (another key pair, same token endpoint).
    const wrongKey = other.serviceAccount.json.replace(other.url, fake.url)
    const bad = await runCli(['doctor'], { ...env, BIGQUERY_CREDENTIALS_JSON: wrongKey })
    assert.equal(bad.code, 1, bad.stdout + bad.stderr)
    assert.match(bad.stdout, /^FAIL {2}datasets$/m)
    assert.match(bad.stdout, /credential refused by the token endpoint \(HTTP 400\)/)
    const key = JSON.parse(wrongKey).private_key as string
    assert.ok(!bad.stdout.includes(key.split('\n')[1]!) && !bad.stdout.includes(UPSTREAM_DETAIL))
  } finally {
    await fake.close()
    await other.close()
  }
})
