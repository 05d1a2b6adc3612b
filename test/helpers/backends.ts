// Test backends: the embedded store always; PostgreSQL when TEST_DATABASE_URL is set; Redis when
// TEST_REDIS_URL is set. Each call to freshBackend() gets an isolated store: a new temp dir for
// SQLite, a new database on the PostgreSQL server (dropped by cleanup()).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { randomBase62 } from '../../src/core/ids.js'

export type BackendName = 'sqlite' | 'postgres'

export interface TestBackend {
  name: BackendName
  dataDir: string
  databaseUrl: string | null
  cleanup(): Promise<void>
}

export const PG_URL = process.env.TEST_DATABASE_URL || null
export const REDIS_URL = process.env.TEST_REDIS_URL || null

/** Backends to run a suite on; PostgreSQL is listed only when the server is configured. */
export function backendNames(): BackendName[] {
  return PG_URL ? ['sqlite', 'postgres'] : ['sqlite']
}

/** Skip option for node:test: `test('x', { skip: needsPostgres() }, ...)`. */
export function needsPostgres(): string | false {
  return PG_URL ? false : 'TEST_DATABASE_URL not set'
}
export function needsRedis(): string | false {
  return REDIS_URL ? false : 'TEST_REDIS_URL not set'
}

export async function freshBackend(name: BackendName): Promise<TestBackend> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tf-test-'))
  if (name === 'sqlite') {
    return { name, dataDir, databaseUrl: null, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) }
  }
  if (!PG_URL) throw new Error('TEST_DATABASE_URL not set')
  const dbName = `tf_test_${randomBase62(10).toLowerCase()}`
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${dbName}`)
  await admin.end()
  const u = new URL(PG_URL)
  u.pathname = `/${dbName}`
  return {
    name,
    dataDir,
    databaseUrl: u.toString(),
    cleanup: async () => {
      rmSync(dataDir, { recursive: true, force: true })
      const c = new pg.Client({ connectionString: PG_URL })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
      await c.end()
    },
  }
}

/** Environment for loadConfig() in tests: fixed secrets, loopback egress allowed, quiet logs. */
export function testEnv(b: TestBackend, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    ENVIRONMENT: 'development',
    DATA_DIR: b.dataDir,
    CA_ROOT_API_KEY: TEST_ROOT_KEY,
    KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
    EGRESS_ALLOW_LOOPBACK: 'true',
    LOG_LEVEL: 'silent',
    ...extra,
  }
  if (b.databaseUrl) env.DATABASE_URL = b.databaseUrl
  return env
}

export const TEST_ROOT_KEY = 'test-root-key-0123456789abcdefghijklmnop'
