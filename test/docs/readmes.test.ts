// The folder READMEs stay a map of the code: every src/core folder is in the src/core/README.md table,
// and a folder README that lists its files (`name.ts` — …) lists all of them, so a new module is never
// left out of the map of a folder it was added to.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const SRC = join(import.meta.dirname, '..', '..', 'src')
const CORE = join(SRC, 'core')

test('every src/core folder is described in src/core/README.md', () => {
  const readme = readFileSync(join(CORE, 'README.md'), 'utf8')
  const folders = readdirSync(CORE, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)
  const missing = folders.filter((f) => !readme.includes(`\`${f}/\``))
  assert.deepEqual(missing, [], 'folders missing from the table')
})

test('a folder README that lists its modules lists every one of them (folders changed by the egress and webhook work)', () => {
  // Folders whose README is a per-file list; older folders are checked as they are brought up to date.
  for (const dir of ['app/dependencies', 'core/http', 'core/orgs']) {
    const path = join(SRC, dir, 'README.md')
    assert.ok(existsSync(path), `${dir}/README.md exists`)
    const readme = readFileSync(path, 'utf8')
    const files = readdirSync(join(SRC, dir)).filter((f) => f.endsWith('.ts'))
    assert.deepEqual(files.filter((f) => !readme.includes(`\`${f}\``)), [], `${dir}/README.md names every module`)
  }
})
