// Processes seen recently (issue 11's system health): every engine instance (`serve`, `worker`) writes
// its row on a heartbeat and deletes it on a clean stop; rows of processes that died age out.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function processesMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await sql
        .raw(
          `CREATE TABLE IF NOT EXISTS tenantflow_processes (
            process_id TEXT PRIMARY KEY, role TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
            worker_slots INTEGER NOT NULL, runs_in_flight INTEGER NOT NULL, scheduler INTEGER NOT NULL,
            started_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL)`,
        )
        .execute(db)
      await sql.raw(`CREATE INDEX IF NOT EXISTS tenantflow_processes_seen_idx ON tenantflow_processes (last_seen_at)`).execute(db)
    },
  }
}
