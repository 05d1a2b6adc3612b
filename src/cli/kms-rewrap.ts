// `tenantflow kms rewrap`: re-wraps every stored data key (integration credentials, the org API
// key copies and the run-webhook signing secrets) under the KMS's current key version. Only the wrapped DEK changes: ciphertexts are
// untouched and no plaintext is produced. Rows are read in keyset batches; each batch is written by one
// UPDATE whose row changes are conditional on the wrapped key being unchanged, so a concurrent write wins.
import { sql, type Kysely } from 'kysely'
import type { Db } from '../core/db/database.js'
import type { Database } from '../core/db/schema.js'
import { DecryptionError, rewrapSecret, type KmsProvider, type SealedSecret } from '../core/security/kms-encryption.js'

export interface RewrapDeps {
  db: Db
  kms: KmsProvider
  batchSize?: number
}

export interface RewrapCounts {
  /** Re-wrapped under the current key version. */
  rewrapped: number
  /** Already under the current version. */
  current: number
  /** Could not be unwrapped (unknown key version or a row whose data key does not match it). */
  failed: number
  /** Ids of failed rows (identifiers only), at most 100. */
  failed_ids: string[]
}

export interface RewrapResult {
  key_version: string
  credentials: RewrapCounts
  api_keys: RewrapCounts
  webhooks: RewrapCounts
}

const empty = (): RewrapCounts => ({ rewrapped: 0, current: 0, failed: 0, failed_ids: [] })

function fail(counts: RewrapCounts, id: string): void {
  counts.failed++
  if (counts.failed_ids.length < 100) counts.failed_ids.push(id)
}

/**
 * One UPDATE for a whole batch: each row gets its own new values through CASE on its id, and is
 * written only if its `casColumn` still holds the value read (a concurrent write wins). Table and
 * column names are the constants passed by this module; every value is a bound parameter.
 */
async function updateBatch(
  db: Kysely<Database>,
  table: 'org_integration_credentials' | 'org_api_keys' | 'org_run_webhooks',
  idColumn: string,
  casColumn: string,
  updates: { id: string; old: string; set: Record<string, string> }[],
): Promise<number> {
  if (updates.length === 0) return 0
  const byId = (pick: (u: (typeof updates)[number]) => string) =>
    sql`CASE ${sql.ref(idColumn)} ${sql.join(updates.map((u) => sql`WHEN ${u.id} THEN ${pick(u)}`), sql` `)} END`
  const columns = Object.keys(updates[0]!.set)
  const r = await sql`UPDATE ${sql.table(table)} SET ${sql.join(columns.map((c) => sql`${sql.ref(c)} = ${byId((u) => u.set[c]!)}`))}
    WHERE ${sql.ref(idColumn)} IN (${sql.join(updates.map((u) => u.id))}) AND ${sql.ref(casColumn)} = ${byId((u) => u.old)}`.execute(db)
  return Number(r.numAffectedRows ?? 0n)
}

const isCurrent = (kms: KmsProvider, sealed: Pick<SealedSecret, 'kms_provider' | 'kms_key_version'>) =>
  sealed.kms_provider === kms.name && sealed.kms_key_version === kms.currentKeyVersion()

async function rewrapCredentials(deps: RewrapDeps, batch: number): Promise<RewrapCounts> {
  const counts = empty()
  const k = deps.db.kysely
  let after = ''
  for (;;) {
    const rows = await k
      .selectFrom('org_integration_credentials')
      .select(['credential_id', 'org_slug', 'provider', 'ciphertext', 'wrapped_key', 'kms_provider', 'kms_key_version'])
      .where('credential_id', '>', after)
      .where('ciphertext', 'is not', null)
      .where('wrapped_key', 'is not', null)
      .orderBy('credential_id')
      .limit(batch)
      .execute()
    if (rows.length === 0) return counts
    after = rows[rows.length - 1]!.credential_id
    const updates: { id: string; old: string; sealed: SealedSecret }[] = []
    for (const row of rows) {
      const sealed: SealedSecret = {
        ciphertext: row.ciphertext!, wrapped_key: row.wrapped_key!, kms_provider: row.kms_provider, kms_key_version: row.kms_key_version,
      }
      if (isCurrent(deps.kms, sealed)) {
        counts.current++
        continue
      }
      try {
        const next = await rewrapSecret(deps.kms, sealed, {
          org_slug: row.org_slug, purpose: 'integration', provider: row.provider, resource_id: row.credential_id,
        })
        updates.push({ id: row.credential_id, old: row.wrapped_key!, sealed: next })
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err
        fail(counts, row.credential_id)
      }
    }
    counts.rewrapped += await updateBatch(
      k,
      'org_integration_credentials',
      'credential_id',
      'wrapped_key',
      updates.map((u) => ({
        id: u.id,
        old: u.old,
        set: { wrapped_key: u.sealed.wrapped_key, kms_provider: u.sealed.kms_provider, kms_key_version: u.sealed.kms_key_version },
      })),
    )
  }
}

