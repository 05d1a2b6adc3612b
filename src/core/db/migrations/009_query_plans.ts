// Indexes that match each hot query, so no request scans an org's history (issue 12):
// - a run by id within its org (GET run, steps, cancel);
// - the dedup lookup: the org's active run with one dedup key, oldest first (a partial index over
//   active runs only, so its size follows the running work, not the history);
// - run lists filtered by status or by pipeline, newest first, keyset on (created_at, run_id).
// The (org_slug, status, dedup_key) index is replaced by the status list index, which serves the
// same (org_slug, status) prefix, so admissions maintain one index fewer.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function queryPlansMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      for (const statement of [
        `CREATE INDEX IF NOT EXISTS org_pipeline_runs_id_idx ON org_pipeline_runs (org_slug, run_id)`,
        `CREATE INDEX IF NOT EXISTS org_pipeline_runs_dedup_idx ON org_pipeline_runs (org_slug, dedup_key, created_at) WHERE status IN ('PENDING', 'RUNNING')`,
        `CREATE INDEX IF NOT EXISTS org_pipeline_runs_status_idx ON org_pipeline_runs (org_slug, status, created_at, run_id)`,
        `CREATE INDEX IF NOT EXISTS org_pipeline_runs_pipeline_idx ON org_pipeline_runs (org_slug, pipeline_id, created_at, run_id)`,
        `DROP INDEX IF EXISTS org_pipeline_runs_active_idx`,
      ]) {
        await sql.raw(statement).execute(db)
      }
    },
  }
}
