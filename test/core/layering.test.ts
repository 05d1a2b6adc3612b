// The one-page architecture holds: core logic never imports HTTP concerns (src/app) or the CLI.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CORE = join(ROOT, 'src', 'core')

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
}

test('no module under src/core imports from src/app or src/cli', () => {
  const offenders: string[] = []
  for (const file of sources(CORE)) {
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!
      if (!spec.startsWith('.')) continue
      const target = relative(ROOT, resolve(file, '..', spec))
      if (target.startsWith(join('src', 'app')) || target.startsWith(join('src', 'cli'))) offenders.push(`${relative(ROOT, file)} -> ${spec}`)
    }
  }
  assert.deepEqual(offenders, [])
})