function parseSealed(text: string): SealedSecret | null {
  try {
    const v = JSON.parse(text) as Partial<SealedSecret>
    if (typeof v.ciphertext === 'string' && typeof v.wrapped_key === 'string' && typeof v.kms_provider === 'string' && typeof v.kms_key_version === 'string') {
      return v as SealedSecret
    }
  } catch {
    /* reported as failed */
  }
  return null
}

async function rewrapApiKeys(deps: RewrapDeps, batch: number): Promise<RewrapCounts> {
  const counts = empty()
  const k = deps.db.kysely
  let after = ''
  for (;;) {
    const rows = await k
      .selectFrom('org_api_keys')
      .select(['key_id', 'org_slug', 'encrypted_key'])
      .where('key_id', '>', after)
      .orderBy('key_id')
      .limit(batch)
      .execute()
    if (rows.length === 0) return counts
    after = rows[rows.length - 1]!.key_id
    const updates: { id: string; old: string; next: string }[] = []
    for (const row of rows) {
      const sealed = parseSealed(row.encrypted_key)
      if (!sealed) {
        fail(counts, row.key_id)
        continue
      }
      if (isCurrent(deps.kms, sealed)) {
        counts.current++
        continue
      }
      try {
        const next = await rewrapSecret(deps.kms, sealed, { org_slug: row.org_slug, purpose: 'api_key', resource_id: row.key_id })
        updates.push({ id: row.key_id, old: row.encrypted_key, next: JSON.stringify(next) })
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err
        fail(counts, row.key_id)
      }
    }
    counts.rewrapped += await updateBatch(k, 'org_api_keys', 'key_id', 'encrypted_key', updates.map((u) => ({ id: u.id, old: u.old, set: { encrypted_key: u.next } })))
  }
}

async function rewrapWebhooks(deps: RewrapDeps, batch: number): Promise<RewrapCounts> {
  const counts = empty()
  const k = deps.db.kysely
  let after = ''
  for (;;) {
    const rows = await k
      .selectFrom('org_run_webhooks')
      .select(['org_slug', 'webhook_id', 'ciphertext', 'wrapped_key', 'kms_provider', 'kms_key_version'])
      .where('org_slug', '>', after)
      .where('ciphertext', 'is not', null)
      .where('wrapped_key', 'is not', null)
      .orderBy('org_slug')
      .limit(batch)
      .execute()
    if (rows.length === 0) return counts
    after = rows[rows.length - 1]!.org_slug
    const updates: { id: string; old: string; sealed: SealedSecret }[] = []
    for (const row of rows) {
      const sealed: SealedSecret = {
        ciphertext: row.ciphertext!, wrapped_key: row.wrapped_key!, kms_provider: row.kms_provider ?? '', kms_key_version: row.kms_key_version ?? '',
      }
      if (isCurrent(deps.kms, sealed)) {
        counts.current++
        continue
      }
      try {
        const next = await rewrapSecret(deps.kms, sealed, { org_slug: row.org_slug, purpose: 'webhook', provider: 'webhook', resource_id: row.webhook_id })
        updates.push({ id: row.org_slug, old: row.wrapped_key!, sealed: next })
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err
        fail(counts, row.webhook_id)
      }
    }
    counts.rewrapped += await updateBatch(
      k,
      'org_run_webhooks',
      'org_slug',
      'wrapped_key',
      updates.map((u) => ({
        id: u.id,
        old: u.old,
        set: { wrapped_key: u.sealed.wrapped_key, kms_provider: u.sealed.kms_provider, kms_key_version: u.sealed.kms_key_version },
      })),
    )
  }
}

export async function rewrapAll(deps: RewrapDeps): Promise<RewrapResult> {
  const batch = Math.max(1, Math.min(deps.batchSize ?? 200, 1000))
  const credentials = await rewrapCredentials(deps, batch)
  const api_keys = await rewrapApiKeys(deps, batch)
  const webhooks = await rewrapWebhooks(deps, batch)
  return { key_version: deps.kms.currentKeyVersion(), credentials, api_keys, webhooks }
}
