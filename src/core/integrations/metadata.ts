// Checks on what is stored in clear beside a credential: the metadata object and the fingerprint.
import type { IntegrationProvider } from '../processors/types.js'
import { CredentialFormatError } from './providers/types.js'

const MAX_METADATA_BYTES = 4096
const MAX_METADATA_KEYS = 32
// Metadata is stored unencrypted, so anything named like a secret is refused rather than stored.
const SECRET_KEY = /(secret|password|passwd|token|private|credential|api_?key|auth(?!_type))/i

/** A flat JSON object of short scalars, with no secret-looking keys. */
export function checkMetadata(raw: unknown): Record<string, unknown> {
  if (raw === undefined || raw === null) return {}
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new CredentialFormatError('metadata', 'must be an object')
  const entries = Object.entries(raw as Record<string, unknown>)
  if (entries.length > MAX_METADATA_KEYS) throw new CredentialFormatError('metadata', 'has too many keys')
  for (const [k, v] of entries) {
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(k)) throw new CredentialFormatError('metadata', 'keys must be snake_case identifiers')
    if (SECRET_KEY.test(k)) throw new CredentialFormatError(`metadata.${k}`, 'must not hold a secret; put it in credential')
    const ok = (typeof v === 'string' && v.length <= 2048) || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
    if (!ok) throw new CredentialFormatError(`metadata.${k}`, 'must be a short string, number or boolean')
  }
  if (Buffer.byteLength(JSON.stringify(raw)) > MAX_METADATA_BYTES) throw new CredentialFormatError('metadata', 'is too large')
  return { ...(raw as Record<string, unknown>) }
}

/**
 * The 4 characters shown to identify a credential. API keys and tokens: their last 4. A service-account
 * JSON ends in punctuation, so its key id is used; for basic auth the user name is used, so no part of
 * the password is ever shown.
 */
export function fingerprintFor(provider: IntegrationProvider, credential: string, metadata: Record<string, unknown>): string {
  if (provider === 'gcp') {
    try {
      const id = (JSON.parse(credential) as { private_key_id?: unknown }).private_key_id
      if (typeof id === 'string' && id.length >= 4) return id.slice(-4)
    } catch {
      /* format was checked before; fall through */
    }
    return String(metadata.client_email ?? '').split('@')[0]!.slice(-4) || '----'
  }
  if (provider === 'http' && metadata.auth_type === 'basic') return credential.slice(0, credential.indexOf(':')).slice(-4)
  return credential.slice(-4)
}
