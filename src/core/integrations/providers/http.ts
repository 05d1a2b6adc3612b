// A generic HTTP API credential: a bearer token, a custom header value, or `user:password` for basic
// auth, with the API's base URL in metadata. Validation calls `validation_url` when one is given;
// without it the credential is stored as PENDING (format checked, not proven).
import { checkUrl, egressOptionsFromConfig } from '../../http/egress.js'
import { EgressError } from '../../http/types.js'
import { expectOk, outcome, VALIDATION_MAX_BYTES, VALIDATION_TIMEOUT_MS } from './outcome.js'
import { CredentialFormatError, type ProviderConfig, type ProviderModule } from './types.js'

export type HttpAuthType = 'bearer' | 'header' | 'basic'

export interface HttpCredentialMetadata {
  auth_type: HttpAuthType
  base_url: string
  header_name?: string
  validation_url?: string
}

const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade',
  'te', 'trailer', 'proxy-authorization', 'cookie', 'expect',
])

function checkTarget(field: string, raw: unknown, cfg: ProviderConfig, extraHosts: readonly string[]): string {
  if (typeof raw !== 'string' || raw.length > 2048) throw new CredentialFormatError(field, 'must be a URL')
  const opts = egressOptionsFromConfig(cfg)
  // Shape first (a malformed URL is a format error), then policy (a well-formed URL the egress rules
  // refuse is a destination error), so the two are told apart.
  try {
    checkUrl(raw, { allowLoopback: true, production: false, allowedHosts: [] })
  } catch (err) {
    if (!(err instanceof EgressError && err.code === 'BLOCKED_DESTINATION')) throw new CredentialFormatError(field, 'must be an http(s) URL')
  }
  if (new URL(raw).protocol === 'http:' && (opts.production || !cfg.egress.allowLoopback)) throw new CredentialFormatError(field, 'must use https')
  let url: URL
  try {
    url = checkUrl(raw, opts, extraHosts)
  } catch {
    throw new CredentialFormatError(field, 'is not an allowed destination', 'destination')
  }
  return url.toString()
}

/** Checks and normalizes the metadata of an http credential. */
export function parseHttpMetadata(metadata: Record<string, unknown>, cfg: ProviderConfig): HttpCredentialMetadata {
  const extraHosts = cfg.orgAllowedHosts ?? []
  const authType = metadata.auth_type
  if (authType !== 'bearer' && authType !== 'header' && authType !== 'basic') {
    throw new CredentialFormatError('metadata.auth_type', 'must be bearer, header or basic')
  }
  const out: HttpCredentialMetadata = { auth_type: authType, base_url: checkTarget('metadata.base_url', metadata.base_url, cfg, extraHosts) }
  if (authType === 'header') {
    const name = metadata.header_name
    if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9-]{0,63}$/.test(name) || RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new CredentialFormatError('metadata.header_name', 'must be a header name')
    }
    out.header_name = name
  } else if (metadata.header_name !== undefined) {
    throw new CredentialFormatError('metadata.header_name', 'is only used with auth_type header')
  }
  if (metadata.validation_url !== undefined) {
    const v = checkTarget('metadata.validation_url', metadata.validation_url, cfg, extraHosts)
    // The credential is only ever sent to the API it belongs to.
    if (new URL(v).origin !== new URL(out.base_url).origin) {
      throw new CredentialFormatError('metadata.validation_url', 'must be on the base_url origin')
    }
    out.validation_url = v
  }
  return out
}

/** The request headers that carry an http credential. */
export function httpAuthHeaders(credential: string, meta: Pick<HttpCredentialMetadata, 'auth_type' | 'header_name'>): Record<string, string> {
  switch (meta.auth_type) {
    case 'bearer':
      return { authorization: `Bearer ${credential}` }
    case 'basic':
      return { authorization: `Basic ${Buffer.from(credential, 'utf8').toString('base64')}` }
    case 'header':
      return { [meta.header_name!.toLowerCase()]: credential }
  }
}

export const httpProvider: ProviderModule = {
  name: 'http',
  checkFormat(credential, metadata, cfg) {
    const meta = parseHttpMetadata(metadata, cfg)
    if (!/^[\x20-\x7e]+$/.test(credential)) throw new CredentialFormatError('credential', 'must be printable ASCII')
    if (meta.auth_type === 'basic' && credential.indexOf(':') < 1) throw new CredentialFormatError('credential', 'must be user:password')
    if (meta.auth_type !== 'basic' && /\s/.test(credential)) throw new CredentialFormatError('credential', 'must not contain spaces')
    return { ...metadata, ...meta }
  },
  async validate(credential, metadata, http, cfg, signal) {
    const meta = parseHttpMetadata(metadata, cfg)
    if (!meta.validation_url) return { status: 'PENDING' }
    return outcome(async () => {
      const res = await http.request(meta.validation_url!, {
        headers: { ...httpAuthHeaders(credential, meta), accept: 'application/json' },
        signal,
        timeoutMs: VALIDATION_TIMEOUT_MS,
        maxBytes: VALIDATION_MAX_BYTES,
      })
      expectOk(res)
    })
  },
}
