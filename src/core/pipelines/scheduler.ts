// Per-org schedules (cron + IANA timezone + template + parameters) and the loop that fires them.
// Due schedules fire in chunks, each one transaction of a few set-based statements whatever its size:
// the chunk's compare-and-set on next_run_at, one batched admission, one status update. The
// compare-and-set is IN THE SAME TRANSACTION as the admission, so a tick fires at most once even with several schedulers; on PostgreSQL only the
// instance holding an advisory lock schedules at all. next_run_at moves to the first cron time after
// now, so ticks missed during downtime fire once, and a refusal is recorded, not retried in a loop.
import pg from 'pg'
import { PeriodicTask } from './periodic.js'
import { CronExpressionParser } from 'cron-parser'
import { CompiledQuery, sql, type Transaction } from 'kysely'
import type { Db } from '../db/database.js'
import type { Database, OrgSchedulesTable } from '../db/schema.js'
import type { Clock } from '../clock.js'
import { newId } from '../ids.js'
import { admitBatchInTransaction, type AdmitInput, type AdmitResult } from '../orgs/admission.js'
import { computeDedupKey } from './runs.js'
import type { EngineDeps, EngineLogger } from './executor.js'
import type { EngineMetrics } from './metrics.js'
import type { FieldIssue, TemplateCatalog } from './templates.js'

export type ScheduleRow = OrgSchedulesTable
export const MAX_SCHEDULES_PER_ORG = 100
const SCHEDULER_LOCK_ID = 727_002
const ALIASES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly'])

export type ScheduleErrorCode =
  | 'INVALID_CRON' | 'INVALID_TIMEZONE' | 'TEMPLATE_NOT_FOUND' | 'INVALID_PARAMETERS' | 'SCHEDULE_LIMIT' | 'ORG_NOT_FOUND'
  | 'INTERVAL_TOO_SHORT' | 'NOT_FOUND' | 'CONFLICT'

export class ScheduleError extends Error {
  constructor(
    readonly code: ScheduleErrorCode,
    readonly fields: string[] = [],
    /** The same fields with the rule each broke (never the value). */
    readonly errors: FieldIssue[] = fields.map((path) => ({ path, message: 'is invalid' })),
  ) {
    super(code)
    this.name = 'ScheduleError'
  }
}

export function isValidTimezone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

// Jenkins-style `H` ("hashed") is resolved by the cron library with Math.random, so one expression
// would give a different time on every parse: refused (THU, MAR... contain no standalone H).
const HASHED_FIELD = /\bH\b/i
export const CRON_RULE = 'must be a five-field cron expression (no H) or one of @hourly, @daily, @weekly, @monthly, @yearly'
export const TIMEZONE_RULE = 'must be an IANA time zone such as UTC or Europe/Paris'

/**
 * Parses a five-field cron or a coarse alias (second-level schedules are not offered) once, in the
 * schedule's timezone, and returns the first time strictly after `after` (epoch ms); null when the
 * expression is not accepted or has no next time. Validation and next-time computation share it.
 */
export function parseCronNext(cron: string, timezone: string, after: number): number | null {
  const c = cron.trim()
  if (c.length === 0 || c.length > 100) return null
  if (c.startsWith('@') ? !ALIASES.has(c) : c.split(/\s+/).length !== 5 || HASHED_FIELD.test(c)) return null
  try {
    const next = CronExpressionParser.parse(c, { tz: timezone, currentDate: new Date(after) }).next().getTime()
    return Number.isFinite(next) ? next : null
  } catch {
    return null
  }
}

export function isValidCron(cron: string): boolean {
  return parseCronNext(cron, 'UTC', Date.now()) !== null
}

/** First cron time strictly after `after` (epoch ms) in the schedule's timezone; throws when there is none. */
export function nextCronTime(cron: string, timezone: string, after: number): number {
  const next = parseCronNext(cron, timezone, after)
  if (next === null) throw new ScheduleError('INVALID_CRON', ['cron'])
  return next
}

