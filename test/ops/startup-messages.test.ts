// Startup failures name the problem in words: template errors as `file: field: reason` (both from
// `templates validate` and `serve`), a missing template directory, a misplaced template file, every
// configuration problem in one run, the database and the port — never a password or a full URL.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PG_URL, needsPostgres, TEST_ROOT_KEY } from '../helpers/backends.js'
import { PRICE_SUMMARY_TEMPLATE, writeTemplates } from '../engine/fixtures.js'
import { limited, runCli } from './cli-run.js'

const KEY = Buffer.alloc(32, 5).toString('base64')
const devEnv = (extra: Record<string, string> = {}) => ({
  DATA_DIR: join(mkdtempSync(join(tmpdir(), 'tf-start-')), 'data'),
  CA_ROOT_API_KEY: TEST_ROOT_KEY,
  KMS_LOCAL_MASTER_KEY: KEY,
  ...extra,
})

const BROKEN = {
  'acme/usage/daily.yml': `description: x\nsurprise: 1\nsteps:\n  - id: a\n    processor: generic.sql_transform\n`,
  'acme/usage/weekly.yml': `description: x\nsteps:\n  - id: a\n    processor: no.such_processor\n`,
  'acme/usage/fine.yml': PRICE_SUMMARY_TEMPLATE,
}

describe('pipeline template problems', () => {
  test('templates validate and serve both print every problem as file: field: reason', async () => {
    const dir = writeTemplates(BROKEN)
    const [validate, serve] = await limited([
      () => runCli(['templates', 'validate', dir]),
      () => runCli(['serve', '--port', '0'], devEnv({ PIPELINE_CONFIG_DIRS: dir })),
    ])
    assert.equal(validate!.code, 1, validate!.stderr)
    assert.notEqual(serve!.code, 0)
    for (const out of [validate!.stdout, serve!.stderr]) {
      assert.ok(out.includes(`${join(dir, 'acme/usage/daily.yml')}: surprise: unknown key`), out)
      assert.ok(out.includes(`${join(dir, 'acme/usage/weekly.yml')}: steps[0].processor: unknown processor "no.such_processor"`), out)
      assert.ok(!out.includes('fine.yml'), 'the valid template is not reported')
    }
    assert.match(validate!.stdout, /2 problem\(s\)/)
  })

  test('valid templates pass (built-in plus a given directory)', async () => {
    const dir = writeTemplates({ 'acme/usage/fine.yml': PRICE_SUMMARY_TEMPLATE })
    const r = await runCli(['templates', 'validate', dir])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^ok: \d+ template\(s\) valid \(built-in \+ /)
  })

  test('a template directory that does not exist is an error of its own', async () => {
    const missing = join(tmpdir(), 'tf-no-such-template-dir')
    const [validate, serve] = await limited([
      () => runCli(['templates', 'validate', missing]),
      () => runCli(['serve', '--port', '0'], devEnv({ PIPELINE_CONFIG_DIRS: missing })),
    ])
    assert.equal(validate!.code, 1)
    assert.ok(validate!.stdout.includes(`${missing}: (directory): template directory does not exist`), validate!.stdout)
    assert.notEqual(serve!.code, 0)
    assert.ok(serve!.stderr.includes(`${missing}: (directory): template directory does not exist`), serve!.stderr)
  })

  test('a template file outside the layout is an error naming the expected path', async () => {
    const dir = writeTemplates({
      'daily.yml': PRICE_SUMMARY_TEMPLATE,
      'acme/weekly.yml': PRICE_SUMMARY_TEMPLATE,
      'acme/usage/monthly.yaml': PRICE_SUMMARY_TEMPLATE,
      'acme/usage/extra/deep.yml': PRICE_SUMMARY_TEMPLATE,
      'acme/usage/README.md': 'not a template',
    })
    const r = await runCli(['templates', 'validate', dir])
    assert.equal(r.code, 1)
    const expect = (file: string, expected: string) =>
      assert.ok(r.stdout.includes(`${join(dir, file)}: (layout): templates live at ${join(dir, '<provider>/<domain>/<pipeline>.yml')}; expected ${join(dir, expected)}`), `${file}\n${r.stdout}`)
    expect('daily.yml', '<provider>/<domain>/daily.yml')
    expect('acme/weekly.yml', 'acme/<domain>/weekly.yml')
    expect('acme/usage/monthly.yaml', 'acme/usage/monthly.yml')
    expect('acme/usage/extra/deep.yml', 'acme/usage/deep.yml')
    assert.match(r.stdout, /4 problem\(s\)/)
  })
})

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => resolve(s))
  })
}
const portOf = (s: Server) => (s.address() as { port: number }).port

describe('startup failures in words', () => {
  test('every production configuration problem is listed in one run, without values', async () => {
    const r = await runCli(['serve'], {
      ENVIRONMENT: 'production', DATA_DIR: join(tmpdir(), 'tf-never'), CA_ROOT_API_KEY: 'short-secret-value',
      RATE_LIMIT_ENABLED: 'false', EGRESS_ALLOW_LOOPBACK: 'true', PORT: 'eighty', DISABLE_AUTH: 'true',
    })
    assert.equal(r.code, 2)
    for (const v of ['CA_ROOT_API_KEY must be at least 32', 'RATE_LIMIT_ENABLED', 'EGRESS_ALLOW_LOOPBACK', 'PORT must be an integer', 'DISABLE_AUTH', 'KMS_LOCAL_MASTER_KEY']) {
      assert.ok(r.stderr.includes(v), `${v} missing from\n${r.stderr}`)
    }
    assert.ok(!r.stderr.includes('short-secret-value') && !r.stderr.includes('eighty'))
  })

  test('an unreachable PostgreSQL is named by host:port, never by password or URL', async () => {
    const s = await listen()
    const port = portOf(s)
    await new Promise((r) => s.close(r)) // nothing listens there now
    const url = `postgres://tfuser:Sup3rSecretPw@127.0.0.1:${port}/tfdb`
    const r = await runCli(['serve', '--port', '0'], devEnv({ DATABASE_URL: url }))
    assert.equal(r.code, 1)
    assert.ok(r.stderr.includes(`cannot connect to PostgreSQL at 127.0.0.1:${port} (connection refused)`), r.stderr)
    assert.ok(!r.stderr.includes('Sup3rSecretPw') && !r.stderr.includes(url))
  })

  test('a missing database is named', { skip: needsPostgres() }, async () => {
    const u = new URL(PG_URL!)
    u.pathname = '/tf_no_such_database_here'
    u.password = 'Sup3rSecretPw'
    const r = await runCli(['serve', '--port', '0'], devEnv({ DATABASE_URL: u.toString() }))
    assert.equal(r.code, 1)
    assert.ok(r.stderr.includes(`database tf_no_such_database_here does not exist on PostgreSQL at ${u.hostname}:${u.port || 5432}`), r.stderr)
    assert.ok(!r.stderr.includes('Sup3rSecretPw'))
  })

  test('a port in use is named', async () => {
    const s = await listen()
    try {
      const r = await runCli(['serve', '--port', String(portOf(s)), '--host', '127.0.0.1'], devEnv())
      assert.equal(r.code, 1)
      assert.ok(r.stderr.includes(`port ${portOf(s)} already in use on 127.0.0.1`), r.stderr)
    } finally {
      s.close()
    }
  })
})
