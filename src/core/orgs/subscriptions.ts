// Subscription reads and changes. Limits always come from the subscription row (seeded from the
// plan, overridable within bounds), never from counters.
import type { Kysely, Transaction } from 'kysely'
import { parseInstant } from '../clock.js'
import type { Database, SubscriptionStatus } from '../db/schema.js'
import { defaultPlans, type PlanCatalog, type PlanName } from './plans.js'

export interface SubscriptionChange {
  plan_name?: PlanName
  status?: SubscriptionStatus
  daily_limit?: number
  monthly_limit?: number
  concurrent_limit?: number
  requests_per_minute?: number
  triggers_per_minute?: number
  trial_end_date?: string | null
}

export async function getSubscription(db: Kysely<Database>, orgSlug: string) {
  return db.selectFrom('org_subscriptions').selectAll().where('org_slug', '=', orgSlug).limit(1).executeTakeFirst()
}

export type SubscriptionRow = Database['org_subscriptions']
export interface SubscriptionUpdate {
  before: SubscriptionRow
  after: SubscriptionRow
}

/**
 * Applies a change; a new plan resets limits to that plan's defaults unless overridden in the same call.
 * `finish` runs inside the transaction (audit, rendering the response): if it throws, nothing commits.
 */
export async function updateSubscription<T>(
  db: Kysely<Database>,
  orgSlug: string,
  change: SubscriptionChange,
  now: number,
  finish: (trx: Transaction<Database>, result: SubscriptionUpdate) => Promise<T> | T,
  plans: PlanCatalog = defaultPlans(),
): Promise<T | null> {
  let trialEnd: number | null | undefined
  if (change.trial_end_date === undefined || change.trial_end_date === null) trialEnd = change.trial_end_date
  else {
    trialEnd = parseInstant(change.trial_end_date)
    if (trialEnd === null) throw new RangeError('trial_end_date is not a representable instant')
  }
  return db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom('org_subscriptions').selectAll().where('org_slug', '=', orgSlug).limit(1).executeTakeFirst()
    if (!current) return null
    const base = change.plan_name ? plans[change.plan_name] : current
    const next = {
      plan_name: change.plan_name ?? current.plan_name,
      status: change.status ?? current.status,
      daily_limit: change.daily_limit ?? base.daily_limit,
      monthly_limit: change.monthly_limit ?? base.monthly_limit,
      concurrent_limit: change.concurrent_limit ?? base.concurrent_limit,
      requests_per_minute: change.requests_per_minute ?? base.requests_per_minute,
      triggers_per_minute: change.triggers_per_minute ?? base.triggers_per_minute,
      trial_end_at: trialEnd === undefined ? current.trial_end_at : trialEnd,
      updated_at: now,
    }
    await trx.updateTable('org_subscriptions').set(next).where('org_slug', '=', orgSlug).execute()
    return finish(trx, { before: current, after: { ...current, ...next } })
  })
}
