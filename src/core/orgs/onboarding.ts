// Onboarding, dry-run and offboarding of organizations. Onboarding is all or nothing: the rows
// (profile, subscription, key, counters, audit, idempotency record) commit in one transaction whose
// primary key on org_profiles decides races; the dataset is created next and a failure there
// removes the rows again. Every onboarding is a new *incarnation* with its own dataset id, so nothing
// of an earlier org with the same slug (a late writer, an idempotency record) can reach it.
// Offboarding is a sequence of retryable steps (see offboardOrg).
import { createHash } from 'node:crypto'
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Db } from '../db/database.js'
import type { Database } from '../db/schema.js'
import type { KmsProvider } from '../security/kms-encryption.js'
import { newId } from '../ids.js'
import { defaultPlans, type PlanCatalog, type PlanName } from './plans.js'
import { prepareApiKey } from './api-key-store.js'
import { recordAudit } from './audit.js'
import { newDatasetId } from '../datasets/identifiers.js'
import type { DatasetBinding } from '../datasets/types.js'

export interface OrgDeps {
  db: Db
  kms: KmsProvider
  now(): number
  /** Creates the dataset of a new incarnation under `datasetId`; returns it. */
  createDataset(orgSlug: string, datasetId: string): Promise<string>
  /** Drops one incarnation's dataset (idempotent); returns whether it existed and how many catalogue tables it had. */
  dropDataset(ds: DatasetBinding): Promise<{ dropped: boolean; tables: number }>
  /** Shreds every credential of the org inside the offboarding transaction; returns the count. */
  destroyCredentials(trx: Transaction<Database>, orgSlug: string): Promise<number>
  /** Aborts the incarnation's in-flight runs on every process (event bus); throws if it cannot be sent. */
  stopOrgRuns(ds: DatasetBinding): Promise<void>
  /** Evicts the org's cached keys on every instance; throws if it cannot be sent. */
  evictOrg(orgSlug: string): Promise<void>
  /** The plan catalogue (default: the shipped configs/plans.yaml). */
  plans?: PlanCatalog
}

export interface OnboardInput {
  org_slug: string
  company_name: string
  admin_email: string
  subscription_plan: Exclude<PlanName, 'ENTERPRISE'>
  trial_days?: number
}

export interface OnboardResult {
  org_slug: string
  api_key: string
  api_key_fingerprint: string
  subscription_plan: string
  subscription_status: 'ACTIVE' | 'TRIAL'
  trial_end_date: string | null
  dataset_id: string
  created_at: string
}

export type OnboardOutcome =
  | { kind: 'created'; result: OnboardResult }
  | { kind: 'replayed'; status: number; body: OnboardResult }
  | { kind: 'exists' }
  | { kind: 'idempotency_conflict' }

const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000

export function requestHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex')
}

async function findReplay(db: Kysely<Database>, key: string, hash: string, now: number): Promise<OnboardOutcome | null> {
  const row = await db
    .selectFrom('org_idempotency_keys')
    .select(['request_hash', 'status_code', 'response'])
    .where('scope', '=', 'onboard')
    .where('idempotency_key', '=', key)
    .where('expires_at', '>', now)
    .limit(1)
    .executeTakeFirst()
  if (!row) return null
  if (row.request_hash !== hash) return { kind: 'idempotency_conflict' }
  return { kind: 'replayed', status: row.status_code, body: JSON.parse(row.response) as OnboardResult }
}

export const REDACTED_KEY = '[REDACTED: shown once at creation]'

