// The platform service account's access token for BigQuery: an RS256 JWT (signed with node:crypto by
// the integrations module's signAssertion) exchanged at the token endpoint, cached until shortly
// before it expires. One exchange at a time per process; the token is never logged or returned.
import type { EgressClient } from '../../http/types.js'
import { signAssertion, type ServiceAccountKey } from '../../integrations/providers/gcp.js'
import { DatasetError } from '../errors.js'

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
export const BIGQUERY_SCOPE = 'https://www.googleapis.com/auth/bigquery'
const TOKEN_TIMEOUT_MS = 15_000
const REFRESH_BEFORE_MS = 60_000
const MAX_TOKEN_BYTES = 64 * 1024

/** The token endpoint refused the key (4xx): retrying cannot help. */
export class TokenRefusedError extends DatasetError {
  constructor(status: number) {
    super('DATASET_UNAVAILABLE', `bigquery credential refused by the token endpoint (HTTP ${status})`)
  }
}

export interface TokenSource {
  /** A valid access token; DATASET_UNAVAILABLE when the endpoint cannot be reached or refuses the key. */
  token(signal?: AbortSignal): Promise<string>
  /** Forget the cached token (after a 401). */
  invalidate(): void
}

export function serviceAccountTokenSource(opts: {
  key: ServiceAccountKey
  http: EgressClient
  tokenUrl: string | null
  now?: () => number
}): TokenSource {
  const now = opts.now ?? Date.now
  const tokenUrl = opts.tokenUrl ?? opts.key.token_uri
  let cached: { token: string; expiresAt: number } | null = null
  let inflight: Promise<string> | null = null

  async function exchange(signal?: AbortSignal): Promise<string> {
    const body = new URLSearchParams({ grant_type: JWT_BEARER, assertion: signAssertion(opts.key, tokenUrl, now(), BIGQUERY_SCOPE) }).toString()
    let res
    try {
      res = await opts.http.request(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal,
        timeoutMs: TOKEN_TIMEOUT_MS,
        maxBytes: MAX_TOKEN_BYTES,
      })
    } catch (err) {
      if (signal?.aborted) throw err
      throw new DatasetError('DATASET_UNAVAILABLE', 'bigquery token endpoint unreachable')
    }
    if (res.status >= 400 && res.status < 500 && res.status !== 429) throw new TokenRefusedError(res.status)
    if (res.status !== 200) throw new DatasetError('DATASET_UNAVAILABLE', `bigquery token endpoint failed (HTTP ${res.status})`)
    let parsed: { access_token?: unknown; expires_in?: unknown }
    try {
      parsed = res.json()
    } catch {
      throw new DatasetError('DATASET_UNAVAILABLE', 'bigquery token exchange: malformed answer')
    }
    const token = parsed?.access_token
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) {
      throw new DatasetError('DATASET_UNAVAILABLE', 'bigquery token exchange: malformed answer')
    }
    const ttlS = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? Math.min(parsed.expires_in, 3600) : 300
    cached = { token, expiresAt: now() + ttlS * 1000 - REFRESH_BEFORE_MS }
    return token
  }

  return {
    async token(signal) {
      if (cached && now() < cached.expiresAt) return cached.token
      if (!inflight) inflight = exchange(signal).finally(() => (inflight = null))
      return inflight
    },
    invalidate() {
      cached = null
    },
  }
}
