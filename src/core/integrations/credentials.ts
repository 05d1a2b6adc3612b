// The credential service (SPEC §7 Integrations, §8.5, §11). Credentials are envelope-encrypted with
// AAD binding them to (org, provider, credential id); one active row per (org, provider). Plaintexts
// exist only inside the call that needs them: they are never cached, never put on long-lived objects,
// and every decrypt leaves an audit row saying who, which credential and why.
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { Db } from '../db/database.js'
import type { Database, OrgIntegrationCredentialsTable } from '../db/schema.js'
import type { EgressClient } from '../http/types.js'
import { orgEgressClient } from '../http/egress-allowlist.js'
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
import {
  CredentialFormatError,
  isProviderName,
  parseHttpMetadata,
  PROVIDER_NAMES,
  providerModule,
  type ProviderConfig,
  type ValidationErrorCode,
  type ValidationResult,
} from './providers/index.js'

export interface CredentialDeps {
  db: Db
  kms: KmsProvider
  egress: EgressClient
  config: Config
  now(): number
  /** The org's operator-managed extra egress hosts (cached per process); none when absent. */
  orgHosts?: { hostsFor(orgSlug: string): Promise<readonly string[]> }
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
  /** Store the credential (INVALID, replacing the active one) even when the live check refuses it. */
  store_invalid?: boolean
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

/** The org's egress policy: the process config and client, widened by the org's listed hosts. */
async function orgPolicy(deps: CredentialDeps, org_slug: string): Promise<{ cfg: ProviderConfig; egress: EgressClient }> {
  const hosts = (await deps.orgHosts?.hostsFor(org_slug)) ?? []
  return {
    cfg: hosts.length ? { ...deps.config, orgAllowedHosts: hosts } : deps.config,
    egress: hosts.length ? orgEgressClient(deps.egress, async () => hosts) : deps.egress,
  }
}

async function validateLive(
  policy: { cfg: ProviderConfig; egress: EgressClient },
  p: IntegrationProvider,
  secret: string,
  metadata: Record<string, unknown>,
): Promise<ValidationResult> {
  return withSecret(secretForms(p, secret), () => providerModule(p).validate(secret, metadata, policy.egress, policy.cfg))
}

/** Provider format errors → service errors; a destination the egress policy refuses has its own code. */
function checkFormat(p: IntegrationProvider, credential: string, metadata: unknown, cfg: ProviderConfig): Record<string, unknown> {
  try {
    return providerModule(p).checkFormat(credential, checkMetadata(metadata), cfg)
  } catch (err) {
    if (err instanceof CredentialFormatError) {
      throw new CredentialError(err.kind === 'destination' ? 'DESTINATION_NOT_ALLOWED' : 'INVALID_CREDENTIAL_FORMAT', err.field)
    }
    throw err
  }
}

/**
 * Format check → live validation (unless skipped) → encrypt → replace the active row in one
 * transaction. A live check that refuses the credential changes nothing (the active credential, if
 * any, keeps working) and throws CREDENTIAL_REJECTED with the reason, unless `store_invalid` asks to
 * store it anyway. The refused attempt is audited (fingerprint and reason, never the secret).
 */
export async function setupCredential(deps: CredentialDeps, input: SetupInput): Promise<SetupResult> {
  const p = provider(input.provider)
  const policy = await orgPolicy(deps, input.org_slug)
  const metadata = checkFormat(p, input.credential, input.metadata, policy.cfg)
  const name = input.credential_name ?? null
  if (name !== null && (name.length < 1 || name.length > 200 || /[\x00-\x1f]/.test(name))) {
    throw new CredentialError('INVALID_CREDENTIAL_FORMAT', 'credential_name')
  }
  const result: ValidationResult = input.skip_validation
    ? { status: 'PENDING' }
    : await validateLive(policy, p, input.credential, metadata)
  const fingerprint = fingerprintFor(p, input.credential, metadata)
  if (result.status === 'INVALID' && !input.store_invalid) {
    await recordAudit(
      deps.db.kysely,
      {
        org_slug: input.org_slug, actor: input.actor, action: 'credential.rejected', resource_type: 'integration',
        resource_id: null, request_id: input.request_id ?? null,
        details: { provider: p, fingerprint, error_code: result.error_code ?? null, kept_previous: true },
      },
      deps.now(),
    )
    throw new CredentialError('CREDENTIAL_REJECTED', undefined, result.error_code ?? 'UPSTREAM_ERROR')
  }

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
      {
        ...base,
        action: 'credential.setup',
        details: { provider: p, fingerprint, replaced: previous.map((r) => r.credential_id), validation_skipped: !!input.skip_validation, stored_invalid: result.status === 'INVALID' },
      },
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

/**
 * Decrypts the active credential, checks it live and records the verdict on that row (if it is still
 * the active one). Returns the credential id and the provider's outcome.
 */
async function checkActive(
  deps: CredentialDeps,
  input: ActorInput & { run_id?: string | null },
  p: IntegrationProvider,
): Promise<{ id: string; outcome: ValidationResult }> {
  const policy = await orgPolicy(deps, input.org_slug)
  const result = await withDecryptedCredential(
    deps,
    { org_slug: input.org_slug, provider: p, reason: 'validation', actor: input.actor, request_id: input.request_id, run_id: input.run_id },
    async (cred) => {
      try {
        return { id: cred.credential_id, outcome: await providerModule(p).validate(cred.secret, cred.metadata, policy.egress, policy.cfg) }
      } catch (err) {
        // The stored metadata names a destination the policy refuses now (an allow-list entry was
        // removed, or the environment changed): not the provider's verdict, so the status stays.
        if (err instanceof CredentialFormatError) throw new CredentialError('DESTINATION_NOT_ALLOWED', err.field)
        throw err
      }
    },
  )
  const now = deps.now()
  await deps.db.kysely.transaction().execute(async (trx) => {
    await trx
      .updateTable('org_integration_credentials')
      .set({
        status: result.outcome.status,
        last_error_code: result.outcome.error_code ?? null,
        last_validated_at: result.outcome.status === 'PENDING' ? null : now,
        updated_at: now,
      })
      .where('credential_id', '=', result.id)
      .where('org_slug', '=', input.org_slug)
      .where('is_active', '=', 1)
      .execute()
    await recordAudit(
      trx,
      {
        org_slug: input.org_slug, actor: input.actor, action: 'credential.validated', resource_type: 'integration',
        resource_id: result.id, request_id: input.request_id ?? null,
        details: { provider: p, status: result.outcome.status, error_code: result.outcome.error_code ?? null, run_id: input.run_id ?? null },
      },
      now,
    )
  })
  return result
}

/** Decrypts the active credential and checks it again; INVALID can become VALID. */
export async function revalidateCredential(deps: CredentialDeps, input: ActorInput): Promise<CredentialView> {
  const p = provider(input.provider)
  await checkActive(deps, input, p)
  return getCredentialStatus(deps.db, input.org_slug, p)
}

// Concurrent first uses of one PENDING credential in this process share one live check.
const firstUseChecks = new Map<string, Promise<{ id: string; outcome: ValidationResult }>>()

/**
 * What every use of a credential goes through (trigger, schedule creation, scheduled fire): an active
 * credential must exist (else INTEGRATION_NOT_CONFIGURED). VALID is used as is; INVALID is refused
 * (CREDENTIAL_INVALID with its stored reason); PENDING (stored with `skip_validation`) is validated
 * live now: VALID → usable, INVALID → CREDENTIAL_REJECTED with the reason (the row now says INVALID).
 * A credential the provider cannot check (an `http` one without `validation_url`) stays PENDING and
 * is usable: its first run is its check.
 */
export async function ensureUsableCredential(
  deps: CredentialDeps,
  input: ActorInput & { provider: IntegrationProvider; run_id?: string | null },
): Promise<{ credential_id: string; status: CredentialStatus }> {
  const row = await deps.db.kysely
    .selectFrom('org_integration_credentials')
    .select(['credential_id', 'status', 'last_error_code', 'metadata'])
    .where('org_slug', '=', input.org_slug)
    .where('provider', '=', input.provider)
    .where('is_active', '=', 1)
    .limit(1)
    .executeTakeFirst()
  if (!row) throw new CredentialError('INTEGRATION_NOT_CONFIGURED')
  if (row.status === 'VALID') return { credential_id: row.credential_id, status: 'VALID' }
  if (row.status === 'INVALID') throw new CredentialError('CREDENTIAL_INVALID', undefined, reasonOf(row.last_error_code))
  const metadata = JSON.parse(row.metadata) as Record<string, unknown>
  if (input.provider === 'http' && metadata.validation_url === undefined) {
    // Nothing to check it against (no decrypt, no call): only that its destination is still allowed.
    try {
      parseHttpMetadata(metadata, (await orgPolicy(deps, input.org_slug)).cfg)
    } catch (err) {
      if (err instanceof CredentialFormatError) throw new CredentialError('DESTINATION_NOT_ALLOWED', err.field)
      throw err
    }
    return { credential_id: row.credential_id, status: 'PENDING' }
  }
  let check = firstUseChecks.get(row.credential_id)
  if (!check) {
    check = checkActive(deps, input, input.provider).finally(() => firstUseChecks.delete(row.credential_id))
    firstUseChecks.set(row.credential_id, check)
  }
  const { id, outcome } = await check
  if (outcome.status === 'INVALID') throw new CredentialError('CREDENTIAL_REJECTED', undefined, outcome.error_code ?? 'UPSTREAM_ERROR')
  return { credential_id: id, status: outcome.status }
}

const REASONS = new Set<string>(['UNAUTHORIZED', 'TIMEOUT', 'UNREACHABLE', 'UPSTREAM_ERROR'])
function reasonOf(code: string | null): ValidationErrorCode | undefined {
  return code && REASONS.has(code) ? (code as ValidationErrorCode) : undefined
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

/**
 * Cheap check without decrypting or calling out: an active credential exists (else
 * INTEGRATION_NOT_CONFIGURED) and is VALID (else CREDENTIAL_INVALID / CREDENTIAL_PENDING). The
 * routes and the scheduler use ensureUsableCredential, which validates a PENDING one instead.
 */
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
