// System tables of SPEC §9. Written as SQL per backend: the few differences are types and partitioning.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'

function statements(d: DialectName): string[] {
  const pg = d === 'postgres'
  const DATE = pg ? 'DATE' : 'TEXT'
  const runsPartition = pg ? ' PARTITION BY RANGE (run_date)' : ''
  const logsPartition = pg ? ' PARTITION BY RANGE (log_date)' : ''
  const s = [
    `CREATE TABLE IF NOT EXISTS plans (
      plan_name TEXT PRIMARY KEY,
      daily_limit INTEGER NOT NULL, monthly_limit INTEGER NOT NULL, concurrent_limit INTEGER NOT NULL,
      requests_per_minute INTEGER NOT NULL, triggers_per_minute INTEGER NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS org_profiles (
      org_slug TEXT PRIMARY KEY, company_name TEXT NOT NULL, admin_email TEXT NOT NULL,
      status TEXT NOT NULL, dataset_id TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS org_api_keys (
      key_id TEXT PRIMARY KEY, org_slug TEXT NOT NULL, key_hash TEXT NOT NULL, encrypted_key TEXT NOT NULL,
      fingerprint TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT, last_used_at BIGINT)`,
    `CREATE UNIQUE INDEX IF NOT EXISTS org_api_keys_hash_uq ON org_api_keys (key_hash)`,
    `CREATE INDEX IF NOT EXISTS org_api_keys_org_idx ON org_api_keys (org_slug, created_at)`,
    `CREATE TABLE IF NOT EXISTS org_subscriptions (
      org_slug TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, plan_name TEXT NOT NULL, status TEXT NOT NULL,
      daily_limit INTEGER NOT NULL, monthly_limit INTEGER NOT NULL, concurrent_limit INTEGER NOT NULL,
      requests_per_minute INTEGER NOT NULL, triggers_per_minute INTEGER NOT NULL,
      trial_end_at BIGINT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS org_usage_quotas (
      org_slug TEXT NOT NULL, period TEXT NOT NULL, period_start TEXT NOT NULL,
      runs_started INTEGER NOT NULL DEFAULT 0, runs_succeeded INTEGER NOT NULL DEFAULT 0,
      runs_failed INTEGER NOT NULL DEFAULT 0, updated_at BIGINT NOT NULL,
      PRIMARY KEY (org_slug, period, period_start))`,
    `CREATE TABLE IF NOT EXISTS org_run_slots (
      org_slug TEXT PRIMARY KEY, running INTEGER NOT NULL DEFAULT 0, updated_at BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS org_integration_credentials (
      credential_id TEXT PRIMARY KEY, org_slug TEXT NOT NULL, provider TEXT NOT NULL, credential_name TEXT,
      ciphertext TEXT, wrapped_key TEXT, kms_provider TEXT NOT NULL, kms_key_version TEXT NOT NULL,
      fingerprint TEXT NOT NULL, status TEXT NOT NULL, last_validated_at BIGINT, last_error_code TEXT,
      metadata TEXT NOT NULL, is_active INTEGER NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
      destroyed_at BIGINT)`,
    `CREATE UNIQUE INDEX IF NOT EXISTS org_integration_active_uq
      ON org_integration_credentials (org_slug, provider) WHERE is_active = 1`,
    `CREATE INDEX IF NOT EXISTS org_integration_org_idx ON org_integration_credentials (org_slug, provider, created_at)`,
    `CREATE TABLE IF NOT EXISTS org_pipeline_runs (
      run_id TEXT NOT NULL, run_date ${DATE} NOT NULL, org_slug TEXT NOT NULL, pipeline_id TEXT NOT NULL,
      status TEXT NOT NULL, parameters TEXT NOT NULL, dedup_key TEXT NOT NULL, trigger_type TEXT NOT NULL,
      triggered_by TEXT NOT NULL, schedule_id TEXT, created_at BIGINT NOT NULL, started_at BIGINT,
      finished_at BIGINT, duration_ms BIGINT, error_code TEXT, error_message TEXT,
      attempt INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 1, available_at BIGINT NOT NULL,
      lease_owner TEXT, lease_expires_at BIGINT, cancel_requested INTEGER NOT NULL DEFAULT 0,
      slot_released INTEGER NOT NULL DEFAULT 0, outcome_counted INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (run_id, run_date))${runsPartition}`,
    `CREATE INDEX IF NOT EXISTS org_pipeline_runs_org_idx ON org_pipeline_runs (org_slug, created_at, run_id)`,
    `CREATE INDEX IF NOT EXISTS org_pipeline_runs_active_idx ON org_pipeline_runs (org_slug, status, dedup_key)`,
    `CREATE INDEX IF NOT EXISTS org_pipeline_runs_claim_idx ON org_pipeline_runs (status, available_at)`,
    `CREATE INDEX IF NOT EXISTS org_pipeline_runs_lease_idx ON org_pipeline_runs (status, lease_expires_at)`,
    `CREATE TABLE IF NOT EXISTS org_step_logs (
      log_id TEXT NOT NULL, log_date ${DATE} NOT NULL, run_id TEXT NOT NULL, org_slug TEXT NOT NULL,
      step_id TEXT NOT NULL, processor TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,
      started_at BIGINT NOT NULL, finished_at BIGINT, duration_ms BIGINT, rows_processed BIGINT NOT NULL DEFAULT 0,
      error_code TEXT, error_message TEXT, result TEXT,
      PRIMARY KEY (log_id, log_date))${logsPartition}`,
    `CREATE INDEX IF NOT EXISTS org_step_logs_run_idx ON org_step_logs (org_slug, run_id, started_at, log_id)`,
    `CREATE TABLE IF NOT EXISTS org_schedules (
      schedule_id TEXT PRIMARY KEY, org_slug TEXT NOT NULL, pipeline_id TEXT NOT NULL, cron TEXT NOT NULL,
      timezone TEXT NOT NULL, parameters TEXT NOT NULL, is_active INTEGER NOT NULL, next_run_at BIGINT NOT NULL,
      last_run_at BIGINT, last_run_id TEXT, last_status TEXT, last_error_code TEXT,
      created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS org_schedules_org_idx ON org_schedules (org_slug, created_at, schedule_id)`,
    `CREATE INDEX IF NOT EXISTS org_schedules_due_idx ON org_schedules (is_active, next_run_at)`,
    `CREATE TABLE IF NOT EXISTS org_audit_logs (
      audit_id TEXT PRIMARY KEY, org_slug TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
      resource_type TEXT NOT NULL, resource_id TEXT, details TEXT NOT NULL, request_id TEXT, created_at BIGINT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS org_audit_logs_org_idx ON org_audit_logs (org_slug, created_at, audit_id)`,
    `CREATE TABLE IF NOT EXISTS org_idempotency_keys (
      scope TEXT NOT NULL, idempotency_key TEXT NOT NULL, request_hash TEXT NOT NULL, status_code INTEGER NOT NULL,
      response TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
      PRIMARY KEY (scope, idempotency_key))`,
    `CREATE INDEX IF NOT EXISTS org_idempotency_expiry_idx ON org_idempotency_keys (expires_at)`,
    `CREATE TABLE IF NOT EXISTS org_dataset_tables (
      org_slug TEXT NOT NULL, table_name TEXT NOT NULL, table_schema TEXT NOT NULL,
      created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (org_slug, table_name))`,
  ]
  if (pg) {
    s.push(`CREATE TABLE IF NOT EXISTS org_pipeline_runs_default PARTITION OF org_pipeline_runs DEFAULT`)
    s.push(`CREATE TABLE IF NOT EXISTS org_step_logs_default PARTITION OF org_step_logs DEFAULT`)
  }
  return s
}

export function coreMigration(dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      for (const stmt of statements(dialect)) await sql.raw(stmt).execute(db)
      // Plan rows come from the plan catalogue (configs/plans.yaml), mirrored at every startup.
    },
  }
}
