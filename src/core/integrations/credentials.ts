// The credential service (SPEC §7 Integrations, §8.5, §11). Credentials are envelope-encrypted with
// AAD binding them to (org, provider, credential id); one active row per (org, provider). Plaintexts
// exist only inside the call that needs them: they are never cached, never put on long-lived objects,
// and every decrypt leaves an audit row saying who, which credential and why.
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { Db } from '../db/database.js'
import type { Database, OrgIntegrationCredentialsTable } from '../db/schema.js'
import type { EgressClient } from '../http/types.js'
import { newId } from '../ids.js'
import { recordAudit, recordAuditBatch, type AuditEntry } from '../orgs/audit.js'
import type { DecryptedCredential, IntegrationProvider } from '../processors/types.js'
import {
  decryptSecret,
  DecryptionError,
  encryptSecret,
  KmsUnavailableError,
  type EncryptionContext,
  type KmsProvider,
  type SealedSecret,
} from '../security/kms-encryption.js'
import { registerSecret, withSecret } from '../security/scrub.js'
import { CredentialError } from './errors.js'
import { checkMetadata, fingerprintFor } from './metadata.js'
import { CredentialFormatError, isProviderName, PROVIDER_NAMES, providerModule, type ValidationResult } from './providers/index.js'

export interface CredentialDeps {
  db: Db
  kms: KmsProvider
  egress: EgressClient
  config: Config
  now(): number
}

export type CredentialStatus = 'VALID' | 'INVALID' | 'PENDING'

export interface CredentialView {
  provider: IntegrationProvider
  status: CredentialStatus | 'NOT_CONFIGURED'
  credential_id: string | null
  credential_name: string | null
  fingerprint: string | null
  last_validated_at: number | null
  last_error_code: string | null
  created_at: number | null
  updated_at: number | null
}

export interface SetupInput {
  org_slug: string
  provider: string
  credential: string
  credential_name?: string | null
  metadata?: Record<string, unknown> | null
  skip_validation?: boolean
  actor: string
  request_id?: string | null
}

export interface SetupResult {
  provider: IntegrationProvider
  status: CredentialStatus
  credential_id: string
  fingerprint: string
}

type Row = OrgIntegrationCredentialsTable
type Executor = Kysely<Database> | Transaction<Database>

const encryptionContext = (row: Pick<Row, 'org_slug' | 'provider' | 'credential_id'>): EncryptionContext => ({
  org_slug: row.org_slug,
  purpose: 'integration',
  provider: row.provider,
  resource_id: row.credential_id,
})

function provider(name: string): IntegrationProvider {
  if (!isProviderName(name)) throw new CredentialError('UNSUPPORTED_PROVIDER')
  return name
}

