// Admission and release (SPEC §8.2–8.3). Admission is one transaction per run that holds the org's
// org_run_slots row lock (FOR UPDATE on PostgreSQL; SQLite is serialized by BEGIN IMMEDIATE), so the
// day, month and running counters are read and incremented under the same lock — never read-then-write.
// Release is guarded by the run's slot_released flag, so it happens at most once per admitted run.
import { sql, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely'
import type { Db, DialectName } from '../db/database.js'
import type { Database, OrgPipelineRunsTable } from '../db/schema.js'
import { nextMonthStart, nextUtcMidnight, utcDate, utcMonth } from '../clock.js'
import { newId } from '../ids.js'

export type RunRow = OrgPipelineRunsTable
export type RefusalCode = 'DAILY_QUOTA_EXCEEDED' | 'MONTHLY_QUOTA_EXCEEDED' | 'CONCURRENT_LIMIT_EXCEEDED' | 'SUBSCRIPTION_INACTIVE'

export interface AdmitInput {
  org_slug: string
  pipeline_id: string
  /** Normalized parameters (stored as JSON). */
  parameters: Record<string, unknown>
  dedup_key: string
  trigger_type: 'api' | 'schedule'
  triggered_by: string
  schedule_id?: string | null
  max_attempts: number
  now: number
}

export type AdmitResult =
  | { kind: 'admitted'; run: RunRow }
  | { kind: 'deduplicated'; run: RunRow }
  | { kind: 'refused'; code: RefusalCode; retryAfterSeconds: number }

/** Outcome counted on the run's day and month rows when its slot is released. */
export type RunOutcome = 'succeeded' | 'failed' | 'none'

/** A concurrency slot frees when some run of the org finishes; we cannot know when, so clients get a short estimate. */
export const CONCURRENCY_RETRY_AFTER_SECONDS = 30


export const secondsUntilNextUtcMidnight = (now: number) => Math.max(1, Math.ceil((nextUtcMidnight(now) - now) / 1000))
export const secondsUntilNextUtcMonth = (now: number) => Math.max(1, Math.ceil((nextMonthStart(now) - now) / 1000))

/** The org's counter rows for one UTC day and its calendar month. */
function dayOrMonthRow(eb: ExpressionBuilder<Database, 'org_usage_quotas'>, day: string, month: string) {
  return eb.or([
    eb.and([eb('period', '=', 'day'), eb('period_start', '=', day)]),
    eb.and([eb('period', '=', 'month'), eb('period_start', '=', month)]),
  ])
}

const greatest = (dialect: DialectName) => (dialect === 'postgres' ? sql.raw('GREATEST') : sql.raw('MAX'))

function subscriptionUsable(sub: { status: string; trial_end_at: number | null } | undefined, now: number): boolean {
  if (!sub) return false
  if (sub.status === 'ACTIVE') return true
  return sub.status === 'TRIAL' && (sub.trial_end_at === null || sub.trial_end_at > now)
}

/** Creates the org's slot row and the day/month counter rows if missing (no "first run of the day fails"). */
async function ensureCounterRows(trx: Kysely<Database>, org: string, day: string, month: string, now: number): Promise<void> {
  await trx
    .insertInto('org_usage_quotas')
    .values([
      { org_slug: org, period: 'day', period_start: day, runs_started: 0, runs_succeeded: 0, runs_failed: 0, updated_at: now },
      { org_slug: org, period: 'month', period_start: month, runs_started: 0, runs_succeeded: 0, runs_failed: 0, updated_at: now },
    ])
    .onConflict((oc) => oc.columns(['org_slug', 'period', 'period_start']).doNothing())
    .execute()
}

/** Locks the org's slot row (creating it on demand) and returns its running count. */
async function lockSlots(trx: Kysely<Database>, dialect: DialectName, org: string, now: number): Promise<number> {
  await trx
    .insertInto('org_run_slots')
    .values({ org_slug: org, running: 0, updated_at: now })
    .onConflict((oc) => oc.column('org_slug').doNothing())
    .execute()
  let q = trx.selectFrom('org_run_slots').select('running').where('org_slug', '=', org).limit(1)
  if (dialect === 'postgres') q = q.forUpdate()
  const row = await q.executeTakeFirstOrThrow()
  return Number(row.running)
}

/**
 * The admission decision, inside a caller's transaction (the scheduler advances its schedule in the
 * same transaction). Lock order everywhere: org_run_slots row, then the usage rows.
 */
export async function admitInTransaction(trx: Transaction<Database>, dialect: DialectName, input: AdmitInput): Promise<AdmitResult> {
  const { org_slug: org, now } = input
  const day = utcDate(now)
  const month = utcMonth(now)
  const running = await lockSlots(trx, dialect, org, now)

  const existing = await trx
    .selectFrom('org_pipeline_runs')
    .selectAll()
    .where('org_slug', '=', org)
    // Literal statuses (constants, not input) so both planners can use the partial dedup index.
    .where(sql<boolean>`status IN ('PENDING', 'RUNNING')`)
    .where('dedup_key', '=', input.dedup_key)
    .orderBy('created_at', 'asc')
    .limit(1)
    .executeTakeFirst()
  if (existing) return { kind: 'deduplicated', run: existing }

  const sub = await trx
    .selectFrom('org_subscriptions as s')
    .innerJoin('org_profiles as p', 'p.org_slug', 's.org_slug')
    .select(['s.status', 's.trial_end_at', 's.daily_limit', 's.monthly_limit', 's.concurrent_limit', 'p.status as org_status'])
    .where('s.org_slug', '=', org)
    .limit(1)
    .executeTakeFirst()
  if (!sub) {
    // No such org (e.g. offboarded while this request was in flight): do not leave behind the slot row
    // lockSlots just created, or onboarding the slug again would collide with it.
    await trx.deleteFrom('org_run_slots').where('org_slug', '=', org).where('running', '=', 0).execute()
    return { kind: 'refused', code: 'SUBSCRIPTION_INACTIVE', retryAfterSeconds: 0 }
  }
  if (sub.org_status !== 'ACTIVE' || !subscriptionUsable(sub, now)) {
    return { kind: 'refused', code: 'SUBSCRIPTION_INACTIVE', retryAfterSeconds: 0 }
  }

  await ensureCounterRows(trx, org, day, month, now)
  const usage = await trx
    .selectFrom('org_usage_quotas')
    .select(['period', 'runs_started'])
    .where('org_slug', '=', org)
    .where((eb) => dayOrMonthRow(eb, day, month))
    .limit(2)
    .execute()
  const dayCount = Number(usage.find((u) => u.period === 'day')?.runs_started ?? 0)
  const monthCount = Number(usage.find((u) => u.period === 'month')?.runs_started ?? 0)

  // The binding limit is the one that lifts last: with both spent, a retry at midnight would be refused again.
  if (monthCount >= sub.monthly_limit) return { kind: 'refused', code: 'MONTHLY_QUOTA_EXCEEDED', retryAfterSeconds: secondsUntilNextUtcMonth(now) }
  if (dayCount >= sub.daily_limit) return { kind: 'refused', code: 'DAILY_QUOTA_EXCEEDED', retryAfterSeconds: secondsUntilNextUtcMidnight(now) }
  if (running >= sub.concurrent_limit) return { kind: 'refused', code: 'CONCURRENT_LIMIT_EXCEEDED', retryAfterSeconds: CONCURRENCY_RETRY_AFTER_SECONDS }

  await trx
    .updateTable('org_run_slots')
    .set((eb) => ({ running: eb('running', '+', 1), updated_at: now }))
    .where('org_slug', '=', org)
    .execute()
  await trx
    .updateTable('org_usage_quotas')
    .set((eb) => ({ runs_started: eb('runs_started', '+', 1), updated_at: now }))
    .where('org_slug', '=', org)
    .where((eb) => dayOrMonthRow(eb, day, month))
    .execute()

  const run: RunRow = {
    run_id: newId('run', now),
    run_date: day,
    org_slug: org,
    pipeline_id: input.pipeline_id,
    status: 'PENDING',
    parameters: JSON.stringify(input.parameters),
    dedup_key: input.dedup_key,
    trigger_type: input.trigger_type,
    triggered_by: input.triggered_by,
    schedule_id: input.schedule_id ?? null,
    created_at: now,
    started_at: null,
    finished_at: null,
    duration_ms: null,
    error_code: null,
    error_message: null,
    attempt: 1,
    max_attempts: Math.max(1, Math.min(10, Math.floor(input.max_attempts))),
    available_at: now,
    lease_owner: null,
    lease_expires_at: null,
    cancel_requested: 0,
    slot_released: 0,
    outcome_counted: 0,
  }
  await trx.insertInto('org_pipeline_runs').values(run).execute()
  return { kind: 'admitted', run }
}

/** One atomic admission decision: dedup, limits, counters and the PENDING run row in one transaction. */
/** Runs inside the admission transaction once a run is admitted or deduplicated; throwing rolls it back. */
export type AdmitHook = (trx: Transaction<Database>, result: Exclude<AdmitResult, { kind: 'refused' }>) => Promise<void>

export async function admitRun(db: Db, input: AdmitInput, onDecided?: AdmitHook): Promise<AdmitResult> {
  return db.kysely.transaction().execute(async (trx) => {
    const result = await admitInTransaction(trx, db.dialect, input)
    if (result.kind !== 'refused' && onDecided) await onDecided(trx, result)
    return result
  })
}

/**
 * Releases the run's slot inside the caller's transaction (terminal transitions call this in the same
 * transaction that sets the final status). Returns true only for the call that actually released.
 */
export async function releaseInTransaction(
  trx: Kysely<Database>,
  dialect: DialectName,
  runId: string,
  outcome: RunOutcome,
  now: number,
): Promise<boolean> {
  const claimed = await trx
    .updateTable('org_pipeline_runs')
    .set({ slot_released: 1, outcome_counted: 1 })
    .where('run_id', '=', runId)
    .where('slot_released', '=', 0)
    .returning(['org_slug', 'run_date'])
    .executeTakeFirst()
  if (!claimed) return false
  const org = claimed.org_slug
  await trx
    .updateTable('org_run_slots')
    .set({ running: sql<number>`${greatest(dialect)}(running - 1, 0)`, updated_at: now })
    .where('org_slug', '=', org)
    .execute()
  if (outcome !== 'none') {
    const day = String(claimed.run_date).slice(0, 10)
    const month = day.slice(0, 7)
    const column = outcome === 'succeeded' ? 'runs_succeeded' : 'runs_failed'
    await trx
      .updateTable('org_usage_quotas')
      .set((eb) => ({ [column]: eb(column, '+', 1), updated_at: now }))
      .where('org_slug', '=', org)
      .where((eb) => dayOrMonthRow(eb, day, month))
      .execute()
  }
  return true
}

/** Exactly-once release: the first call frees the slot and counts the outcome; later calls are no-ops. */
export async function releaseRun(db: Db, runId: string, outcome: RunOutcome, now: number): Promise<boolean> {
  return db.kysely.transaction().execute((trx) => releaseInTransaction(trx, db.dialect, runId, outcome, now))
}
