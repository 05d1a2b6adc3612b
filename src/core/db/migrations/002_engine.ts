// Engine indexes: the reaper's safety sweep and slot audits look up runs still holding a slot.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function engineMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await sql
        .raw(`CREATE INDEX IF NOT EXISTS org_pipeline_runs_unreleased_idx ON org_pipeline_runs (org_slug, status) WHERE slot_released = 0`)
        .execute(db)
    },
  }
}