/**
 * The shortest gap (seconds) between consecutive fire times over the next `horizon` fires, stopping
 * early once a gap below `stopBelow` is seen (that alone decides a refusal).
 */
export function shortestCronGapSeconds(cron: string, timezone: string, from: number, stopBelow: number, horizon = 400): number {
  const it = CronExpressionParser.parse(cron.trim(), { tz: timezone, currentDate: new Date(from) })
  let prev = it.next().getTime()
  let min = Number.POSITIVE_INFINITY
  for (let i = 0; i < horizon; i++) {
    let t: number
    try {
      t = it.next().getTime()
    } catch {
      break // no further fire time
    }
    min = Math.min(min, (t - prev) / 1000)
    if (min < stopBelow) break
    prev = t
  }
  return min
}

export interface ScheduleInput {
  pipeline_id: string
  cron: string
  timezone: string
  parameters?: Record<string, unknown>
  name?: string | null
}

/** Checks that need the org's plan: the minimum interval between two fires. */
export interface ScheduleRules {
  minIntervalSeconds: number
  planName: string
}

function checkCronAndZone(cron: string, timezone: string, rules: ScheduleRules | undefined, now: number): void {
  const zoneOk = isValidTimezone(timezone)
  const next = parseCronNext(cron, zoneOk ? timezone : 'UTC', now)
  const errors: FieldIssue[] = []
  if (next === null) errors.push({ path: 'cron', message: CRON_RULE })
  if (!zoneOk) errors.push({ path: 'timezone', message: TIMEZONE_RULE })
  if (next === null || !zoneOk) throw new ScheduleError(next === null ? 'INVALID_CRON' : 'INVALID_TIMEZONE', errors.map((e) => e.path), errors)
  if (rules && shortestCronGapSeconds(cron, timezone, now, rules.minIntervalSeconds) < rules.minIntervalSeconds) {
    throw new ScheduleError('INTERVAL_TOO_SHORT', ['cron'], [
      { path: 'cron', message: `fires more often than the ${rules.planName} plan allows: at most once every ${rules.minIntervalSeconds} s` },
    ])
  }
}

export async function createSchedule(
  db: Db,
  catalog: TemplateCatalog,
  orgSlug: string,
  input: ScheduleInput,
  now: number,
  rules?: ScheduleRules,
): Promise<ScheduleRow> {
  checkCronAndZone(input.cron, input.timezone, rules, now)
  const nextRunAt = nextCronTime(input.cron, input.timezone, now)
  const template = catalog.getById(input.pipeline_id)
  if (!template) throw new ScheduleError('TEMPLATE_NOT_FOUND', ['pipeline_id'])
  const params = input.parameters ?? {}
  const checked = catalog.validateParameters(template, params, now)
  if (!checked.ok) throw new ScheduleError('INVALID_PARAMETERS', checked.fields, checked.errors)
  const row: ScheduleRow = {
    schedule_id: newId('sch', now),
    name: input.name ?? null,
    org_slug: orgSlug,
    pipeline_id: template.id,
    cron: input.cron.trim(),
    timezone: input.timezone,
    // Raw input: relative defaults such as date=yesterday resolve when the schedule fires.
    parameters: JSON.stringify(params),
    is_active: 1,
    next_run_at: nextRunAt,
    last_run_at: null,
    last_run_id: null,
    last_status: null,
    last_error_code: null,
    created_at: now,
    updated_at: now,
  }
  await db.kysely.transaction().execute(async (trx) => {
    let lock = trx.selectFrom('org_profiles').select('org_slug').where('org_slug', '=', orgSlug).limit(1)
    if (db.dialect === 'postgres') lock = lock.forUpdate()
    if (!(await lock.executeTakeFirst())) throw new ScheduleError('ORG_NOT_FOUND')
    const count = await sql<{ n: number | string }>`
      SELECT count(*) AS n FROM (SELECT 1 FROM org_schedules WHERE org_slug = ${orgSlug} LIMIT ${MAX_SCHEDULES_PER_ORG}) AS s`.execute(trx)
    if (Number(count.rows[0]?.n ?? 0) >= MAX_SCHEDULES_PER_ORG) throw new ScheduleError('SCHEDULE_LIMIT')
    await trx.insertInto('org_schedules').values(row).execute()
  })
  return row
}

