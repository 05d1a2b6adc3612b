// Which error codes a route can answer with: those of its guard (authentication, rate limits), of
// its input validation (params, query, headers, body parsing) and those its handler declares in
// operations.ts. The OpenAPI document lists exactly these statuses per operation.
import { ERROR_CODES, type ErrorCode } from '../errors.js'
import type { GuardKind } from '../dependencies/auth.js'

/** Codes every route can produce: the global ceiling, the failed-auth block, the per-IP limit, a 500. */
const EVERY_ROUTE: ErrorCode[] = ['GLOBAL_RATE_LIMITED', 'AUTH_RATE_LIMITED', 'IP_RATE_LIMITED', 'INTERNAL_ERROR']

const GUARD_CODES: Record<GuardKind, ErrorCode[]> = {
  public: [],
  admin: ['MISSING_ROOT_KEY', 'INVALID_ROOT_KEY', 'ADMIN_REQUIRED'],
  org: ['MISSING_API_KEY', 'INVALID_API_KEY', 'ORG_RATE_LIMITED'],
  // The root key path never yields ADMIN_REQUIRED or MISSING_ROOT_KEY: it runs only when that header is sent.
  org_or_admin: ['MISSING_API_KEY', 'INVALID_API_KEY', 'INVALID_ROOT_KEY', 'ORG_RATE_LIMITED'],
}

export interface RouteShape {
  method: string
  url: string
  auth: GuardKind
  /** Which input parts the route validates: params, querystring, body, headers. */
  input: string[]
}

export function guardCodes(route: RouteShape): ErrorCode[] {
  const codes = [...GUARD_CODES[route.auth]]
  // An org key only mismatches when the path names an org.
  if ((route.auth === 'org' || route.auth === 'org_or_admin') && route.url.includes(':org_slug')) codes.push('ORG_MISMATCH')
  // A console session cookie stands in for the key: it can have ended, and a mutation needs its CSRF token.
  if (route.auth !== 'public') codes.push('SESSION_EXPIRED')
  if (route.auth !== 'public' && route.method !== 'GET') codes.push('CSRF_TOKEN_INVALID')
  return codes
}

export function inputCodes(route: RouteShape): ErrorCode[] {
  const codes: ErrorCode[] = []
  // Every route validates its query (no schema = no query accepted).
  if (route.input.length > 0) codes.push('VALIDATION_FAILED')
  if (route.input.includes('body')) codes.push('INVALID_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE')
  return codes
}

/** Every code the route can answer with, deduplicated, in catalogue order. */
export function routeErrorCodes(route: RouteShape, handlerCodes: readonly ErrorCode[]): ErrorCode[] {
  const all = new Set<ErrorCode>([...EVERY_ROUTE, ...guardCodes(route), ...inputCodes(route), ...handlerCodes])
  return (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => all.has(c))
}

/** Codes grouped by HTTP status, statuses ascending. */
export function byStatus(codes: readonly ErrorCode[]): Map<number, ErrorCode[]> {
  const out = new Map<number, ErrorCode[]>()
  for (const c of codes) {
    const status = ERROR_CODES[c]
    out.set(status, [...(out.get(status) ?? []), c])
  }
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]))
}