function view(p: IntegrationProvider, row: Row | undefined): CredentialView {
  if (!row) {
    return {
      provider: p, status: 'NOT_CONFIGURED', credential_id: null, credential_name: null, fingerprint: null,
      last_validated_at: null, last_error_code: null, created_at: null, updated_at: null,
    }
  }
  return {
    provider: p,
    status: row.status,
    credential_id: row.credential_id,
    credential_name: row.credential_name,
    fingerprint: row.fingerprint,
    last_validated_at: row.last_validated_at,
    last_error_code: row.last_error_code,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}

async function activeRow(db: Executor, org_slug: string, p: IntegrationProvider): Promise<Row | undefined> {
  return db
    .selectFrom('org_integration_credentials')
    .selectAll()
    .where('org_slug', '=', org_slug)
    .where('provider', '=', p)
    .where('is_active', '=', 1)
    .limit(1)
    .executeTakeFirst()
}

/** Shreds rows: the wrapped data key and ciphertext are destroyed; the row stays as history. */
function shred(db: Executor, now: number) {
  return db
    .updateTable('org_integration_credentials')
    .set({ ciphertext: null, wrapped_key: null, is_active: 0, destroyed_at: now, updated_at: now })
}

async function validateLive(deps: CredentialDeps, p: IntegrationProvider, secret: string, metadata: Record<string, unknown>) {
  return withSecret(secretForms(p, secret), () => providerModule(p).validate(secret, metadata, deps.egress, deps.config))
}

/** Format check → live validation (unless skipped) → encrypt → replace the active row in one transaction. */
export async function setupCredential(deps: CredentialDeps, input: SetupInput): Promise<SetupResult> {
  const p = provider(input.provider)
  let metadata: Record<string, unknown>
  try {
    metadata = providerModule(p).checkFormat(input.credential, checkMetadata(input.metadata), deps.config)
  } catch (err) {
    if (err instanceof CredentialFormatError) throw new CredentialError('INVALID_CREDENTIAL_FORMAT', err.field)
    throw err
  }
  const name = input.credential_name ?? null
  if (name !== null && (name.length < 1 || name.length > 200 || /[\x00-\x1f]/.test(name))) {
    throw new CredentialError('INVALID_CREDENTIAL_FORMAT', 'credential_name')
  }
  const result: ValidationResult = input.skip_validation
    ? { status: 'PENDING' }
    : await validateLive(deps, p, input.credential, metadata)
  const fingerprint = fingerprintFor(p, input.credential, metadata)

  const credential_id = newId('cred', deps.now())
  const sealed = await seal(deps, { org_slug: input.org_slug, provider: p, credential_id }, input.credential)
  const now = deps.now()
  await deps.db.kysely.transaction().execute(async (trx) => {
    await lockOrgProvider(deps.db, trx, input.org_slug, p)
    const previous = await shred(trx, now)
      .where('org_slug', '=', input.org_slug)
      .where('provider', '=', p)
      .where('is_active', '=', 1)
      .returning('credential_id')
      .execute()
    await trx
      .insertInto('org_integration_credentials')
      .values({
        credential_id,
        org_slug: input.org_slug,
        provider: p,
        credential_name: name,
        ciphertext: sealed.ciphertext,
        wrapped_key: sealed.wrapped_key,
        kms_provider: sealed.kms_provider,
        kms_key_version: sealed.kms_key_version,
        fingerprint,
        status: result.status,
        last_validated_at: result.status === 'PENDING' ? null : now,
        last_error_code: result.error_code ?? null,
        metadata: JSON.stringify(metadata),
        is_active: 1,
        created_at: now,
        updated_at: now,
        destroyed_at: null,
      })
      .execute()
    const base = { org_slug: input.org_slug, actor: input.actor, resource_type: 'integration', resource_id: credential_id, request_id: input.request_id ?? null }
    const entries: AuditEntry[] = [
      { ...base, action: 'credential.setup', details: { provider: p, fingerprint, replaced: previous.map((r) => r.credential_id), validation_skipped: !!input.skip_validation } },
    ]
    if (!input.skip_validation) {
      entries.push({ ...base, action: 'credential.validated', details: { provider: p, status: result.status, error_code: result.error_code ?? null } })
    }
    await recordAuditBatch(trx, entries, now)
  })
  return { provider: p, status: result.status, credential_id, fingerprint }
}

/**
 * Serializes replacements of one (org, provider): without it two concurrent setups on PostgreSQL both
 * find no active row to retire and the second insert hits the one-active-row index. SQLite transactions
 * already hold the write lock from their first statement.
 */
async function lockOrgProvider(db: Db, trx: Transaction<Database>, org_slug: string, p: IntegrationProvider): Promise<void> {
  if (db.dialect !== 'postgres') return
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`integration:${org_slug}:${p}`}, 0))`.execute(trx)
}

async function seal(deps: CredentialDeps, row: Pick<Row, 'org_slug' | 'provider' | 'credential_id'>, secret: string): Promise<SealedSecret> {
  try {
    return await encryptSecret(deps.kms, secret, encryptionContext(row))
  } catch (err) {
    if (err instanceof KmsUnavailableError) throw new CredentialError('KMS_UNAVAILABLE')
    throw err
  }
}

/** Opens a row's secret. A ciphertext that does not belong to this row is CREDENTIAL_UNUSABLE. */
async function open(deps: CredentialDeps, row: Row): Promise<string> {
  try {
    return await decryptSecret(
      deps.kms,
      { ciphertext: row.ciphertext ?? '', wrapped_key: row.wrapped_key ?? '', kms_provider: row.kms_provider, kms_key_version: row.kms_key_version },
      encryptionContext(row),
    )
  } catch (err) {
    if (err instanceof KmsUnavailableError) throw new CredentialError('KMS_UNAVAILABLE')
    // The status is left alone: a wrong KMS key in this process looks exactly like a damaged row, and
    // only a provider's verdict may mark a credential INVALID. The audit row records the failure.
    if (err instanceof DecryptionError) throw new CredentialError('CREDENTIAL_UNUSABLE')
    throw err
  }
}

export interface DecryptInput {
  org_slug: string
  provider: IntegrationProvider
  /** Why the plaintext is needed, for the audit trail (e.g. 'validation', 'pipeline_step'). */
  reason: string
  actor: string
  run_id?: string | null
  step_id?: string | null
  request_id?: string | null
}

/**
 * Decrypts the org's active credential for one use and audits it. The caller must not keep the
 * returned object beyond that use; see withDecryptedCredential, which also registers it for scrubbing.
 */
export async function decryptActiveCredential(deps: CredentialDeps, input: DecryptInput): Promise<DecryptedCredential> {
  const p = provider(input.provider)
  const row = await activeRow(deps.db.kysely, input.org_slug, p)
  if (!row || row.ciphertext === null || row.wrapped_key === null) throw new CredentialError('INTEGRATION_NOT_CONFIGURED')
  const audit = (action: string) =>
    recordAudit(
      deps.db.kysely,
      {
        org_slug: input.org_slug,
        actor: input.actor,
        action,
        resource_type: 'integration',
        resource_id: row.credential_id,
        request_id: input.request_id ?? null,
        details: { provider: p, reason: input.reason, run_id: input.run_id ?? null, step_id: input.step_id ?? null },
      },
      deps.now(),
    )
  let secret: string
  try {
    secret = await open(deps, row)
  } catch (err) {
    await audit('credential.decrypt_failed')
    throw err
  }
  await audit('credential.decrypted')
  return { provider: p, credential_id: row.credential_id, secret, metadata: JSON.parse(row.metadata) as Record<string, unknown> }
}

/** The forms a secret takes on the wire or in text, so scrubbing catches each of them. */
export function secretForms(p: IntegrationProvider, secret: string): string[] {
  const forms = [secret]
  if (p === 'gcp') {
    try {
      const key = (JSON.parse(secret) as { private_key?: unknown }).private_key
      if (typeof key === 'string') forms.push(key)
    } catch {
      /* not JSON: the whole value is tracked */
    }
  }
  if (p === 'http') {
    forms.push(Buffer.from(secret, 'utf8').toString('base64'))
    const colon = secret.indexOf(':')
    if (colon > 0) forms.push(secret.slice(colon + 1))
  }
  return forms
}

/** Registers a decrypted credential for log scrubbing; call the result when the use ends. */
export function trackCredential(cred: DecryptedCredential): () => void {
  const releases = secretForms(cred.provider, cred.secret).map(registerSecret)
  return () => releases.forEach((r) => r())
}

/** Decrypts, runs fn while the secret is registered for scrubbing, then releases it. */
export async function withDecryptedCredential<T>(
  deps: CredentialDeps,
  input: DecryptInput,
  fn: (cred: DecryptedCredential) => Promise<T>,
): Promise<T> {
  const cred = await decryptActiveCredential(deps, input)
  const release = trackCredential(cred)
  try {
    return await fn(cred)
  } finally {
    release()
  }
}

export interface ActorInput {
  org_slug: string
  provider: string
  actor: string
  request_id?: string | null
}

/** Decrypts the active credential and checks it again; INVALID can become VALID. */
export async function revalidateCredential(deps: CredentialDeps, input: ActorInput): Promise<CredentialView> {
  const p = provider(input.provider)
  const result = await withDecryptedCredential(
    deps,
    { org_slug: input.org_slug, provider: p, reason: 'validation', actor: input.actor, request_id: input.request_id },
    async (cred) => ({ id: cred.credential_id, outcome: await providerModule(p).validate(cred.secret, cred.metadata, deps.egress, deps.config) }),
  )
  const now = deps.now()
  await deps.db.kysely.transaction().execute(async (trx) => {
    await trx
      .updateTable('org_integration_credentials')
      .set({ status: result.outcome.status, last_error_code: result.outcome.error_code ?? null, last_validated_at: now, updated_at: now })
      .where('credential_id', '=', result.id)
      .where('org_slug', '=', input.org_slug)
      .where('is_active', '=', 1)
      .execute()
    await recordAudit(
      trx,
      {
        org_slug: input.org_slug, actor: input.actor, action: 'credential.validated', resource_type: 'integration',
        resource_id: result.id, request_id: input.request_id ?? null,
        details: { provider: p, status: result.outcome.status, error_code: result.outcome.error_code ?? null },
      },
      now,
    )
  })
  return getCredentialStatus(deps.db, input.org_slug, p)
}

/** Every provider with its status (NOT_CONFIGURED when none is active). */
export async function listCredentials(db: Db, org_slug: string): Promise<CredentialView[]> {
  const rows = await db.kysely
    .selectFrom('org_integration_credentials')
    .selectAll()
    .where('org_slug', '=', org_slug)
    .where('is_active', '=', 1)
    .orderBy('provider')
    .limit(10)
    .execute()
  return PROVIDER_NAMES.map((p) => view(p, rows.find((r) => r.provider === p)))
}

export async function getCredentialStatus(db: Db, org_slug: string, providerName: string): Promise<CredentialView> {
  const p = provider(providerName)
  return view(p, await activeRow(db.kysely, org_slug, p))
}

/** Crypto-shreds the org's credentials for one provider (active and replaced ones). Returns rows shredded. */
export async function deleteCredential(deps: CredentialDeps, input: ActorInput): Promise<number> {
  const p = provider(input.provider)
  const now = deps.now()
  return deps.db.kysely.transaction().execute(async (trx) => {
    const active = await activeRow(trx, input.org_slug, p)
    if (!active) throw new CredentialError('INTEGRATION_NOT_CONFIGURED')
    const rows = await shred(trx, now)
      .where('org_slug', '=', input.org_slug)
      .where('provider', '=', p)
      .where('destroyed_at', 'is', null)
      .returning('credential_id')
      .execute()
    await recordAudit(
      trx,
      {
        org_slug: input.org_slug, actor: input.actor, action: 'credential.deleted', resource_type: 'integration',
        resource_id: active.credential_id, request_id: input.request_id ?? null,
        details: { provider: p, shredded: rows.length },
      },
      now,
    )
    return rows.length
  })
}

/** Offboarding: shreds every credential row of the org. Pass the offboarding transaction. */
export async function destroyOrgCredentials(db: Executor, org_slug: string, now = Date.now()): Promise<number> {
  const rows = await shred(db, now)
    .where('org_slug', '=', org_slug)
    .where('destroyed_at', 'is', null)
    .returning('credential_id')
    .execute()
  return rows.length
}

/** Cheap check for the trigger route (no decrypt): an active credential exists (else INTEGRATION_NOT_CONFIGURED) and is VALID (else CREDENTIAL_INVALID / CREDENTIAL_PENDING). */
export async function requireValidCredential(db: Db | Executor, org_slug: string, providerName: IntegrationProvider): Promise<{ credential_id: string }> {
  const k = 'kysely' in db ? db.kysely : db
  const row = await k
    .selectFrom('org_integration_credentials')
    .select(['credential_id', 'status'])
    .where('org_slug', '=', org_slug)
    .where('provider', '=', providerName)
    .where('is_active', '=', 1)
    .limit(1)
    .executeTakeFirst()
  if (!row) throw new CredentialError('INTEGRATION_NOT_CONFIGURED')
  if (row.status === 'INVALID') throw new CredentialError('CREDENTIAL_INVALID')
  if (row.status !== 'VALID') throw new CredentialError('CREDENTIAL_PENDING')
  return { credential_id: row.credential_id }
}