export interface ScheduleKey {
  created_at: number
  schedule_id: string
}

/** Newest first, keyset on (created_at, schedule_id); limit max 100. */
export async function listSchedules(
  db: Db,
  orgSlug: string,
  q: { limit?: number; after?: ScheduleKey | null },
): Promise<{ schedules: ScheduleRow[]; next: ScheduleKey | null }> {
  const limit = Math.min(Math.max(q.limit ?? 20, 1), 100)
  let query = db.kysely.selectFrom('org_schedules').selectAll().where('org_slug', '=', orgSlug)
  const after = q.after
  if (after) {
    query = query.where((eb) => eb(eb.refTuple('created_at', 'schedule_id'), '<', eb.tuple(after.created_at, after.schedule_id)))
  }
  const rows = await query.orderBy('created_at', 'desc').orderBy('schedule_id', 'desc').limit(limit + 1).execute()
  const schedules = rows.slice(0, limit)
  const last = schedules[schedules.length - 1]
  return { schedules, next: rows.length > limit && last ? { created_at: Number(last.created_at), schedule_id: last.schedule_id } : null }
}

export interface SchedulePatch {
  name?: string | null
  cron?: string
  timezone?: string
  parameters?: Record<string, unknown>
  /** false pauses (no fires), true resumes from the next cron time after now. */
  is_active?: boolean
}

export async function getSchedule(db: Db, orgSlug: string, scheduleId: string): Promise<ScheduleRow | undefined> {
  return db.kysely.selectFrom('org_schedules').selectAll().where('org_slug', '=', orgSlug).where('schedule_id', '=', scheduleId).limit(1).executeTakeFirst()
}

/**
 * Edits, pauses or resumes one of the org's schedules. The result is checked like a new schedule
 * (cron, zone, parameters, plan interval); next_run_at moves to the first cron time after now when the
 * cron or zone changes or the schedule resumes. Compare-and-set on updated_at: a concurrent edit wins
 * or loses whole, never mixes.
 */
export async function updateSchedule(
  db: Db,
  catalog: TemplateCatalog,
  orgSlug: string,
  scheduleId: string,
  patch: SchedulePatch,
  now: number,
  rules?: ScheduleRules,
): Promise<ScheduleRow> {
  const cur = await getSchedule(db, orgSlug, scheduleId)
  if (!cur) throw new ScheduleError('NOT_FOUND')
  const cron = patch.cron?.trim() ?? cur.cron
  const timezone = patch.timezone ?? cur.timezone
  const active = patch.is_active ?? Number(cur.is_active) === 1
  const timingChanged = cron !== cur.cron || timezone !== cur.timezone
  // Plan interval: checked whenever the timing changes or a paused schedule resumes.
  checkCronAndZone(cron, timezone, timingChanged || (active && Number(cur.is_active) !== 1) ? rules : undefined, now)
  let parameters = cur.parameters
  if (patch.parameters !== undefined) {
    const template = catalog.getById(cur.pipeline_id)
    if (!template) throw new ScheduleError('TEMPLATE_NOT_FOUND', ['pipeline_id'])
    const checked = catalog.validateParameters(template, patch.parameters, now)
    if (!checked.ok) throw new ScheduleError('INVALID_PARAMETERS', checked.fields, checked.errors)
    parameters = JSON.stringify(patch.parameters)
  }
  const resumed = active && Number(cur.is_active) !== 1
  const next = timingChanged || resumed ? nextCronTime(cron, timezone, now) : cur.next_run_at
  const updatedAt = Math.max(now, Number(cur.updated_at) + 1)
  const set = {
    name: patch.name === undefined ? cur.name : patch.name,
    cron,
    timezone,
    parameters,
    is_active: active ? 1 : 0,
    next_run_at: next,
    updated_at: updatedAt,
  }
  const r = await db.kysely
    .updateTable('org_schedules')
    .set(set)
    .where('org_slug', '=', orgSlug)
    .where('schedule_id', '=', scheduleId)
    .where('updated_at', '=', cur.updated_at)
    .returningAll()
    .executeTakeFirst()
  if (!r) throw new ScheduleError('CONFLICT') // lost a race with another edit or a fire
  return r
}

