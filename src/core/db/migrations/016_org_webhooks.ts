// The per-org run-completion webhook (issue 10): the signing secret, envelope-encrypted like a
// credential, on the existing org_run_webhooks row; and one delivery row per finished run, written in
// the run's terminal transaction and sent by a background pass (claimed with a lease, retried with
// backoff), so a crash loses none and two processes never both hold one.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function orgWebhooksMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      for (const col of ['ciphertext TEXT', 'wrapped_key TEXT', 'kms_provider TEXT', 'kms_key_version TEXT']) {
        await sql.raw(`ALTER TABLE org_run_webhooks ADD COLUMN ${col}`).execute(db)
      }
      await sql
        .raw(
          `CREATE TABLE IF NOT EXISTS org_webhook_deliveries (
            delivery_id TEXT PRIMARY KEY, org_slug TEXT NOT NULL, webhook_id TEXT NOT NULL, run_id TEXT NOT NULL,
            event TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
            next_attempt_at BIGINT NOT NULL, lease_owner TEXT, lease_expires_at BIGINT,
            last_status_code INTEGER, last_error_code TEXT, delivered_at BIGINT,
            created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
        )
        .execute(db)
      await sql.raw(`CREATE UNIQUE INDEX IF NOT EXISTS org_webhook_deliveries_run_idx ON org_webhook_deliveries (webhook_id, run_id)`).execute(db)
      await sql.raw(`CREATE INDEX IF NOT EXISTS org_webhook_deliveries_due_idx ON org_webhook_deliveries (status, next_attempt_at)`).execute(db)
      await sql.raw(`CREATE INDEX IF NOT EXISTS org_webhook_deliveries_org_idx ON org_webhook_deliveries (org_slug, created_at, delivery_id)`).execute(db)
    },
  }
}
