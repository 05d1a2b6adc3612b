// Reads an org's current usage against its limits (GET /organizations/{org}/quota).
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Db } from '../db/database.js'
import { prepared } from '../db/prepared.js'
import { MAX_COALESCED_KEYS, ReadCoalescer } from '../db/coalesce.js'
import { utcCalendar } from '../clock.js'

const columns = [
  's.org_slug',
  's.plan_name',
  's.daily_limit',
  's.monthly_limit',
  's.concurrent_limit',
  's.requests_per_minute',
  's.triggers_per_minute',
  'd.runs_started as day_runs',
  'd.runs_succeeded as day_succeeded',
  'd.runs_failed as day_failed',
  'm.runs_started as month_runs',
  'r.running',
] as const

const joined = (db: Kysely<Database>, day: string, month: string) =>
  db
    .selectFrom('org_subscriptions as s')
    .leftJoin('org_usage_quotas as d', (j) => j.onRef('d.org_slug', '=', 's.org_slug').on('d.period', '=', 'day').on('d.period_start', '=', day))
    .leftJoin('org_usage_quotas as m', (j) => j.onRef('m.org_slug', '=', 's.org_slug').on('m.period', '=', 'month').on('m.period_start', '=', month))
    .leftJoin('org_run_slots as r', 'r.org_slug', 's.org_slug')
    .select(columns)

const usageQuery = prepared(['day', 'month', 'org'] as const, (db, p) => joined(db, p.day, p.month).where('s.org_slug', '=', p.org).limit(1))

/** The same join for many orgs at once (PostgreSQL: `= any($1)` binds the slugs as one text[] value). */
const usageBatchQuery = prepared(['day', 'month', 'orgs'] as const, (db, p) =>
  joined(db, p.day, p.month)
    .where(sql<boolean>`${sql.ref('s.org_slug')} = any(${p.orgs})`)
    .limit(MAX_COALESCED_KEYS),
)

/** SQLite: the slugs bound as one JSON array value, unpacked by json_each. */
const usageBatchQuerySqlite = prepared(['day', 'month', 'orgs'] as const, (db, p) =>
  joined(db, p.day, p.month)
    .where(sql<boolean>`${sql.ref('s.org_slug')} in (select value from json_each(${p.orgs}))`)
    .limit(MAX_COALESCED_KEYS),
)

type UsageRow = Awaited<ReturnType<typeof usageQuery>>[number]
export type Usage = ReturnType<typeof usageView>

const usage = (used: number, limit: number, resetsAt: string) => ({ used, limit, remaining: Math.max(0, limit - used), resets_at: resetsAt })

function usageView(row: UsageRow, now: number) {
  const cal = utcCalendar(now)
  const running = row.running ?? 0
  return {
    org_slug: row.org_slug,
    plan_name: row.plan_name,
    daily: usage(row.day_runs ?? 0, row.daily_limit, cal.nextMidnightIso),
    monthly: usage(row.month_runs ?? 0, row.monthly_limit, cal.nextMonthStartIso),
    concurrent: { running, limit: row.concurrent_limit, remaining: Math.max(0, row.concurrent_limit - running) },
    succeeded_today: row.day_succeeded ?? 0,
    failed_today: row.day_failed ?? 0,
    requests_per_minute: row.requests_per_minute,
    triggers_per_minute: row.triggers_per_minute,
  }
}

/** One query (compiled once): the subscription's limits joined with today's, this month's and the running counters. */
export async function readUsage(db: Kysely<Database>, orgSlug: string, now: number): Promise<Usage | null> {
  const cal = utcCalendar(now)
  const [row] = await usageQuery(db, { day: cal.day, month: cal.month, org: orgSlug })
  return row ? usageView(row, now) : null
}

/** Many orgs in one query; an org without a subscription is absent from the map. */
export async function readUsages(db: Pick<Db, 'kysely' | 'dialect'>, orgSlugs: string[], now: number): Promise<Map<string, Usage>> {
  const cal = utcCalendar(now)
  const rows =
    db.dialect === 'postgres'
      ? await usageBatchQuery(db.kysely, { day: cal.day, month: cal.month, orgs: orgSlugs })
      : await usageBatchQuerySqlite(db.kysely, { day: cal.day, month: cal.month, orgs: JSON.stringify(orgSlugs) })
  return new Map(rows.map((row) => [row.org_slug, usageView(row, now)]))
}

/**
 * GET quota's reader. Concurrent reads (any orgs) are coalesced into one statement that starts after
 * each of them arrived (core/db/coalesce.ts), so the numbers stay fresh while a hot org costs one
 * statement per batch instead of one per request; the time (today, this month, resets) is read when
 * the statement is sent. On PostgreSQL a batch is what arrives while the previous statement's round
 * trip runs; on SQLite, which answers synchronously, what arrives within one turn of the event loop
 * (each SQLite read also takes and drops the WAL read lock, two system calls, whatever it reads).
 * Readers of one org in one batch share one answer object: it must not be mutated.
 */
export function usageReader(db: Pick<Db, 'kysely' | 'dialect'>, now: () => number): (orgSlug: string) => Promise<Usage | null> {
  const coalescer = new ReadCoalescer<string, Usage>((orgs) => readUsages(db, orgs, now()), MAX_COALESCED_KEYS, 1, db.dialect !== 'postgres')
  return (orgSlug) => coalescer.read(orgSlug)
}
