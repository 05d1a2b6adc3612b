// The org's run-completion webhook: its URL and signing secret (generated here, shown once, stored
// envelope-encrypted with AAD binding it to the org and webhook id), and its delivery rows. A
// delivery is recorded in the run's terminal transaction (enqueueRunFinished), so no finished run
// is missed, and sent later by the dispatcher (dispatcher.ts).
import { randomBytes } from 'node:crypto'
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database, OrgRunWebhooksTable, OrgWebhookDeliveriesTable, WebhookDeliveryStatus } from '../db/schema.js'
import { newId } from '../ids.js'
import { decryptSecret, encryptSecret, type EncryptionContext, type KmsProvider } from '../security/kms-encryption.js'

type Executor = Kysely<Database> | Transaction<Database>

export const WEBHOOK_EVENT = 'run.finished'
export const MAX_DELIVERIES_LISTED = 100

/** The webhook as the API shows it: the table's row without the encrypted secret. */
export type WebhookView = Pick<
  OrgRunWebhooksTable,
  'org_slug' | 'webhook_id' | 'url' | 'last_delivery_at' | 'last_delivery_status' | 'last_error_code' | 'created_at' | 'updated_at'
>

const context = (org_slug: string, webhook_id: string): EncryptionContext => ({ org_slug, purpose: 'webhook', provider: 'webhook', resource_id: webhook_id })

/** A fresh signing secret: 32 random bytes, printable. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`
}

export async function getWebhook(db: Executor, orgSlug: string): Promise<WebhookView | undefined> {
  return db
    .selectFrom('org_run_webhooks')
    .select(['org_slug', 'webhook_id', 'url', 'last_delivery_at', 'last_delivery_status', 'last_error_code', 'created_at', 'updated_at'])
    .where('org_slug', '=', orgSlug)
    .limit(1)
    .executeTakeFirst()
}

export interface PutResult {
  created: boolean
  webhook: WebhookView
  /** Set only when a secret was generated (creation or rotation): shown to the caller once. */
  signing_secret: string | null
}

/**
 * Creates the org's webhook (new id and secret) or changes its URL; `rotate` replaces the secret (the
 * id stays, so deliveries not sent yet go out signed with the new secret).
 */
export async function putWebhook(
  db: Kysely<Database>,
  kms: KmsProvider,
  o: { org_slug: string; url: string; rotate?: boolean; now: number },
): Promise<PutResult> {
  const current = await getWebhook(db, o.org_slug)
  if (current && !o.rotate) {
    await db.updateTable('org_run_webhooks').set({ url: o.url, updated_at: o.now }).where('org_slug', '=', o.org_slug).execute()
    return { created: false, webhook: { ...current, url: o.url, updated_at: o.now }, signing_secret: null }
  }
  const webhook_id = current?.webhook_id ?? newId('whk', o.now)
  const secret = newSigningSecret()
  const sealed = await encryptSecret(kms, secret, context(o.org_slug, webhook_id))
  const row = {
    url: o.url, ciphertext: sealed.ciphertext, wrapped_key: sealed.wrapped_key,
    kms_provider: sealed.kms_provider, kms_key_version: sealed.kms_key_version, updated_at: o.now,
  }
  if (current) {
    await db.updateTable('org_run_webhooks').set(row).where('org_slug', '=', o.org_slug).where('webhook_id', '=', webhook_id).execute()
  } else {
    // Two concurrent creations: the second finds the row and answers as an update would (no secret).
    const r = await db
      .insertInto('org_run_webhooks')
      .values({ ...row, org_slug: o.org_slug, webhook_id, created_at: o.now, last_delivery_at: null, last_delivery_status: null, last_error_code: null })
      .onConflict((oc) => oc.column('org_slug').doNothing())
      .executeTakeFirst()
    if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) return putWebhook(db, kms, { ...o, rotate: false })
  }
  return { created: !current, webhook: (await getWebhook(db, o.org_slug))!, signing_secret: secret }
}

/** Deletes the webhook (its secret with it); deliveries not yet sent are marked FAILED. */
export async function deleteWebhook(db: Kysely<Database>, orgSlug: string, now: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const r = await trx.deleteFrom('org_run_webhooks').where('org_slug', '=', orgSlug).executeTakeFirst()
    if (Number(r.numDeletedRows) === 0) return false
    await abandonPending(trx, orgSlug, 'WEBHOOK_DELETED', now)
    return true
  })
}

async function abandonPending(trx: Transaction<Database>, orgSlug: string, code: string, now: number): Promise<void> {
  await trx
    .updateTable('org_webhook_deliveries')
    .set({ status: 'FAILED', last_error_code: code, lease_owner: null, lease_expires_at: null, updated_at: now })
    .where('org_slug', '=', orgSlug)
    .where('status', 'in', ['PENDING', 'DELIVERING'])
    .execute()
}

