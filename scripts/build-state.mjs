#!/usr/bin/env node
// Is dist/ built from the sources in this checkout? `npm start` runs this first and builds only when
// it is not; `npm run build` ends with `--stamp`, which records a hash of every build input in
// dist/.build-stamp. Inputs are every file of the checkout except those listed in NOT_INPUTS (so a
// new source folder is an input without editing this file); content hashes, not mtimes, so a copy
// or a fresh clone of the same sources counts as current.
//   node scripts/build-state.mjs           build if stale (needs the dev dependencies), else nothing
//   node scripts/build-state.mjs --stamp   record the current inputs as built
//   node scripts/build-state.mjs --check   exit 0 if current, 1 if not
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const STAMP = join(ROOT, 'dist', '.build-stamp')
const NOT_INPUTS = new Set(['node_modules', 'dist', '.git', '.tenantflow', 'test', 'docs', 'bench', 'deploy', '.ci', 'tmp', 'coverage'])
const NOT_INPUT_FILE = /(\.md|\.log|^LICENSE|^Dockerfile|^\.dockerignore|^compose\.ya?ml|^\.env.*|^\.git.*)$/

export function inputsHash() {
  const hash = createHash('sha256')
  const walk = (dir) => {
    for (const name of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, name.name)
      if (name.isDirectory()) {
        if (!(dir === ROOT && NOT_INPUTS.has(name.name))) walk(p)
      } else if (name.isFile() && !NOT_INPUT_FILE.test(name.name)) {
        hash.update(relative(ROOT, p)).update('\0').update(readFileSync(p)).update('\0')
      }
    }
  }
  walk(ROOT)
  return hash.digest('hex')
}

export function isCurrent() {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === inputsHash()
}

const mode = process.argv[2]
if (mode === '--stamp') {
  writeFileSync(STAMP, `${inputsHash()}\n`)
} else if (mode === '--check') {
  process.exit(isCurrent() ? 0 : 1)
} else if (!isCurrent()) {
  if (!existsSync(join(ROOT, 'node_modules', 'typescript'))) {
    process.stderr.write(
      'tenantflow: dist/ is missing or older than the sources, and the build tools are not installed.\n' +
        '  Build before pruning: npm ci && npm run build && npm prune --omit=dev (docs/deployment.md)\n',
    )
    process.exit(1)
  }
  process.stderr.write('tenantflow: building (dist/ is older than the sources)\n')
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' })
  process.exit(r.status ?? 1)
}
