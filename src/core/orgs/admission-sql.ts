// The admission decision as fixed SQL text, one implementation per backend (issue 12 item 3):
// - SQLite: the statements below, prepared once by the connection's statement cache and executed
//   with bound values, so no admission rebuilds a query; an org's slot, subscription and counter rows
//   are read once per batch and its increments written once at the end of it;
// - PostgreSQL: one PL/pgSQL function that decides a whole batch of admissions in one round trip,
//   holding the org's slot row lock only while it runs (migration 015 creates it).
// Both follow the same steps and lock order as SPEC §8.2: the org_run_slots row (FOR UPDATE), the
// dedup lookup, the subscription, then the day and month counter rows, then the run row.

/** The dedup lookup (an org's oldest active run with one dedup key); literal statuses match the partial index. */
export const DEDUP_LOOKUP_SQL = {
  sqlite: `SELECT * FROM org_pipeline_runs WHERE org_slug = ? AND status IN ('PENDING', 'RUNNING') AND dedup_key = ? ORDER BY created_at ASC LIMIT 1`,
  postgres: `SELECT * FROM org_pipeline_runs WHERE org_slug = $1 AND status IN ('PENDING', 'RUNNING') AND dedup_key = $2 ORDER BY created_at ASC LIMIT 1`,
} as const

const RUN_COLUMNS = [
  'run_id', 'run_date', 'org_slug', 'pipeline_id', 'status', 'parameters', 'dedup_key', 'trigger_type', 'triggered_by',
  'schedule_id', 'created_at', 'started_at', 'finished_at', 'duration_ms', 'error_code', 'error_message', 'attempt',
  'max_attempts', 'available_at', 'lease_owner', 'lease_expires_at', 'cancel_requested', 'slot_released', 'outcome_counted',
] as const
export const RUN_COLUMN_NAMES: readonly string[] = RUN_COLUMNS

const AUDIT_COLUMNS = ['audit_id', 'org_slug', 'actor', 'action', 'resource_type', 'resource_id', 'details', 'request_id', 'created_at'] as const
export const AUDIT_COLUMN_NAMES: readonly string[] = AUDIT_COLUMNS

export const SQLITE_ADMISSION = {
  ensureSlots: `INSERT INTO org_run_slots (org_slug, running, updated_at) VALUES (?, 0, ?) ON CONFLICT (org_slug) DO NOTHING`,
  readSlots: `SELECT running FROM org_run_slots WHERE org_slug = ? LIMIT 1`,
  dedup: DEDUP_LOOKUP_SQL.sqlite,
  subscription: `SELECT s.status, s.trial_end_at, s.daily_limit, s.monthly_limit, s.concurrent_limit, p.status AS org_status
    FROM org_subscriptions s INNER JOIN org_profiles p ON p.org_slug = s.org_slug WHERE s.org_slug = ? LIMIT 1`,
  dropIdleSlots: `DELETE FROM org_run_slots WHERE org_slug = ? AND running = 0`,
  ensureCounters: `INSERT INTO org_usage_quotas (org_slug, period, period_start, runs_started, runs_succeeded, runs_failed, updated_at)
    VALUES (?, 'day', ?, 0, 0, 0, ?), (?, 'month', ?, 0, 0, 0, ?) ON CONFLICT (org_slug, period, period_start) DO NOTHING`,
  readCounters: `SELECT period, runs_started FROM org_usage_quotas
    WHERE org_slug = ? AND ((period = 'day' AND period_start = ?) OR (period = 'month' AND period_start = ?)) LIMIT 2`,
  // A batch's admissions for one org are counted together, once the batch is decided (see admitSqliteBatch).
  takeSlots: `UPDATE org_run_slots SET running = running + ?, updated_at = ? WHERE org_slug = ?`,
  countStarts: `UPDATE org_usage_quotas SET runs_started = runs_started + ?, updated_at = ?
    WHERE org_slug = ? AND ((period = 'day' AND period_start = ?) OR (period = 'month' AND period_start = ?))`,
  insertRun: `INSERT INTO org_pipeline_runs (${RUN_COLUMNS.join(', ')}) VALUES (${RUN_COLUMNS.map(() => '?').join(', ')})`,
  insertAudit: `INSERT INTO org_audit_logs (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`,
} as const

/**
 * `tenantflow_admit(items jsonb) RETURNS jsonb`: decides each item in order and returns one result per
 * item: `{"kind":"admitted","run":{...}}`, `{"kind":"deduplicated","run":{...}}` or
 * `{"kind":"refused","code":"..."}`. Items of one call may name different orgs; each takes its org's
 * slot row lock (held to the end of the caller's transaction). An item with an `audit` object gets
 * that audit row when it is admitted. Retry-After is computed by the caller from the code.
 * Migration 015 creates it from this text: a change here needs a new migration that runs it again
 * (it is CREATE OR REPLACE), or stores that already migrated keep the old function.
 */