/** Deletes one of the org's schedules; another org's id is simply not found. */
export async function deleteSchedule(db: Db, orgSlug: string, scheduleId: string): Promise<boolean> {
  const r = await db.kysely
    .deleteFrom('org_schedules')
    .where('org_slug', '=', orgSlug)
    .where('schedule_id', '=', scheduleId)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

export interface SchedulerOptions {
  tickMs: number
  /** Due schedules read per query; a tick keeps reading until none is due (up to maxBatchesPerTick). */
  batchSize?: number
  maxBatchesPerTick?: number
  /** Fires committed per transaction (one org's schedules never span two concurrent transactions). */
  firesPerTransaction?: number
  /** PostgreSQL: transactions in flight at once (SQLite has one writer: always 1). */
  concurrency?: number
  maxAttempts?: number
  /** Called after a run is admitted (the engine wakes its workers). */
  onAdmitted?: () => void
}

/** What a schedule fires with, computed outside the transaction. */
interface Prepared {
  next: number | null
  template: ReturnType<TemplateCatalog['getById']>
  problem: string | null
  refusal: string | null
  parameters: Record<string, string | number>
}

type FireResult = 'admitted' | 'deduplicated' | 'refused' | 'error' | 'skipped'

export class Scheduler {
  private readonly task: PeriodicTask
  private lockClient: pg.Client | null = null

  constructor(
    private readonly db: Db,
    private readonly catalog: TemplateCatalog,
    private readonly clock: Clock,
    private readonly logger: EngineLogger,
    private readonly deps: Pick<EngineDeps, 'integrationReady'>,
    private readonly opts: SchedulerOptions,
    private readonly metrics?: EngineMetrics,
  ) {
    this.task = new PeriodicTask(opts.tickMs, () => this.tick(), (err) => this.logger.error({ err_name: (err as Error)?.name }, 'scheduler tick failed'))
  }

  get isLeader(): boolean {
    return this.db.dialect === 'sqlite' || this.lockClient !== null
  }

  start(): void {
    this.task.start({ keepAlive: true })
  }

  async stop(): Promise<void> {
    await this.task.stop()
    await this.releaseLeadership()
  }

  /** PostgreSQL: hold a session advisory lock on a dedicated connection; whoever holds it schedules. */
  private async ensureLeadership(): Promise<boolean> {
    if (this.db.dialect !== 'postgres') return true
    if (this.lockClient) return true
    if (!this.db.pgUrl) return false
    // keepAlive: a silently dead peer is noticed (and leadership dropped) instead of trusted forever.
    const client = new pg.Client({ connectionString: this.db.pgUrl, connectionTimeoutMillis: 10_000, keepAlive: true })
    // Listen before connecting: pg emits 'error' when the connection drops (even mid-query), and an
    // unlistened 'error' would crash the process. Losing the connection loses the lock: step down.
    client.on('error', () => {
      if (this.lockClient === client) this.lockClient = null
      client.end().catch(() => undefined)
    })
    try {
      await client.connect()
      const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [SCHEDULER_LOCK_ID])
      if (!r.rows[0]?.ok) {
        await client.end()
        return false
      }
    } catch {
      await client.end().catch(() => undefined)
      return false
    }
    this.lockClient = client
    this.logger.info({}, 'scheduler leadership acquired')
    return true
  }

  private async releaseLeadership(): Promise<void> {
    const c = this.lockClient
    this.lockClient = null
    if (c) await c.end().catch(() => undefined)
  }

  /**
   * One pass: fires every due schedule, oldest first. Due schedules are read in batches until none is
   * left; each batch is split into chunks of whole orgs, each chunk one transaction (PostgreSQL runs
   * several at once: disjoint orgs, so they never wait on each other's slot locks). A chunk that fails
   * is retried one schedule per transaction, so one bad schedule cannot hold back the others.
   */
  async tick(): Promise<Record<string, FireResult>> {
    const out: Record<string, FireResult> = {}
    if (!(await this.ensureLeadership())) return out
    const batchSize = this.opts.batchSize ?? 500
    const tried = new Set<string>()
    for (let b = 0; b < (this.opts.maxBatchesPerTick ?? 100); b++) {
      const now = this.clock.now()
      const due = (
        await this.db.kysely
          .selectFrom('org_schedules')
          .selectAll()
          .where('is_active', '=', 1)
          .where('next_run_at', '<=', now)
          .orderBy('next_run_at')
          .limit(batchSize)
          .execute()
      ).filter((r) => !tried.has(r.schedule_id))
      if (due.length === 0) break
      for (const r of due) tried.add(r.schedule_id)
      await this.fireBatch(due, now, out)
      if (due.length < batchSize) break
    }
    return out
  }

  private async fireBatch(due: ScheduleRow[], now: number, out: Record<string, FireResult>): Promise<void> {
    const ready = new Map<string, Promise<boolean | string>>() // integration checks, once per org and provider per batch
    const nextTimes = new Map<string, number | null>() // many schedules share an expression: compute it once per batch
    const prepared = new Map<string, Prepared>()
    for (const s of due) {
      try {
        prepared.set(s.schedule_id, await this.prepare(s, now, ready, nextTimes))
      } catch (err) {
        // e.g. the integration check could not read the database: left due, tried again next tick.
        out[s.schedule_id] = 'error'
        this.metrics?.schedulerFires.inc({ result: 'error' })
        this.logger.error({ schedule_id: s.schedule_id, org: s.org_slug, err_name: (err as Error)?.name }, 'schedule fire failed')
      }
    }
    const chunks = chunkByOrg(due.filter((s) => prepared.has(s.schedule_id)), this.opts.firesPerTransaction ?? 100)
    const width = this.db.dialect === 'postgres' ? Math.max(1, this.opts.concurrency ?? 8) : 1
    let admitted = false
    const runChunk = async (chunk: ScheduleRow[]) => {
      let results: FireResult[]
      try {
        results = await this.db.kysely.transaction().execute((trx) => this.fireChunk(trx, chunk, prepared, this.clock.now()))
      } catch {
        results = []
        for (const s of chunk) {
          try {
            results.push(...(await this.db.kysely.transaction().execute((trx) => this.fireChunk(trx, [s], prepared, this.clock.now()))))
          } catch (err) {
            results.push('error')
            this.logger.error({ schedule_id: s.schedule_id, org: s.org_slug, err_name: (err as Error)?.name }, 'schedule fire failed')
          }
        }
      }
      chunk.forEach((s, i) => {
        const result = results[i]!
        out[s.schedule_id] = result
        if (result !== 'skipped') this.metrics?.schedulerFires.inc({ result })
        if (result === 'admitted' || result === 'deduplicated' || result === 'refused') this.metrics?.admissions.inc({ result })
        if (result === 'admitted') admitted = true
      })
    }
    let next = 0
    await Promise.all(
      Array.from({ length: Math.min(width, chunks.length) }, async () => {
        while (next < chunks.length) await runChunk(chunks[next++]!)
      }),
    )
    if (admitted) this.opts.onAdmitted?.()
  }

  private async prepare(s: ScheduleRow, now: number, ready: Map<string, Promise<boolean | string>>, nextTimes: Map<string, number | null>): Promise<Prepared> {
    const cronKey = `${s.cron}\n${s.timezone}`
    let next = nextTimes.get(cronKey)
    if (next === undefined) {
      try {
        next = nextCronTime(s.cron, s.timezone, now)
      } catch {
        next = null // the expression or zone stopped being valid: deactivate rather than spin
      }
      nextTimes.set(cronKey, next)
    }
    const template = this.catalog.getById(s.pipeline_id)
    let problem: string | null = next === null ? 'INVALID_CRON' : template ? null : 'TEMPLATE_NOT_FOUND'
    let parameters: Record<string, string | number> = {}
    if (!problem && template) {
      let raw: unknown = null
      try {
        raw = JSON.parse(s.parameters)
      } catch {
        raw = null
      }
      const checked = raw && typeof raw === 'object' ? this.catalog.validateParameters(template, raw as Record<string, unknown>, now) : null
      if (checked?.ok) parameters = checked.parameters
      else problem = 'INVALID_PARAMETERS'
    }
    let refusal: string | null = null
    const integrationReady = this.deps.integrationReady
    if (!problem && template?.integration && integrationReady) {
      const key = `${s.org_slug}\n${template.integration}`
      let check = ready.get(key)
      if (!check) {
        check = integrationReady(s.org_slug, template.integration)
        ready.set(key, check)
      }
      const verdict = await check
      if (verdict !== true) refusal = typeof verdict === 'string' ? verdict : 'INTEGRATION_NOT_CONFIGURED'
    }
    return { next, template, problem, refusal, parameters }
  }

  /**
   * Fires a chunk of schedules in the caller's transaction with a few set-based statements, whatever
   * the chunk's size: one compare-and-set on next_run_at for the whole chunk (a schedule another
   * scheduler or an edit moved meanwhile is skipped; PostgreSQL skips rows locked by an edit), one
   * admission call for every claimed fire (the org's slot lock and counters, in order, so a chunk
   * never over-admits), and one update recording each fire's status and refusal code.
   */
  private async fireChunk(trx: Transaction<Database>, chunk: ScheduleRow[], prepared: Map<string, Prepared>, now: number): Promise<FireResult[]> {
    const claims = chunk.map((s) => {
      const next = prepared.get(s.schedule_id)!.next
      return { schedule_id: s.schedule_id, prev: Number(s.next_run_at), next: next ?? Number(s.next_run_at), active: next === null ? 0 : 1 }
    })
    const claimed = await this.claimChunk(trx, claims, now)
    const toAdmit: { s: ScheduleRow; input: AdmitInput }[] = []
    for (const s of chunk) {
      const p = prepared.get(s.schedule_id)!
      if (!claimed.has(s.schedule_id) || p.problem || p.refusal || !p.template) continue
      toAdmit.push({
        s,
        input: {
          org_slug: s.org_slug,
          pipeline_id: p.template.id,
          parameters: p.parameters,
          dedup_key: computeDedupKey(p.template.id, p.parameters),
          trigger_type: 'schedule',
          triggered_by: `schedule:${s.schedule_id}`,
          schedule_id: s.schedule_id,
          max_attempts: this.opts.maxAttempts ?? 2,
          now,
        },
      })
    }
    const decisions = await admitBatchInTransaction(trx, this.db.dialect, toAdmit.map((x) => x.input))
    const decided = new Map<string, AdmitResult>(toAdmit.map((x, i) => [x.s.schedule_id, decisions[i]!]))
    const statuses: { schedule_id: string; status: string; code: string | null; run_id: string | null }[] = []
    const results = chunk.map((s): FireResult => {
      if (!claimed.has(s.schedule_id)) return 'skipped'
      const p = prepared.get(s.schedule_id)!
      const admitted = decided.get(s.schedule_id) ?? null
      const status = p.problem ? 'ERROR' : p.refusal || !admitted || admitted.kind === 'refused' ? 'REFUSED' : admitted.kind === 'admitted' ? 'ADMITTED' : 'DEDUPLICATED'
      const code = p.problem ?? p.refusal ?? (admitted?.kind === 'refused' ? admitted.code : null)
      statuses.push({ schedule_id: s.schedule_id, status, code, run_id: admitted && admitted.kind !== 'refused' ? admitted.run.run_id : null })
      if (p.problem) return 'error'
      if (p.refusal || !admitted) return 'refused'
      return admitted.kind
    })
    await this.recordChunk(trx, statuses)
    return results
  }

  /** The compare-and-set of a chunk in one statement; returns the schedules this fire claimed. */
  private async claimChunk(trx: Transaction<Database>, claims: { schedule_id: string; prev: number; next: number; active: number }[], now: number): Promise<Set<string>> {
    if (claims.length === 0) return new Set()
    const json = this.db.dialect === 'postgres' ? JSON.stringify(claims) : ''
    const r = this.db.dialect === 'postgres'
      ? await sql<{ schedule_id: string }>`
          UPDATE org_schedules AS s
          SET next_run_at = v.next, is_active = v.active, last_run_at = ${now}::bigint, updated_at = ${now}::bigint
          FROM jsonb_to_recordset(${json}::jsonb) AS v(schedule_id text, prev bigint, next bigint, active integer)
          WHERE s.schedule_id = v.schedule_id AND s.next_run_at = v.prev AND s.is_active = 1
            AND s.schedule_id IN (SELECT l.schedule_id FROM org_schedules AS l
                                  WHERE l.schedule_id IN (SELECT x.schedule_id FROM jsonb_to_recordset(${json}::jsonb) AS x(schedule_id text))
                                  FOR UPDATE SKIP LOCKED)
          RETURNING s.schedule_id`.execute(trx)
      : { rows: await sqliteEach<{ schedule_id: string }>(trx, SQLITE_CLAIM, claims.map((c) => [c.next, c.active, now, now, c.schedule_id, c.prev])) }
    return new Set(r.rows.map((x) => x.schedule_id))
  }

  /** Each fire's status, refusal code and run in one statement. */
  private async recordChunk(trx: Transaction<Database>, rows: { schedule_id: string; status: string; code: string | null; run_id: string | null }[]): Promise<void> {
    if (rows.length === 0) return
    if (this.db.dialect === 'postgres') {
      const json = JSON.stringify(rows)
      await sql`
        UPDATE org_schedules AS s SET last_status = v.status, last_error_code = v.code, last_run_id = v.run_id
        FROM jsonb_to_recordset(${json}::jsonb) AS v(schedule_id text, status text, code text, run_id text)
        WHERE s.schedule_id = v.schedule_id`.execute(trx)
      return
    }
    await sqliteEach(trx, SQLITE_RECORD, rows.map((r) => [r.status, r.code, r.run_id, r.schedule_id]))
  }
}

