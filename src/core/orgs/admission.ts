// Admission and release (SPEC §8.2–8.3). Admission is one transaction per run that holds the org's
// org_run_slots row lock (FOR UPDATE on PostgreSQL; SQLite is serialized by BEGIN IMMEDIATE), so the
// day, month and running counters are read and incremented under the same lock — never read-then-write.
// Release is guarded by the run's slot_released flag, so it happens at most once per admitted run.
import { CompiledQuery, sql, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely'
import type { Db, DialectName } from '../db/database.js'
import type { Database, OrgPipelineRunsTable } from '../db/schema.js'
import { nextMonthStart, nextUtcMidnight, utcCalendar } from '../clock.js'
import { newId } from '../ids.js'
import { AUDIT_COLUMN_NAMES, RUN_COLUMN_NAMES, SQLITE_ADMISSION } from './admission-sql.js'
import { AdmissionQueue, MAX_ADMISSION_GROUP } from './admission-queue.js'

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
  /** Written with the admitted run, in the same transaction (resource: the run). */
  audit?: { actor: string; action: string; details?: Record<string, unknown>; request_id?: string | null }
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

function subscriptionUsable(sub: { status: string; trial_end_at: number | null }, now: number): boolean {
  if (sub.status === 'ACTIVE') return true
  return sub.status === 'TRIAL' && (sub.trial_end_at === null || Number(sub.trial_end_at) > now)
}

function refusal(code: RefusalCode, now: number): AdmitResult {
  // The binding limit is the one that lifts last: with both spent, a retry at midnight would be refused again.
  if (code === 'MONTHLY_QUOTA_EXCEEDED') return { kind: 'refused', code, retryAfterSeconds: secondsUntilNextUtcMonth(now) }
  if (code === 'DAILY_QUOTA_EXCEEDED') return { kind: 'refused', code, retryAfterSeconds: secondsUntilNextUtcMidnight(now) }
  if (code === 'CONCURRENT_LIMIT_EXCEEDED') return { kind: 'refused', code, retryAfterSeconds: CONCURRENCY_RETRY_AFTER_SECONDS }
  return { kind: 'refused', code, retryAfterSeconds: 0 }
}

/** The PENDING run row an admission inserts. */
function newRunRow(input: AdmitInput): RunRow {
  const now = input.now
  return {
    run_id: newId('run', now),
    run_date: utcCalendar(now).day,
    org_slug: input.org_slug,
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
}

function auditRow(input: AdmitInput, runId: string): Record<string, unknown> | null {
  if (!input.audit) return null
  return {
    audit_id: newId('aud', input.now),
    org_slug: input.org_slug,
    actor: input.audit.actor,
    action: input.audit.action,
    resource_type: 'run',
    resource_id: runId,
    details: JSON.stringify(input.audit.details ?? {}),
    request_id: input.audit.request_id ?? null,
    created_at: input.now,
  }
}

const run = async <R>(trx: Kysely<Database>, text: string, params: unknown[]): Promise<R[]> =>
  (await trx.executeQuery<R>(CompiledQuery.raw(text, params))).rows

/** What a SQLite batch knows of one org: read once, updated in memory, its increments written at the end. */
interface SqliteOrgState {
  day: string
  month: string
  running: number
  /** undefined until the first admission that needs it; null when the org has none. */
  sub?: { status: string; trial_end_at: number | null; daily_limit: number; monthly_limit: number; concurrent_limit: number; org_status: string } | null
  counts: { day: number; month: number } | null
  /** Admitted in this batch and not yet written to the slot and counter rows. */
  taken: number
  lastNow: number
}

/**
 * SQLite: the decisions of a batch, in order, as prepared statements; BEGIN IMMEDIATE already
 * serializes writers. Each org's slot, subscription and counter rows are read once; each decision
 * counts in memory what the ones before it took, and inserts its run row at once (so a later
 * decision's dedup lookup finds it); the increments are written once per org when the batch ends.
 */
async function admitSqliteBatch(trx: Kysely<Database>, inputs: AdmitInput[]): Promise<AdmitResult[]> {
  const q = SQLITE_ADMISSION
  const orgs = new Map<string, SqliteOrgState>()
  const flush = async (org: string, st: SqliteOrgState) => {
    if (st.taken === 0) return
    await run(trx, q.takeSlots, [st.taken, st.lastNow, org])
    await run(trx, q.countStarts, [st.taken, st.lastNow, org, st.day, st.month])
    st.taken = 0
  }
  const out: AdmitResult[] = []
  for (const input of inputs) {
    const { org_slug: org, now } = input
    const { day, month } = utcCalendar(now)
    let st = orgs.get(org)
    if (st && (st.day !== day || st.month !== month)) {
      // The batch crossed midnight: count what it took on the old day, then read the new day's rows.
      await flush(org, st)
      st.day = day
      st.month = month
      st.counts = null
    }
    if (!st) {
      await run(trx, q.ensureSlots, [org, now])
      const running = Number((await run<{ running: number }>(trx, q.readSlots, [org]))[0]?.running ?? 0)
      st = { day, month, running, counts: null, taken: 0, lastNow: now }
      orgs.set(org, st)
    }
    const existing = (await run<RunRow>(trx, q.dedup, [org, input.dedup_key]))[0]
    if (existing) {
      out.push({ kind: 'deduplicated', run: existing })
      continue
    }
    if (st.sub === undefined) {
      st.sub = (await run<NonNullable<SqliteOrgState['sub']>>(trx, q.subscription, [org]))[0] ?? null
      // No such org (e.g. offboarded while this request was in flight): leave no slot row behind, or
      // onboarding the slug again would collide with it. (Nothing was taken: that needs a subscription.)
      if (!st.sub) await run(trx, q.dropIdleSlots, [org])
    }
    const sub = st.sub
    if (!sub || sub.org_status !== 'ACTIVE' || !subscriptionUsable(sub, now)) {
      out.push(refusal('SUBSCRIPTION_INACTIVE', now))
      continue
    }
    if (!st.counts) {
      await run(trx, q.ensureCounters, [org, day, now, org, month, now])
      const usage = await run<{ period: string; runs_started: number }>(trx, q.readCounters, [org, day, month])
      st.counts = {
        day: Number(usage.find((u) => u.period === 'day')?.runs_started ?? 0),
        month: Number(usage.find((u) => u.period === 'month')?.runs_started ?? 0),
      }
    }
    const counts = st.counts
    if (counts.month >= sub.monthly_limit) out.push(refusal('MONTHLY_QUOTA_EXCEEDED', now))
    else if (counts.day >= sub.daily_limit) out.push(refusal('DAILY_QUOTA_EXCEEDED', now))
    else if (st.running >= sub.concurrent_limit) out.push(refusal('CONCURRENT_LIMIT_EXCEEDED', now))
    else {
      counts.day++
      counts.month++
      st.running++
      st.taken++
      st.lastNow = now
      const row = newRunRow(input)
      await run(trx, q.insertRun, RUN_COLUMN_NAMES.map((c) => row[c as keyof RunRow]))
      const audit = auditRow(input, row.run_id)
      if (audit) await run(trx, q.insertAudit, AUDIT_COLUMN_NAMES.map((c) => audit[c]))
      out.push({ kind: 'admitted', run: row })
    }
  }
  for (const [org, st] of orgs) await flush(org, st)
  return out
}

type PgDecision = { kind: 'admitted' | 'deduplicated'; run: RunRow } | { kind: 'refused'; code: RefusalCode }

/** PostgreSQL: every decision of the batch in one call of tenantflow_admit (one round trip). */
async function admitPostgres(db: Kysely<Database>, inputs: AdmitInput[]): Promise<AdmitResult[]> {
  const items = inputs.map((input) => {
    const row = newRunRow(input)
    const audit = auditRow(input, row.run_id)
    return {
      org_slug: input.org_slug, now: input.now, day: row.run_date, month: utcCalendar(input.now).month, run_id: row.run_id,
      pipeline_id: row.pipeline_id, parameters: row.parameters, dedup_key: row.dedup_key, trigger_type: row.trigger_type,
      triggered_by: row.triggered_by, schedule_id: row.schedule_id, max_attempts: row.max_attempts, audit,
    }
  })
  const r = await sql<{ decisions: PgDecision[] }>`SELECT tenantflow_admit(${JSON.stringify(items)}::jsonb) AS decisions`.execute(db)
  const decisions = r.rows[0]!.decisions
  return decisions.map((d, i) => (d.kind === 'refused' ? refusal(d.code, inputs[i]!.now) : { kind: d.kind, run: d.run }))
}

/**
 * The admission decision, inside a caller's transaction (the scheduler advances its schedule in the
 * same transaction). Lock order everywhere: org_run_slots row, then the usage rows.
 */
export async function admitInTransaction(trx: Transaction<Database>, dialect: DialectName, input: AdmitInput): Promise<AdmitResult> {
  return (await admitBatchInTransaction(trx, dialect, [input]))[0]!
}

/** Several decisions in order in one transaction (each sees the ones before it). */
export async function admitBatchInTransaction(trx: Kysely<Database>, dialect: DialectName, inputs: AdmitInput[]): Promise<AdmitResult[]> {
  if (inputs.length === 0) return []
  return dialect === 'postgres' ? admitPostgres(trx, inputs) : admitSqliteBatch(trx, inputs)
}

/** Runs inside the admission transaction once a run is admitted or deduplicated; throwing rolls it back. */
export type AdmitHook = (trx: Transaction<Database>, result: Exclude<AdmitResult, { kind: 'refused' }>) => Promise<void>

/**
 * One atomic admission decision: dedup, limits, counters, the PENDING run row (and its audit row) in
 * one transaction. Concurrent calls for one org in this process are decided together (see
 * admission-queue.ts): one transaction and, on PostgreSQL, one round trip for the whole group.
 */
export async function admitRun(db: Db, input: AdmitInput, onDecided?: AdmitHook): Promise<AdmitResult> {
  return admissionQueueOf(db).admit(input, onDecided)
}

const queues = new WeakMap<Db, AdmissionQueue>()
function admissionQueueOf(db: Db): AdmissionQueue {
  let q = queues.get(db)
  if (!q) {
    q = new AdmissionQueue((input, hook) => admitAlone(db, input, hook), (inputs) => admitGroup(db, inputs), MAX_ADMISSION_GROUP, db.dialect === 'sqlite')
    queues.set(db, q)
  }
  return q
}

/** One admission alone in its own transaction (what a group of one, or a call with a hook, runs). */
export async function admitAlone(db: Db, input: AdmitInput, onDecided?: AdmitHook): Promise<AdmitResult> {
  if (db.dialect === 'postgres' && !onDecided) return (await admitPostgres(db.kysely, [input]))[0]!
  return db.kysely.transaction().execute(async (trx) => {
    const result = await admitInTransaction(trx, db.dialect, input)
    if (result.kind !== 'refused' && onDecided) await onDecided(trx, result)
    return result
  })
}

/** A group of hook-free admissions: one transaction (one statement on PostgreSQL, which is its own transaction). */
export async function admitGroup(db: Db, inputs: AdmitInput[]): Promise<AdmitResult[]> {
  if (db.dialect === 'postgres') return admitPostgres(db.kysely, inputs)
  return db.kysely.transaction().execute((trx) => admitBatchInTransaction(trx, db.dialect, inputs))
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