export async function onboardOrg(deps: OrgDeps, input: OnboardInput, meta: { idempotencyKey?: string; requestId: string }): Promise<OnboardOutcome> {
  const db = deps.db.kysely
  const now = deps.now()
  const hash = requestHash(input)
  if (meta.idempotencyKey) {
    const replay = await findReplay(db, meta.idempotencyKey, hash, now)
    if (replay) return replay
  }
  const exists = await db.selectFrom('org_profiles').select('org_slug').where('org_slug', '=', input.org_slug).limit(1).executeTakeFirst()
  if (exists) return { kind: 'exists' }

  const plan = (deps.plans ?? defaultPlans())[input.subscription_plan]
  const trialEnd = input.trial_days ? now + input.trial_days * 86_400_000 : null
  const status = trialEnd ? 'TRIAL' : 'ACTIVE'
  const issued = await prepareApiKey(deps.kms, input.org_slug, now)
  const datasetId = newDatasetId(input.org_slug)
  const result: OnboardResult = {
    org_slug: input.org_slug,
    api_key: issued.api_key,
    api_key_fingerprint: issued.row.fingerprint,
    subscription_plan: plan.plan_name,
    subscription_status: status,
    trial_end_date: trialEnd ? new Date(trialEnd).toISOString() : null,
    dataset_id: datasetId,
    created_at: new Date(now).toISOString(),
  }

  const inserted = await db.transaction().execute(async (trx) => {
    const profile = await trx
      .insertInto('org_profiles')
      .values({
        org_slug: input.org_slug,
        company_name: input.company_name,
        admin_email: input.admin_email,
        status: 'ACTIVE',
        dataset_id: datasetId,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('org_slug').doNothing())
      .executeTakeFirst()
    if (Number(profile.numInsertedOrUpdatedRows ?? 0n) === 0) return false
    await trx
      .insertInto('org_subscriptions')
      .values({
        org_slug: input.org_slug,
        subscription_id: newId('sub', now),
        plan_name: plan.plan_name,
        status,
        daily_limit: plan.daily_limit,
        monthly_limit: plan.monthly_limit,
        concurrent_limit: plan.concurrent_limit,
        requests_per_minute: plan.requests_per_minute,
        triggers_per_minute: plan.triggers_per_minute,
        trial_end_at: trialEnd,
        created_at: now,
        updated_at: now,
      })
      .execute()
    await trx.insertInto('org_api_keys').values(issued.row).execute()
    await trx.insertInto('org_run_slots').values({ org_slug: input.org_slug, running: 0, updated_at: now }).execute()
    if (meta.idempotencyKey) {
      const stored = await trx
        .insertInto('org_idempotency_keys')
        .values({
          scope: 'onboard',
          idempotency_key: meta.idempotencyKey,
          request_hash: hash,
          status_code: 201,
          response: JSON.stringify({ ...result, api_key: REDACTED_KEY }),
          created_at: now,
          expires_at: now + IDEMPOTENCY_TTL_MS,
          org_slug: input.org_slug,
        })
        .onConflict((oc) => oc.columns(['scope', 'idempotency_key']).doNothing())
        .executeTakeFirst()
      if (Number(stored.numInsertedOrUpdatedRows ?? 0n) === 0) throw new IdempotencyRace()
    }
    await recordAudit(
      trx,
      {
        org_slug: input.org_slug,
        actor: 'root',
        action: 'org.onboarded',
        resource_type: 'organization',
        resource_id: input.org_slug,
        details: { plan: plan.plan_name, status, key_id: issued.key_id },
        request_id: meta.requestId,
      },
      now,
    )
    return true
  }).catch(async (err) => {
    if (err instanceof IdempotencyRace) return 'idempotency' as const
    throw err
  })

  if (inserted === 'idempotency' || inserted === false) {
    if (meta.idempotencyKey) {
      const replay = await findReplay(db, meta.idempotencyKey, hash, deps.now())
      if (replay) return replay
    }
    return { kind: 'exists' }
  }

  try {
    await deps.createDataset(input.org_slug, datasetId)
  } catch (err) {
    await deleteOrgRows(db, input.org_slug)
    await db.deleteFrom('org_idempotency_keys').where('scope', '=', 'onboard').where('request_hash', '=', hash).execute()
    throw err
  }
  return { kind: 'created', result }
}

class IdempotencyRace extends Error {}

export interface DryRunCheck {
  name: string
  passed: boolean
  message: string
}

export async function dryRunOnboarding(deps: OrgDeps, input: OnboardInput): Promise<{ ready_for_onboarding: boolean; checks: DryRunCheck[] }> {
  const checks: DryRunCheck[] = []
  checks.push({ name: 'org_slug_format', passed: true, message: 'Organization slug is valid' })
  checks.push({ name: 'admin_email_format', passed: true, message: 'Admin email is valid' })
  checks.push({ name: 'subscription_plan', passed: (deps.plans ?? defaultPlans())[input.subscription_plan]?.onboarding === true, message: 'Plan is available for onboarding' })
  let dbOk = true
  let exists = false
  try {
    const row = await deps.db.kysely.selectFrom('org_profiles').select('org_slug').where('org_slug', '=', input.org_slug).limit(1).executeTakeFirst()
    exists = row !== undefined
  } catch {
    dbOk = false
  }
  checks.push({ name: 'database_reachable', passed: dbOk, message: dbOk ? 'Database is reachable' : 'Database is not reachable' })
  checks.push({
    name: 'org_slug_available',
    passed: dbOk && !exists,
    message: exists ? 'An organization with this slug already exists' : 'Organization slug is available',
  })
  return { ready_for_onboarding: checks.every((c) => c.passed), checks }
}

/** Rows deleted at offboarding, children first; org_profiles goes last, in the final step. */
const ORG_TABLES = [
  'org_step_logs',
  'org_pipeline_runs',
  'org_schedules',
  'org_usage_quotas',
  'org_run_slots',
  'org_dataset_tables',
  'org_integration_credentials',
  'org_egress_allowlist',
  'org_webhook_deliveries',
  'org_run_webhooks',
  'org_api_keys',
  'org_subscriptions',
] as const

async function deleteOrgRows(db: Kysely<Database>, orgSlug: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const table of ORG_TABLES) {
    const r = await db.deleteFrom(table).where('org_slug', '=', orgSlug).executeTakeFirst()
    counts[table] = Number(r.numDeletedRows)
  }
  counts.org_profiles = Number((await db.deleteFrom('org_profiles').where('org_slug', '=', orgSlug).executeTakeFirst()).numDeletedRows)
  return counts
}

