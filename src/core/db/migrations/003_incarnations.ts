// Datasets and idempotency records bound to the org incarnation (issue 8 items 1–2). The catalogue
// was keyed by (org_slug, table_name), so a writer left over from an offboarded org could update the
// entry of a new org with the same slug; it is rebuilt keyed by (dataset_id, table_name), with rows
// of orgs that no longer exist dropped. Idempotency records get the org they belong to, so
// offboarding can delete them (trigger records are also scoped by dataset id from now on).
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

export function incarnationsMigration(_dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      const run = (text: string) => sql.raw(text).execute(db)
      await run(`CREATE TABLE org_dataset_tables_v3 (
        dataset_id TEXT NOT NULL, org_slug TEXT NOT NULL, table_name TEXT NOT NULL, table_schema TEXT NOT NULL,
        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (dataset_id, table_name))`)
      await run(`INSERT INTO org_dataset_tables_v3 (dataset_id, org_slug, table_name, table_schema, created_at, updated_at)
        SELECT p.dataset_id, t.org_slug, t.table_name, t.table_schema, t.created_at, t.updated_at
        FROM org_dataset_tables t JOIN org_profiles p ON p.org_slug = t.org_slug`)
      await run(`DROP TABLE org_dataset_tables`)
      await run(`ALTER TABLE org_dataset_tables_v3 RENAME TO org_dataset_tables`)
      await run(`CREATE INDEX IF NOT EXISTS org_dataset_tables_org_idx ON org_dataset_tables (org_slug)`)
      await run(`ALTER TABLE org_idempotency_keys ADD COLUMN org_slug TEXT`)
      await run(`CREATE INDEX IF NOT EXISTS org_idempotency_org_idx ON org_idempotency_keys (org_slug)`)
    },
  }
}