export const PG_ADMIT_FUNCTION = `
CREATE OR REPLACE FUNCTION tenantflow_admit(items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $fn$
DECLARE
  it jsonb;
  v_org text;
  v_now bigint;
  v_day text;
  v_month text;
  v_running integer;
  v_sub record;
  v_existing org_pipeline_runs%ROWTYPE;
  v_run org_pipeline_runs%ROWTYPE;
  v_day_count integer;
  v_month_count integer;
  v_out jsonb := '[]'::jsonb;
BEGIN
  FOR it IN SELECT e.value FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, n) ORDER BY e.n LOOP
    v_org := it->>'org_slug';
    v_now := (it->>'now')::bigint;
    v_day := it->>'day';
    v_month := it->>'month';
    INSERT INTO org_run_slots (org_slug, running, updated_at) VALUES (v_org, 0, v_now) ON CONFLICT (org_slug) DO NOTHING;
    SELECT s.running INTO v_running FROM org_run_slots s WHERE s.org_slug = v_org FOR UPDATE;

    SELECT * INTO v_existing FROM org_pipeline_runs r
      WHERE r.org_slug = v_org AND r.status IN ('PENDING', 'RUNNING') AND r.dedup_key = it->>'dedup_key'
      ORDER BY r.created_at ASC LIMIT 1;
    IF FOUND THEN
      v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'deduplicated', 'run', to_jsonb(v_existing)));
      CONTINUE;
    END IF;

    SELECT s.status, s.trial_end_at, s.daily_limit, s.monthly_limit, s.concurrent_limit, p.status AS org_status INTO v_sub
      FROM org_subscriptions s JOIN org_profiles p ON p.org_slug = s.org_slug WHERE s.org_slug = v_org LIMIT 1;
    IF NOT FOUND THEN
      -- No such org (offboarded while the request was in flight): leave no slot row behind.
      DELETE FROM org_run_slots WHERE org_slug = v_org AND running = 0;
      v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'refused', 'code', 'SUBSCRIPTION_INACTIVE'));
      CONTINUE;
    END IF;
    IF v_sub.org_status <> 'ACTIVE' OR NOT (v_sub.status = 'ACTIVE'
        OR (v_sub.status = 'TRIAL' AND (v_sub.trial_end_at IS NULL OR v_sub.trial_end_at > v_now))) THEN
      v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'refused', 'code', 'SUBSCRIPTION_INACTIVE'));
      CONTINUE;
    END IF;

    INSERT INTO org_usage_quotas (org_slug, period, period_start, runs_started, runs_succeeded, runs_failed, updated_at)
      VALUES (v_org, 'day', v_day, 0, 0, 0, v_now), (v_org, 'month', v_month, 0, 0, 0, v_now)
      ON CONFLICT (org_slug, period, period_start) DO NOTHING;
    SELECT q.runs_started INTO v_day_count FROM org_usage_quotas q WHERE q.org_slug = v_org AND q.period = 'day' AND q.period_start = v_day;
    SELECT q.runs_started INTO v_month_count FROM org_usage_quotas q WHERE q.org_slug = v_org AND q.period = 'month' AND q.period_start = v_month;

    -- The binding limit is the one that lifts last.
    IF v_month_count >= v_sub.monthly_limit THEN
      v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'refused', 'code', 'MONTHLY_QUOTA_EXCEEDED'));
      CONTINUE;
    END IF;
    IF v_day_count >= v_sub.daily_limit THEN
      v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'refused', 'code', 'DAILY_QUOTA_EXCEEDED'));
      CONTINUE;
    END IF;
    IF v_running >= v_sub.concurrent_limit THEN
      v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'refused', 'code', 'CONCURRENT_LIMIT_EXCEEDED'));
      CONTINUE;
    END IF;

    UPDATE org_run_slots SET running = running + 1, updated_at = v_now WHERE org_slug = v_org;
    UPDATE org_usage_quotas SET runs_started = runs_started + 1, updated_at = v_now
      WHERE org_slug = v_org AND ((period = 'day' AND period_start = v_day) OR (period = 'month' AND period_start = v_month));
    INSERT INTO org_pipeline_runs (${RUN_COLUMNS.join(', ')})
      VALUES (it->>'run_id', (it->>'day')::date, v_org, it->>'pipeline_id', 'PENDING', it->>'parameters', it->>'dedup_key',
        it->>'trigger_type', it->>'triggered_by', it->>'schedule_id', v_now, NULL, NULL, NULL, NULL, NULL, 1,
        (it->>'max_attempts')::integer, v_now, NULL, NULL, 0, 0, 0)
      RETURNING * INTO v_run;
    IF jsonb_typeof(it->'audit') = 'object' THEN
      INSERT INTO org_audit_logs (${AUDIT_COLUMNS.join(', ')})
        VALUES (it->'audit'->>'audit_id', v_org, it->'audit'->>'actor', it->'audit'->>'action', it->'audit'->>'resource_type',
          v_run.run_id, it->'audit'->>'details', it->'audit'->>'request_id', v_now);
    END IF;
    v_out := v_out || jsonb_build_array(jsonb_build_object('kind', 'admitted', 'run', to_jsonb(v_run)));
  END LOOP;
  RETURN v_out;
END
$fn$`