// SQLite runs in-process with one writer: one fixed statement per schedule, prepared once by the
// connection's statement cache, costs microseconds (a join against json_each would scan the table per row).
const SQLITE_CLAIM = `UPDATE org_schedules SET next_run_at = ?, is_active = ?, last_run_at = ?, updated_at = ?
  WHERE schedule_id = ? AND next_run_at = ? AND is_active = 1 RETURNING schedule_id`
const SQLITE_RECORD = `UPDATE org_schedules SET last_status = ?, last_error_code = ?, last_run_id = ? WHERE schedule_id = ?`

async function sqliteEach<R>(trx: Transaction<Database>, text: string, params: unknown[][]): Promise<R[]> {
  const out: R[] = []
  for (const p of params) out.push(...(await trx.executeQuery<R>(CompiledQuery.raw(text, p))).rows)
  return out
}

/** Splits a batch into chunks of at most `size` fires; an org's schedules stay in one chunk (orgs are disjoint across chunks). */
export function chunkByOrg(due: ScheduleRow[], size: number): ScheduleRow[][] {
  const byOrg = new Map<string, ScheduleRow[]>()
  for (const s of due) {
    const list = byOrg.get(s.org_slug)
    if (list) list.push(s)
    else byOrg.set(s.org_slug, [s])
  }
  const chunks: ScheduleRow[][] = []
  let current: ScheduleRow[] = []
  // Orgs in the order of their oldest due schedule (the batch is sorted by next_run_at). Chunks share no
  // org, so concurrent chunks never wait on each other's slot locks.
  for (const org of byOrg.keys()) {
    const list = byOrg.get(org)!
    if (current.length > 0 && current.length + list.length > size) {
      chunks.push(current)
      current = []
    }
    current.push(...list)
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}
