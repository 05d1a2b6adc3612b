// The configuration reference (docs/configuration.md) must list every environment variable the code
// reads. Two independent detectors: a scan of src/ for env reads (catches reads on branches no profile
// takes), and loadConfig() run on an instrumented env object (catches dynamic reads such as env[name]).
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadConfig } from '../../src/app/config.js'
import { documentedVariables } from './files.js'

const ROOT = join(import.meta.dirname, '..', '..')
const NAME = '[A-Z][A-Z0-9_]*'
const READ_PATTERNS = [
  new RegExp(`\\benv\\??\\.(${NAME})\\b`, 'g'), // env.FOO, process.env.FOO, env?.FOO
  new RegExp(`\\benv\\??\\.?\\[\\s*['"\`](${NAME})['"\`]\\s*\\]`, 'g'), // env['FOO']
  new RegExp(`\\(\\s*env\\s*,\\s*['"\`](${NAME})['"\`]`, 'g'), // helper(env, 'FOO', ...)
]
// Reads the scan cannot name: they must not exist outside the helpers of config.ts.
const DYNAMIC_PROCESS_ENV = /\bprocess\.env\s*\[(?!\s*['"`])|\{[^}]*\}\s*=\s*process\.env\b/g

/** Names of variables read in one source text. */
export function envReadsIn(text: string): Set<string> {
  const found = new Set<string>()
  for (const re of READ_PATTERNS) for (const m of text.matchAll(re)) found.add(m[1]!)
  return found
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return sourceFiles(p)
    return /\.(ts|js|mjs|cjs)$/.test(name) ? [p] : []
  })
}

function readsFromSource(): Map<string, string> {
  const where = new Map<string, string>()
  for (const file of [...sourceFiles(join(ROOT, 'src')), ...sourceFiles(join(ROOT, 'bin'))]) {
    const text = readFileSync(file, 'utf8')
    for (const name of envReadsIn(text)) if (!where.has(name)) where.set(name, file.slice(ROOT.length + 1))
  }
  return where
}

/** Runs loadConfig on an env that records every key looked up; returns the keys. */
function readsAtRuntime(env: Record<string, string>): { keys: Set<string>; enumerated: boolean; error: unknown } {
  const keys = new Set<string>()
  let enumerated = false
  const proxy = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') keys.add(key)
      return Reflect.get(target, key)
    },
    has(target, key) {
      if (typeof key === 'string') keys.add(key)
      return Reflect.has(target, key)
    },
    getOwnPropertyDescriptor(target, key) {
      if (typeof key === 'string') keys.add(key)
      return Reflect.getOwnPropertyDescriptor(target, key)
    },
    ownKeys(target) {
      enumerated = true
      return Reflect.ownKeys(target)
    },
  })
  let error: unknown = null
  try {
    loadConfig(proxy)
  } catch (err) {
    error = err
  }
  return { keys, enumerated, error }
}

const KEY = Buffer.alloc(32, 3).toString('base64')
const ROOT_KEY = 'reference-test-root-key-0123456789abcdef'
const PROFILES: Record<string, Record<string, string>> = {
  development: { ENVIRONMENT: 'development', DATA_DIR: '/nonexistent/tf-ref', CA_ROOT_API_KEY: ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY },
  production: {
    ENVIRONMENT: 'production', DATA_DIR: '/nonexistent/tf-ref', CA_ROOT_API_KEY: ROOT_KEY, KMS_LOCAL_MASTER_KEY: KEY,
    DATABASE_URL: 'postgres://tf@127.0.0.1:5432/tf', REDIS_URL: 'redis://127.0.0.1:6379',
  },
  gcp: {
    ENVIRONMENT: 'staging', DATA_DIR: '/nonexistent/tf-ref', CA_ROOT_API_KEY: ROOT_KEY, KMS_PROVIDER: 'gcp',
    GCP_KMS_KEY_NAME: 'projects/p/locations/l/keyRings/r/cryptoKeys/k',
  },
}

const documented = documentedVariables(readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8'))

test('the scanner recognises every way the code reads a variable', () => {
  const sample = `a = env.ONE; b = process.env.TWO; c = env['THREE']; d = int(env, 'FOUR', 1, 0, 9); e = env?.FIVE; f = process.env["SIX"]`
  assert.deepEqual([...envReadsIn(sample)].sort(), ['FIVE', 'FOUR', 'ONE', 'SIX', 'THREE', 'TWO'])
  assert.deepEqual([...envReadsIn('loadConfig(process.env, {})')], [])
  assert.ok(documentedVariables('| `A_B` | x | y | no |\n| variable | default |\n').has('A_B'))
})

test('docs/configuration.md lists every variable src/ reads (source scan)', () => {
  const reads = readsFromSource()
  assert.ok(reads.size >= 40, `scan found only ${reads.size} variables: the patterns no longer match config.ts`)
  const missing = [...reads].filter(([name]) => !documented.has(name)).map(([name, file]) => `${name} (read in ${file})`)
  assert.deepEqual(missing, [], `add a row to docs/configuration.md for: ${missing.join(', ')}`)
})

test('no code reads process.env in a way the scan cannot name', () => {
  const offenders: string[] = []
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    if (DYNAMIC_PROCESS_ENV.test(readFileSync(file, 'utf8'))) offenders.push(file.slice(ROOT.length + 1))
    DYNAMIC_PROCESS_ENV.lastIndex = 0
  }
  assert.deepEqual(offenders, [], 'read variables by literal name (env.NAME or helper(env, "NAME")) so the reference test sees them')
})

for (const [profile, env] of Object.entries(PROFILES)) {
  test(`docs/configuration.md lists every variable loadConfig reads (${profile} profile, instrumented env)`, () => {
    const { keys, enumerated, error } = readsAtRuntime(env)
    if (profile === 'development') assert.equal(error, null, 'the development profile must load')
    assert.ok(keys.has('ENVIRONMENT'))
    assert.equal(enumerated, false, 'loadConfig must not enumerate the environment: read each variable by name')
    const missing = [...keys].filter((k) => /^[A-Z][A-Z0-9_]*$/.test(k) && !documented.has(k))
    assert.deepEqual(missing, [], `add a row to docs/configuration.md for: ${missing.join(', ')}`)
  })
}

test('every documented variable is still read somewhere in src/', () => {
  const reads = readsFromSource()
  const stale = [...documented].filter((name) => !reads.has(name))
  assert.deepEqual(stale, [], `docs/configuration.md documents variables nothing reads: ${stale.join(', ')}`)
})
