// The command line: every command answers --help/-h with its own usage and exit 0 without touching
// the data dir or the database; unknown commands and flags exit 2; --version prints the version.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { COMMANDS, groups } from '../../src/cli/commands.js'
import { openDatabase } from '../../src/core/db/database.js'
import { listTables } from '../../src/core/db/migrate.js'
import { freshBackend, needsPostgres, TEST_ROOT_KEY } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { limited, REPO, runCli } from './cli-run.js'

const NAMES = ['', ...groups().keys(), ...COMMANDS.map((c) => c.name)] // '' = tenantflow itself
const argsOf = (name: string) => (name ? name.split(' ') : [])
const KEY_V2 = Buffer.alloc(32, 9).toString('base64')

/** Every file under dir with a hash of its contents: any write shows up. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      if (statSync(p).isDirectory()) walk(p)
      else out[p.slice(dir.length)] = createHash('sha256').update(readFileSync(p)).digest('hex') + ` ${statSync(p).mtimeMs}`
    }
  }
  walk(dir)
  return out
}

async function everyHelp(env: Record<string, string>): Promise<void> {
  const runs = NAMES.flatMap((name) => ['--help', '-h'].map((flag) => ({ name, flag })))
  const results = await limited(runs.map(({ name, flag }) => () => runCli([...argsOf(name), flag], env)))
  results.forEach((r, i) => {
    const { name, flag } = runs[i]!
    const shown = `tenantflow ${name} ${flag}`
    assert.equal(r.code, 0, `${shown}: exit ${r.code}\n${r.stderr}`)
    assert.match(r.stdout, new RegExp(`^usage: tenantflow ${name ? `${name}\\s` : ''}`), `${shown} prints its own usage`)
    assert.equal(r.stderr, '', `${shown} writes nothing to stderr`)
  })
}

describe('tenantflow --help / -h', () => {
  test('every command answers with its own usage and creates no data dir', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-cli-')), 'data')
    await everyHelp({ DATA_DIR: dataDir })
    assert.equal(existsSync(dataDir), false, 'help must not create DATA_DIR or generate development secrets')
  })

  test('on a populated store with a pending key rotation, help changes nothing; the real rewrap then does', async () => {
    const t = await buildTestApp('sqlite')
    const dataDir = t.backend.dataDir
    try {
      await t.onboard('help-co')
    } finally {
      await t.app.close()
      await t.runtime.close()
    }
    // The store's keys are under testEnv's master key (version v1); v2 is current now, so a real
    // `kms rewrap` would rewrite every wrapped key.
    const env = {
      DATA_DIR: dataDir,
      CA_ROOT_API_KEY: TEST_ROOT_KEY,
      KMS_LOCAL_MASTER_KEY: KEY_V2,
      KMS_LOCAL_KEY_VERSION: 'v2',
      KMS_LOCAL_PREVIOUS_KEYS: `v1:${Buffer.alloc(32, 7).toString('base64')}`,
    }
    const before = snapshot(dataDir)
    await everyHelp(env)
    assert.deepEqual(snapshot(dataDir), before, 'no file in DATA_DIR was written (no migration, no rewrap)')
    const real = await runCli(['kms', 'rewrap'], env)
    assert.equal(real.code, 0, real.stderr)
    assert.ok(JSON.parse(real.stdout).api_keys.rewrapped >= 1, real.stdout)
    assert.notDeepEqual(snapshot(dataDir), before)
    await t.backend.cleanup()
  })

  test('on a fresh PostgreSQL database, help applies no migration', { skip: needsPostgres() }, async () => {
    const b = await freshBackend('postgres')
    try {
      await everyHelp({ DATA_DIR: b.dataDir, DATABASE_URL: b.databaseUrl!, CA_ROOT_API_KEY: TEST_ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY_V2 })
      const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir })
      try {
        assert.deepEqual(await listTables(db), [])
      } finally {
        await db.close()
      }
    } finally {
      await b.cleanup()
    }
  })
})

describe('usage errors exit 2', () => {
  test('an unknown flag on every command exits 2 naming the flag, and runs nothing', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-cli-')), 'data')
    const names = NAMES.filter(Boolean)
    const results = await limited(names.map((name) => () => runCli([...argsOf(name), '--no-such-flag'], { DATA_DIR: dataDir })))
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `tenantflow ${names[i]} --no-such-flag: exit ${r.code}\n${r.stdout}${r.stderr}`)
      assert.match(r.stderr, /--no-such-flag/)
    })
    assert.equal(existsSync(dataDir), false)
  })

  test('unknown commands, missing subcommands, stray arguments and bad values exit 2', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'tf-cli-')), 'data')
    const cases: [string[], RegExp][] = [
      [['bogus'], /unknown command 'bogus'/],
      [['kms', 'bogus'], /unknown command 'kms bogus'/],
      [['kms'], /missing command/],
      [['templates'], /missing command/],
      [[], /usage: tenantflow/],
      [['migrate', 'extra'], /extra/],
      [['serve', '--port', 'eighty'], /--port must be an integer between 0 and 65535/],
      [['serve', '--port', '70000'], /--port/],
      [['worker', '--concurrency', '0'], /--concurrency/],
      [['--version', 'x'], /takes no arguments/],
    ]
    const results = await limited(cases.map(([args]) => () => runCli(args, { DATA_DIR: dataDir })))
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `tenantflow ${cases[i]![0].join(' ')}: exit ${r.code}`)
      assert.match(r.stderr, cases[i]![1])
    })
    assert.equal(existsSync(dataDir), false)
  })
})

test('--version, -V and help TOPIC', async () => {
  const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }
  const [a, b, c] = await limited([() => runCli(['--version']), () => runCli(['-V']), () => runCli(['help', 'worker'])])
  assert.equal(a!.stdout.trim(), `tenantflow ${version}`)
  assert.equal(b!.code, 0)
  assert.equal(b!.stdout.trim(), `tenantflow ${version}`)
  assert.equal(c!.code, 0)
  assert.match(c!.stdout, /^usage: tenantflow worker/)
  assert.match(c!.stdout, /--scheduler/)
})
