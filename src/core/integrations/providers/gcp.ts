// GCP service-account keys. Validation is the documented OAuth2 JWT-bearer flow: an RS256-signed JWT
// (iss = client_email, aud = token URI, scope cloud-platform) is exchanged at the key's token_uri for an
// access token, then one cheap authorized call (GET project) proves the token is usable.
// `gcpAccessToken` is reused by the GCP processors; the token is returned, never stored.
import { createPrivateKey, createSign, type KeyObject } from 'node:crypto'
import type { EgressClient } from '../../http/types.js'
import { expectOk, joinUrl, outcome, VALIDATION_MAX_BYTES, VALIDATION_TIMEOUT_MS } from './outcome.js'
import { CredentialFormatError, ProviderCallError, type ProviderConfig, type ProviderModule } from './types.js'

/** A BigQuery table id `project.dataset.table` (the billing export gcp.billing reads; metadata.billing_table). */
export const BILLING_TABLE_ID = /^([a-z][a-z0-9-]{4,28}[a-z0-9])\.([A-Za-z_][A-Za-z0-9_]{0,127})\.([A-Za-z0-9_]{1,128})$/
export const BILLING_LOCATION = /^[A-Za-z][A-Za-z0-9-]{1,40}$/

export const GCP_SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'

export interface ServiceAccountKey {
  type: 'service_account'
  project_id: string
  private_key: string
  private_key_id?: string
  client_email: string
  token_uri: string
}

/** Parses and checks a service-account JSON key. Errors name the field only. */
export function parseServiceAccount(credential: string): ServiceAccountKey {
  let raw: unknown
  try {
    raw = JSON.parse(credential)
  } catch {
    throw new CredentialFormatError('credential', 'must be a service-account JSON key')
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new CredentialFormatError('credential', 'must be a JSON object')
  const sa = raw as Record<string, unknown>
  const str = (k: string) => (typeof sa[k] === 'string' ? (sa[k] as string) : '')
  if (sa.type !== 'service_account') throw new CredentialFormatError('credential.type', 'must be service_account')
  if (!/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(str('project_id'))) throw new CredentialFormatError('credential.project_id', 'is missing or invalid')
  if (!/^[^@\s]{1,128}@[A-Za-z0-9.-]{1,253}$/.test(str('client_email'))) throw new CredentialFormatError('credential.client_email', 'is missing or invalid')
  const pem = str('private_key')
  if (!/^-----BEGIN (RSA )?PRIVATE KEY-----/.test(pem.trim())) throw new CredentialFormatError('credential.private_key', 'must be a PEM private key')
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    throw new CredentialFormatError('credential.private_key', 'must be a PEM private key')
  }
  if (key.asymmetricKeyType !== 'rsa') throw new CredentialFormatError('credential.private_key', 'must be an RSA key')
  let tokenUri: URL
  try {
    tokenUri = new URL(str('token_uri'))
  } catch {
    throw new CredentialFormatError('credential.token_uri', 'must be a URL')
  }
  if (tokenUri.protocol !== 'https:' && tokenUri.protocol !== 'http:') throw new CredentialFormatError('credential.token_uri', 'must be an https URL')
  const kid = str('private_key_id')
  return {
    type: 'service_account',
    project_id: str('project_id'),
    private_key: pem,
    ...(kid ? { private_key_id: kid } : {}),
    client_email: str('client_email'),
    token_uri: tokenUri.toString(),
  }
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url')

/** The RS256 JWT assertion for the token exchange. */
export function signAssertion(sa: ServiceAccountKey, audience: string, nowMs: number, scope = GCP_SCOPE): string {
  const iat = Math.floor(nowMs / 1000)
  const header = { alg: 'RS256', typ: 'JWT', ...(sa.private_key_id ? { kid: sa.private_key_id } : {}) }
  const claims = { iss: sa.client_email, scope, aud: audience, iat, exp: iat + 3600 }
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
  const signature = createSign('RSA-SHA256').update(input).sign(sa.private_key)
  return `${input}.${b64url(signature)}`
}

/**
 * Exchanges the service account's signed JWT for an access token at its token URI (or the configured
 * override). Throws ProviderCallError with a sanitized code; EgressError('ABORTED') on caller abort.
 */
export async function gcpAccessToken(
  sa: ServiceAccountKey,
  http: EgressClient,
  cfg: ProviderConfig,
  signal?: AbortSignal,
  nowMs = Date.now(),
): Promise<string> {
  const tokenUri = cfg.providers.gcpTokenUri ?? sa.token_uri
  const body = new URLSearchParams({ grant_type: JWT_BEARER, assertion: signAssertion(sa, tokenUri, nowMs) }).toString()
  const res = await http.request(tokenUri, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body,
    signal,
    timeoutMs: VALIDATION_TIMEOUT_MS,
    maxBytes: VALIDATION_MAX_BYTES,
  })
  // The token endpoint answers a bad signature or unknown key with 400 invalid_grant.
  if (res.status === 400) {
    const error = safeJson(res)?.error
    if (error === 'invalid_grant' || error === 'invalid_client' || error === 'unauthorized_client') {
      throw new ProviderCallError('UNAUTHORIZED')
    }
  }
  expectOk(res)
  const token = safeJson(res)?.access_token
  if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw new ProviderCallError('UPSTREAM_ERROR')
  return token
}

function safeJson(res: { json<T>(): T }): Record<string, unknown> | null {
  try {
    const v = res.json<unknown>()
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null
  } catch {
    return null
  }
}

export const gcpProvider: ProviderModule = {
  name: 'gcp',
  checkFormat(credential, metadata) {
    const sa = parseServiceAccount(credential)
    const table = metadata.billing_table
    if (table !== undefined && (typeof table !== 'string' || !BILLING_TABLE_ID.test(table))) {
      throw new CredentialFormatError('metadata.billing_table', 'must be project.dataset.table')
    }
    const location = metadata.billing_location
    if (location !== undefined && (typeof location !== 'string' || !BILLING_LOCATION.test(location))) {
      throw new CredentialFormatError('metadata.billing_location', 'must be a BigQuery location such as US or EU')
    }
    // Identifiers only; the key stays in the ciphertext.
    return { ...metadata, project_id: sa.project_id, client_email: sa.client_email }
  },
  validate(credential, _metadata, http, cfg, signal) {
    return outcome(async () => {
      const sa = parseServiceAccount(credential)
      const token = await gcpAccessToken(sa, http, cfg, signal)
      const res = await http.request(joinUrl(cfg.providers.gcpApiBaseUrl, `/v1/projects/${encodeURIComponent(sa.project_id)}`), {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal,
        timeoutMs: VALIDATION_TIMEOUT_MS,
        maxBytes: VALIDATION_MAX_BYTES,
      })
      expectOk(res)
      if (safeJson(res) === null) throw new ProviderCallError('UPSTREAM_ERROR')
    })
  },
}
