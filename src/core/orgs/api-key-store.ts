// Issuing and rotating org API keys. The plaintext is returned once; the table keeps its SHA-256
// (lookup), the last four characters, and a KMS envelope bound to the org and key id.
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import { newId } from '../ids.js'
import { encryptSecret, type KmsProvider } from '../security/kms-encryption.js'
import { fingerprintOf, generateApiKey, hashApiKey } from '../security/api-keys.js'

export interface IssuedKey {
  key_id: string
  api_key: string
  row: Database['org_api_keys']
}

/** Generates and encrypts a key; the caller inserts `row` inside its own transaction. */
export async function prepareApiKey(kms: KmsProvider, orgSlug: string, now: number): Promise<IssuedKey> {
  const key_id = newId('key', now)
  const api_key = generateApiKey()
  const sealed = await encryptSecret(kms, api_key, { org_slug: orgSlug, purpose: 'api_key', resource_id: key_id })
  return {
    key_id,
    api_key,
    row: {
      key_id,
      org_slug: orgSlug,
      key_hash: hashApiKey(api_key),
      encrypted_key: JSON.stringify(sealed),
      fingerprint: fingerprintOf(api_key),
      created_at: now,
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
    },
  }
}

/**
 * Stores the new key first, then retires every other live key of the org: revoked now, or (with a
 * grace period) expiring at now + grace. Returns when the previous keys stop working.
 */
export async function storeRotatedKey(
  trx: Transaction<Database>,
  issued: IssuedKey,
  graceSeconds: number,
  now: number,
): Promise<number | null> {
  await trx.insertInto('org_api_keys').values(issued.row).execute()
  const live = trx
    .updateTable('org_api_keys')
    .where('org_slug', '=', issued.row.org_slug)
    .where('key_id', '<>', issued.key_id)
    .where('revoked_at', 'is', null)
  if (graceSeconds === 0) {
    await live.set({ revoked_at: now }).execute()
    return now
  }
  const until = now + graceSeconds * 1000
  await live.where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', until)])).set({ expires_at: until }).execute()
  return until
}

export async function activeKeyInfo(db: Kysely<Database>, orgSlug: string, now: number) {
  return db
    .selectFrom('org_api_keys')
    .select(['key_id', 'fingerprint', 'created_at', 'last_used_at', 'expires_at'])
    .where('org_slug', '=', orgSlug)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at', 'desc')
    .orderBy('key_id', 'desc')
    .limit(1)
    .executeTakeFirst()
}
