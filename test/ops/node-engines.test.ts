// A clean install from the lockfile on this Node version raises no EBADENGINE warning (cookie@2 via
// light-my-request wants Node >= 22: package.json overrides light-my-request to 6.6.0, on cookie@1).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO } from './cli-run.js'

const npmAvailable = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0

test('npm ci from the lockfile warns about no engine on this Node version', { skip: npmAvailable ? false : 'npm is not available' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tf-engines-'))
  try {
    for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(REPO, f), join(dir, f))
    const r = spawnSync('npm', ['ci', '--dry-run', '--offline', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8', timeout: 300_000, env: { ...process.env, npm_config_update_notifier: 'false' } })
    assert.equal(r.status, 0, r.stderr)
    assert.ok(!/EBADENGINE/.test(r.stdout + r.stderr), r.stderr)
    assert.match(r.stdout, /add fastify /, 'the dry run walked the dependency tree')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
