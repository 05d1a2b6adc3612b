// op-runtime (issue 9/10): the KMS key-check value every process must unwrap at startup, and the
// operator-managed per-org egress allow-list (extra hosts an org's credentials and runs may reach).
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function opRuntimeMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await sql
        .raw(
          `CREATE TABLE IF NOT EXISTS tenantflow_kms_key_check (
            id TEXT PRIMARY KEY, kms_provider TEXT NOT NULL, kms_key_version TEXT NOT NULL,
            ciphertext TEXT NOT NULL, wrapped_key TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
        )
        .execute(db)
      await sql
        .raw(
          `CREATE TABLE IF NOT EXISTS org_egress_allowlist (
            org_slug TEXT NOT NULL, host TEXT NOT NULL,
            created_at BIGINT NOT NULL, PRIMARY KEY (org_slug, host))`,
        )
        .execute(db)
    },
  }
}
