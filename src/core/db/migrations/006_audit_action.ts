// The org audit log filtered by action (GET …/audit-logs?action=credential.decrypted) pages on this
// index instead of scanning every entry of the org.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function auditActionMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await sql.raw(`CREATE INDEX IF NOT EXISTS org_audit_logs_action_idx ON org_audit_logs (org_slug, action, created_at, audit_id)`).execute(db)
    },
  }
}
