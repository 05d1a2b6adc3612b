// Console sessions (issue 11): one row per signed-in browser, keyed by the SHA-256 of the cookie
// token (the token itself is never stored). Bound to an org key (key_id) or to the root key.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function consoleSessionsMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await sql
        .raw(
          `CREATE TABLE IF NOT EXISTS console_sessions (
            session_hash TEXT PRIMARY KEY, principal TEXT NOT NULL, org_slug TEXT, key_id TEXT,
            key_expires_at BIGINT, root_tag TEXT, created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL)`,
        )
        .execute(db)
      await sql.raw(`CREATE INDEX IF NOT EXISTS console_sessions_org_idx ON console_sessions (org_slug)`).execute(db)
      // The operator's audit log across orgs reads newest first without an org filter.
      await sql.raw(`CREATE INDEX IF NOT EXISTS org_audit_logs_time_idx ON org_audit_logs (created_at, audit_id)`).execute(db)
      await sql.raw(`CREATE INDEX IF NOT EXISTS console_sessions_expiry_idx ON console_sessions (expires_at)`).execute(db)
    },
  }
}
