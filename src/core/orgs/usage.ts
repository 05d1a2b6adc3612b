// Reads an org's current usage against its limits (GET /organizations/{org}/quota).
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { prepared } from '../db/prepared.js'
import { nextMonthStart, nextUtcMidnight, utcDate, utcMonth } from '../clock.js'


const usageQuery = prepared(['day', 'month', 'org'] as const, (db, p) =>
  db
    .selectFrom('org_subscriptions as s')
    .leftJoin('org_usage_quotas as d', (j) => j.onRef('d.org_slug', '=', 's.org_slug').on('d.period', '=', 'day').on('d.period_start', '=', p.day))
    .leftJoin('org_usage_quotas as m', (j) => j.onRef('m.org_slug', '=', 's.org_slug').on('m.period', '=', 'month').on('m.period_start', '=', p.month))
    .leftJoin('org_run_slots as r', 'r.org_slug', 's.org_slug')
    .select([
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
    ])
    .where('s.org_slug', '=', p.org)
    .limit(1),
)

/** One query (compiled once): the subscription's limits joined with today's, this month's and the running counters. */
export async function readUsage(db: Kysely<Database>, orgSlug: string, now: number) {
  const [row] = await usageQuery(db, { day: utcDate(now), month: utcMonth(now), org: orgSlug })
  if (!row) return null
  const running = row.running ?? 0
  const usage = (used: number, limit: number, resets: number) => ({
    used,
    limit,
    remaining: Math.max(0, limit - used),
    resets_at: new Date(resets).toISOString(),
  })
  return {
    org_slug: orgSlug,
    plan_name: row.plan_name,
    daily: usage(row.day_runs ?? 0, row.daily_limit, nextUtcMidnight(now)),
    monthly: usage(row.month_runs ?? 0, row.monthly_limit, nextMonthStart(now)),
    concurrent: { running, limit: row.concurrent_limit, remaining: Math.max(0, row.concurrent_limit - running) },
    succeeded_today: row.day_succeeded ?? 0,
    failed_today: row.day_failed ?? 0,
    requests_per_minute: row.requests_per_minute,
    triggers_per_minute: row.triggers_per_minute,
  }
}
