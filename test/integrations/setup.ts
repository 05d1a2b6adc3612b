// Builds the credential service's dependencies on a fresh test backend, with provider base URLs
// pointing at local fake servers.
import { Writable } from 'node:stream'
import { sql } from 'kysely'
import { loadConfig, type Config } from '../../src/app/config.js'
import { openDatabase, type Db } from '../../src/core/db/database.js'
import { listTables, migrateToLatest } from '../../src/core/db/migrate.js'
import { createEgressClient, egressOptionsFromConfig } from '../../src/core/http/egress.js'
import type { CredentialDeps } from '../../src/core/integrations/credentials.js'
import { createKms } from '../../src/core/security/kms-encryption.js'
import { freshBackend, testEnv, type BackendName, type TestBackend } from '../helpers/backends.js'

export interface Harness {
  backend: TestBackend
  config: Config
  db: Db
  deps: CredentialDeps
  close(): Promise<void>
}

export async function harness(name: BackendName, env: Record<string, string> = {}): Promise<Harness> {
  const backend = await freshBackend(name)
  const config = loadConfig(testEnv(backend, { EGRESS_TIMEOUT_MS: '2000', ...env }))
  const db = openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
  await migrateToLatest(db)
  const kms = await createKms(config)
  const egress = createEgressClient(egressOptionsFromConfig(config))
  return {
    backend,
    config,
    db,
    deps: { db, kms, egress, config, now: () => Date.now() },
    close: async () => {
      await egress.close()
      await db.close()
      await backend.cleanup()
    },
  }
}

/** Every row of every system table, as one string. */
export async function dumpAllTables(db: Db): Promise<string> {
  const parts: string[] = []
  for (const table of await listTables(db)) {
    const r = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)} LIMIT 100000`.execute(db.kysely)
    parts.push(`${table}:${JSON.stringify(r.rows)}`)
  }
  return parts.join('\n')
}

/** A pino destination that keeps every line. */
export function captureStream(): { stream: Writable & { write(s: string): boolean }; text(): string } {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString())
      cb()
    },
  })
  return { stream, text: () => lines.join('') }
}