/** Idempotency records of the org: its own (org_slug) and, for records from before 003, the trigger scope by slug. */
async function deleteIdempotencyRecords(db: Kysely<Database>, ds: DatasetBinding): Promise<number> {
  const r = await db
    .deleteFrom('org_idempotency_keys')
    .where((eb) => eb.or([eb('org_slug', '=', ds.orgSlug), eb('scope', 'in', [triggerScope(ds.datasetId), `trigger:${ds.orgSlug}`])]))
    .executeTakeFirst()
  return Number(r.numDeletedRows)
}

/** The Idempotency-Key scope of pipeline triggers: one org incarnation. */
export function triggerScope(datasetId: string): string {
  return `trigger:${datasetId}`
}

export interface DeletionRecord {
  org_slug: string
  deletion_id: string
  deleted_at: string
  api_keys_revoked: number
  runs_cancelled: number
  credentials_destroyed: number
  dataset_dropped: boolean
  /** Tables the dataset's catalogue listed when it was dropped (deleted with their contents). */
  dataset_tables_deleted: number
  rows_deleted: Record<string, number>
}

/**
 * Offboarding, in steps ordered so that a failure at any of them leaves a state that is safe (the org
 * can no longer act) and that a repeated DELETE completes, never an org half gone and unreachable:
 *  1. one transaction: the profile becomes OFFBOARDING (a tombstone that keeps its dataset id and the
 *     slug taken), keys revoked, runs cancelled, credentials shredded, idempotency records and every
 *     other row of the org deleted (their deletion is what fences a write of a run still in flight);
 *  2. in-flight runs aborted and cached keys evicted on every process (event bus);
 *  3. the dataset dropped (idempotent);
 *  4. one transaction: stragglers (rows a stopping run wrote after step 1) and the tombstone deleted,
 *     the deletion record audited.
 * The record counts what this call did; a retry after a failed step reports what was left to do.
 */
