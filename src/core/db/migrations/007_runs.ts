// Run visibility and schedule editing (issue 10): live step progress, schedule names, the per-org
// run-completion webhook, and the per-plan minimum schedule interval mirrored into `plans`.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'
import { defaultPlans, syncPlansTable } from '../../orgs/plans.js'

export function runsMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      // JSON counters a processor reports while its step runs, e.g. {"pages":2,"records":150}.
      await sql.raw(`ALTER TABLE org_step_logs ADD COLUMN progress TEXT`).execute(db)
      await sql.raw(`ALTER TABLE org_schedules ADD COLUMN name TEXT`).execute(db)
      await sql.raw(`ALTER TABLE plans ADD COLUMN min_schedule_interval_seconds INTEGER NOT NULL DEFAULT 60`).execute(db)
      await sql
        .raw(
          `CREATE TABLE IF NOT EXISTS org_run_webhooks (
            org_slug TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, url TEXT NOT NULL,
            last_delivery_at BIGINT, last_delivery_status TEXT, last_error_code TEXT,
            created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
        )
        .execute(db)
      // A migrated store has its plan rows (from the shipped catalogue); startup re-syncs with PLANS_FILE.
      await syncPlansTable(db, defaultPlans())
    },
  }
}