/** The webhook's URL and decrypted secret for one send, if it still is `webhookId`. */
export async function openWebhook(db: Executor, kms: KmsProvider, orgSlug: string, webhookId: string): Promise<{ url: string; secret: string } | null> {
  const row = await db
    .selectFrom('org_run_webhooks')
    .select(['url', 'webhook_id', 'ciphertext', 'wrapped_key', 'kms_provider', 'kms_key_version'])
    .where('org_slug', '=', orgSlug)
    .where('webhook_id', '=', webhookId)
    .limit(1)
    .executeTakeFirst()
  if (!row || !row.ciphertext || !row.wrapped_key || !row.kms_provider || !row.kms_key_version) return null
  const secret = await decryptSecret(
    kms,
    { ciphertext: row.ciphertext, wrapped_key: row.wrapped_key, kms_provider: row.kms_provider, kms_key_version: row.kms_key_version },
    context(orgSlug, row.webhook_id),
  )
  return { url: row.url, secret }
}

export interface FinishedRun {
  run_id: string
  org_slug: string
  pipeline_id: string
  trigger_type: string
  status: string
  error_code: string | null
  created_at: number
  started_at: number | null
  finished_at: number
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** In the run's terminal transaction: records the delivery for the org's webhook, if it has one (once per run). */
export async function enqueueRunFinished(trx: Transaction<Database>, run: FinishedRun, now: number): Promise<void> {
  const hook = await trx.selectFrom('org_run_webhooks').select('webhook_id').where('org_slug', '=', run.org_slug).limit(1).executeTakeFirst()
  if (!hook) return
  const delivery_id = newId('dlv', now)
  // Identifiers, status, error code and timestamps only: nothing from parameters, steps or credentials.
  const payload = {
    event: WEBHOOK_EVENT,
    delivery_id,
    org_slug: run.org_slug,
    run_id: run.run_id,
    pipeline_id: run.pipeline_id,
    trigger_type: run.trigger_type,
    status: run.status,
    error_code: run.error_code,
    created_at: iso(run.created_at),
    started_at: iso(run.started_at),
    finished_at: iso(run.finished_at),
  }
  await trx
    .insertInto('org_webhook_deliveries')
    .values({
      delivery_id, org_slug: run.org_slug, webhook_id: hook.webhook_id, run_id: run.run_id, event: WEBHOOK_EVENT,
      payload: JSON.stringify(payload), status: 'PENDING', attempts: 0, next_attempt_at: now, lease_owner: null,
      lease_expires_at: null, last_status_code: null, last_error_code: null, delivered_at: null, created_at: now, updated_at: now,
    })
    .onConflict((oc) => oc.columns(['webhook_id', 'run_id']).doNothing())
    .execute()
}

export type DeliveryView = Pick<
  OrgWebhookDeliveriesTable,
  'delivery_id' | 'run_id' | 'event' | 'status' | 'attempts' | 'next_attempt_at' | 'last_status_code' | 'last_error_code' | 'delivered_at' | 'created_at'
>

/** The org's most recent deliveries, newest first (bounded). */
export async function listDeliveries(db: Executor, orgSlug: string, limit: number, status?: WebhookDeliveryStatus): Promise<DeliveryView[]> {
  let q = db
    .selectFrom('org_webhook_deliveries')
    .select(['delivery_id', 'run_id', 'event', 'status', 'attempts', 'next_attempt_at', 'last_status_code', 'last_error_code', 'delivered_at', 'created_at'])
    .where('org_slug', '=', orgSlug)
    .orderBy('created_at', 'desc')
    .orderBy('delivery_id', 'desc')
    .limit(Math.min(Math.max(1, limit), MAX_DELIVERIES_LISTED))
  if (status) q = q.where('status', '=', status)
  return q.execute()
}

const RETENTION_BATCH = 1000
const RETENTION_MAX_BATCHES = 20

/** Retention: finished deliveries (DELIVERED, FAILED) older than `retentionDays`, in bounded batches. */
export async function deleteOldDeliveries(db: Kysely<Database>, retentionDays: number, now: number): Promise<number> {
  const before = now - retentionDays * 86_400_000
  let total = 0
  for (let i = 0; i < RETENTION_MAX_BATCHES; i++) {
    const r = await sql`
      DELETE FROM org_webhook_deliveries WHERE delivery_id IN (
        SELECT delivery_id FROM org_webhook_deliveries
        WHERE status IN ('DELIVERED', 'FAILED') AND created_at < ${before} LIMIT ${RETENTION_BATCH})`.execute(db)
    const n = Number(r.numAffectedRows ?? 0n)
    total += n
    if (n < RETENTION_BATCH) break
  }
  return total
}