export async function offboardOrg(deps: OrgDeps, orgSlug: string, meta: { requestId: string }): Promise<DeletionRecord | null> {
  const db = deps.db.kysely
  const now = deps.now()
  const found = await db.selectFrom('org_profiles').select(['org_slug', 'dataset_id']).where('org_slug', '=', orgSlug).limit(1).executeTakeFirst()
  if (!found) return null
  const ds: DatasetBinding = { orgSlug, datasetId: found.dataset_id }
  const deletionId = newId('del', now)
  const outcome = await db.transaction().execute(async (trx) => {
    if (deps.db.dialect === 'postgres') {
      // Same lock order as admission (slot row first): a trigger racing the offboarding either lands
      // before it (and its run is cancelled and deleted here) or after it (and finds no org).
      await sql`SELECT org_slug FROM org_run_slots WHERE org_slug = ${orgSlug} LIMIT 1 FOR UPDATE`.execute(trx)
      await sql`SELECT org_slug FROM org_profiles WHERE org_slug = ${orgSlug} LIMIT 1 FOR UPDATE`.execute(trx)
    }
    await trx.updateTable('org_profiles').set({ status: 'OFFBOARDING', updated_at: now }).where('org_slug', '=', orgSlug).execute()
    const revoked = await trx
      .updateTable('org_api_keys')
      .set({ revoked_at: now })
      .where('org_slug', '=', orgSlug)
      .where('revoked_at', 'is', null)
      .executeTakeFirst()
    const cancelled = await trx
      .updateTable('org_pipeline_runs')
      .set({ status: 'CANCELLED', finished_at: now, error_code: 'ORG_OFFBOARDED', slot_released: 1, lease_owner: null })
      .where('org_slug', '=', orgSlug)
      .where('status', 'in', ['PENDING', 'RUNNING'])
      .executeTakeFirst()
    const credentials = await deps.destroyCredentials(trx, orgSlug)
    const idempotency = await deleteIdempotencyRecords(trx, ds)
    const rows: Record<string, number> = { org_idempotency_keys: idempotency }
    for (const table of ORG_TABLES) {
      const r = await trx.deleteFrom(table).where('org_slug', '=', orgSlug).executeTakeFirst()
      rows[table] = Number(r.numDeletedRows)
    }
    return { revoked: Number(revoked.numUpdatedRows), cancelled: Number(cancelled.numUpdatedRows), credentials, rows }
  })
  await deps.stopOrgRuns(ds)
  await deps.evictOrg(orgSlug)
  const { dropped, tables } = await deps.dropDataset(ds)
  const record: DeletionRecord = {
    org_slug: orgSlug,
    deletion_id: deletionId,
    deleted_at: new Date(now).toISOString(),
    api_keys_revoked: outcome.revoked,
    runs_cancelled: outcome.cancelled,
    credentials_destroyed: outcome.credentials,
    dataset_dropped: dropped,
    dataset_tables_deleted: tables,
    rows_deleted: outcome.rows,
  }
  await db.transaction().execute(async (trx) => {
    const late = await deleteOrgRows(trx, orgSlug)
    await deleteIdempotencyRecords(trx, ds)
    record.rows_deleted.org_profiles = late.org_profiles ?? 0
    // The audit trail outlives the org: the deletion record is its last entry.
    await recordAudit(
      trx,
      {
        org_slug: orgSlug,
        actor: 'root',
        action: 'org.offboarded',
        resource_type: 'organization',
        resource_id: deletionId,
        details: { ...record },
        request_id: meta.requestId,
      },
      now,
    )
  })
  return record
}
