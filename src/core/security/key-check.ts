// The KMS key-check value: one envelope in the database that the current KMS key must unwrap. Every
// process checks it at startup, so a process configured with another key (another DATA_DIR's generated
// key, a typo, the wrong GCP key) refuses to start instead of failing tenants' runs and credentials.
import { randomBytes } from 'node:crypto'
import type { Db } from '../db/database.js'
import { DecryptionError, gcmOpen, gcmSeal, KmsUnavailableError, type KmsProvider } from './kms-encryption.js'

const AAD = Buffer.from('tenantflow:v1|purpose=kms_key_check', 'utf8')
const PLAINTEXT = 'tenantflow kms key check v1'
const ROW_ID = 'current'

export type KeyCheckOutcome =
  | { status: 'created' | 'verified' | 'rewrapped' | 'absent'; provider: string; keyVersion: string }
  | { status: 'mismatch'; provider: string; keyVersion: string; stored: { provider: string; keyVersion: string } }
  | { status: 'kms_unavailable'; provider: string; keyVersion: string }

/** Thrown by requireKmsKeyCheck: the message names what differs, never a key. */
export class KmsKeyMismatchError extends Error {
  constructor(readonly outcome: Exclude<KeyCheckOutcome, { status: 'created' | 'verified' | 'rewrapped' | 'absent' }>) {
    super(describeKeyCheck(outcome))
    this.name = 'KmsKeyMismatchError'
  }
}

export function describeKeyCheck(o: KeyCheckOutcome): string {
  const mine = `${o.provider} key version ${o.keyVersion}`
  switch (o.status) {
    case 'mismatch':
      return (
        `KMS key mismatch: this process's KMS key (${mine}) cannot unwrap the key-check value stored in the database ` +
        `(written with ${o.stored.provider} key version ${o.stored.keyVersion}). Every process on one database needs the same KMS key ` +
        '(KMS_LOCAL_MASTER_KEY, or GCP_KMS_KEY_NAME; retired keys in KMS_LOCAL_PREVIOUS_KEYS)'
      )
    case 'kms_unavailable':
      return `KMS unavailable: the key-check value could not be verified with ${mine} (KMS did not answer)`
    default:
      return `KMS key check ${o.status} (${mine})`
  }
}

async function stored(db: Db) {
  return db.kysely
    .selectFrom('tenantflow_kms_key_check')
    .selectAll()
    .where('id', '=', ROW_ID)
    .limit(1)
    .executeTakeFirst()
}

async function seal(kms: KmsProvider): Promise<{ ciphertext: string; wrapped_key: string; kms_key_version: string }> {
  const dek = randomBytes(32)
  try {
    const ciphertext = gcmSeal(dek, Buffer.from(PLAINTEXT, 'utf8'), AAD)
    const { wrapped, keyVersion } = await kms.wrap(dek, AAD)
    return { ciphertext, wrapped_key: wrapped, kms_key_version: keyVersion }
  } finally {
    dek.fill(0)
  }
}

/**
 * Verifies (or, on a database that has none, writes) the key-check value. Never throws for a wrong
 * key or an unreachable KMS: it reports them, so `doctor` can print them; requireKmsKeyCheck throws.
 */
export async function checkKmsKey(db: Db, kms: KmsProvider, now: number, opts: { write?: boolean } = {}): Promise<KeyCheckOutcome> {
  const mine = { provider: kms.name, keyVersion: kms.currentKeyVersion() }
  const write = opts.write ?? true // doctor passes false: it reports, it never changes the database
  try {
    let row = await stored(db)
    if (!row && !write) return { status: 'absent', ...mine }
    if (!row) {
      const sealed = await seal(kms)
      await db.kysely
        .insertInto('tenantflow_kms_key_check')
        .values({ id: ROW_ID, kms_provider: kms.name, ...sealed, created_at: now, updated_at: now })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute()
      row = await stored(db)
      if (row && row.wrapped_key === sealed.wrapped_key) return { status: 'created', ...mine }
      if (!row) throw new Error('kms key check row missing after insert')
    }
    const theirs = { provider: row.kms_provider, keyVersion: row.kms_key_version }
    if (row.kms_provider !== kms.name) return { status: 'mismatch', ...mine, stored: theirs }
    let dek: Buffer
    try {
      dek = await kms.unwrap(row.wrapped_key, AAD, row.kms_key_version)
    } catch (err) {
      if (err instanceof DecryptionError) return { status: 'mismatch', ...mine, stored: theirs }
      throw err
    }
    try {
      if (gcmOpen(dek, row.ciphertext, AAD).toString('utf8') !== PLAINTEXT) return { status: 'mismatch', ...mine, stored: theirs }
    } catch (err) {
      if (err instanceof DecryptionError) return { status: 'mismatch', ...mine, stored: theirs }
      throw err
    } finally {
      dek.fill(0)
    }
    if (row.kms_key_version === mine.keyVersion || !write) return { status: 'verified', ...mine }
    // Verified with a retired key version: move the check to the current one (compare-and-set), so
    // dropping the retired key after `kms rewrap` does not make the check fail.
    const next = await seal(kms)
    await db.kysely
      .updateTable('tenantflow_kms_key_check')
      .set({ ...next, updated_at: now })
      .where('id', '=', ROW_ID)
      .where('wrapped_key', '=', row.wrapped_key)
      .execute()
    return { status: 'rewrapped', ...mine }
  } catch (err) {
    if (err instanceof KmsUnavailableError) return { status: 'kms_unavailable', ...mine }
    throw err
  }
}

/** Startup: throws KmsKeyMismatchError unless the current key unwraps the stored check value. */
export async function requireKmsKeyCheck(db: Db, kms: KmsProvider, now: number): Promise<KeyCheckOutcome> {
  const outcome = await checkKmsKey(db, kms, now)
  if (outcome.status === 'mismatch' || outcome.status === 'kms_unavailable') throw new KmsKeyMismatchError(outcome)
  return outcome
}

