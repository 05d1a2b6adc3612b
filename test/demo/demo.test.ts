// The first-run demo (`npm run demo`) runs end to end and prints the loaded rows.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

test('npm run demo: onboard, credential, pipeline run, loaded rows', () => {
  const env = { ...process.env }
  delete env.DATABASE_URL
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { env, encoding: 'utf8', timeout: 90_000 })
  assert.equal(r.status, 0, `demo failed:\n${r.stdout}\n${r.stderr}`)
  assert.match(r.stdout, /\[7\/7\] reading the run record and the loaded rows \.\.\. done/)
  assert.match(r.stdout, /run run_[0-9A-Za-z]+: COMPLETED/)
  assert.match(r.stdout, /extract\s+generic\.http_extract\s+COMPLETED\s+rows=120/)
  assert.match(r.stdout, /orders\s+120 rows/)
  // 120 orders over 3 statuses x 2 currencies: six summary rows, 20 orders each.
  const summary = r.stdout.split('loaded rows (orders_daily_summary):')[1] ?? ''
  const lines = summary.split('\n').filter((l) => /^\s+\d{4}-\d{2}-\d{2}\s/.test(l))
  assert.equal(lines.length, 6, summary)
  for (const l of lines) assert.match(l, /\s20\s/)
  assert.ok(!/tf_[0-9A-Za-z]{36}/.test(r.stdout + r.stderr), 'no org key printed')
})
