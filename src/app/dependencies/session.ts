// Console sessions as a second way to PRESENT credentials, not a second way to authorize: the guards
// in auth.ts call resolveSession() when no key header is sent, and then apply the same org-slug
// checks, rate limits and quotas. A session resolves to the same AuthContext its key would, through
// AuthService's cached key lookups (so rotation, revocation, suspension and offboarding end it).
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../../core/db/schema.js'
import type { Clock } from '../../core/clock.js'
import { csrfMatches, endSession, findSession, rootTagOf, type SessionPolicy, type SessionRow } from '../../core/sessions/store.js'
import type { AuthContext, AuthService } from './auth.js'

export const SESSION_COOKIE = 'tf_session'
/** Behind TLS the cookie carries the __Host- prefix: Secure, Path=/, no Domain enforced by the browser. */
export const SECURE_SESSION_COOKIE = '__Host-tf_session'
export const CSRF_HEADER = 'x-tf-csrf'

export interface PresentedSession {
  token: string
  row: SessionRow
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the request's principal came from a console session cookie (not a key header). */
    consoleSession: PresentedSession | null
  }
}

/** The session token from the Cookie header, if any (a tiny parser: one cookie name, no decoding). */
export function sessionTokenOf(req: FastifyRequest): string | undefined {
  const raw = req.headers.cookie
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 8192) return undefined
  for (const part of raw.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    if (name === SESSION_COOKIE || name === SECURE_SESSION_COOKIE) {
      const v = part.slice(eq + 1).trim()
      if (v.length > 0 && v.length <= 128) return v
    }
  }
  return undefined
}

export function isSecureRequest(req: FastifyRequest, forceSecure: boolean): boolean {
  return forceSecure || req.protocol === 'https'
}

export function sessionCookie(req: FastifyRequest, token: string, maxAgeSeconds: number, forceSecure: boolean): string {
  const secure = isSecureRequest(req, forceSecure)
  const name = secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE
  return `${name}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`
}

/** Set-Cookie values that delete the session cookie under both names. */
export function clearedSessionCookies(req: FastifyRequest, forceSecure: boolean): string[] {
  const out = [`${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`]
  if (isSecureRequest(req, forceSecure)) out.push(`${SECURE_SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure`)
  return out
}

export interface SessionServiceOptions extends SessionPolicy {
  /** Always mark the cookie Secure (production behind a TLS terminator the app cannot see). */
  forceSecureCookie: boolean
}

export class SessionService {
  readonly rootTag: string

  constructor(
    private readonly db: Kysely<Database>,
    private readonly auth: AuthService,
    private readonly clock: Clock,
    rootKey: string,
    readonly options: SessionServiceOptions,
  ) {
    this.rootTag = rootTagOf(rootKey)
  }

  /**
   * The principal behind a session token, or null when the session is unknown, expired, or no
   * longer backed by a working key (the session row is then deleted).
   */
  async resolve(token: string): Promise<{ ctx: AuthContext; row: SessionRow } | null> {
    const row = await findSession(this.db, token, this.options, this.clock.now())
    if (!row) return null
    if (row.principal === 'admin') {
      if (row.root_tag === this.rootTag) return { ctx: { kind: 'admin' }, row }
    } else if (row.key_id) {
      const identity = await this.auth.verifyOrgKeyId(row.key_id)
      // A rotation with grace leaves the old key working for API clients but sets its expiry: the
      // console session ends at the rotation itself.
      const expiry = row.key_expires_at === null ? null : Number(row.key_expires_at)
      if (identity && identity.org_slug === row.org_slug && identity.key_expires_at === expiry) return { ctx: identity, row }
    }
    await endSession(this.db, row.session_hash)
    return null
  }
}

/** Mutations made with a session cookie must carry the session's CSRF token. */
export function sessionNeedsCsrf(req: FastifyRequest): boolean {
  return req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS'
}

export function csrfPresented(req: FastifyRequest, token: string): boolean {
  const v = req.headers[CSRF_HEADER]
  return typeof v === 'string' && v.length > 0 && v.length <= 128 && csrfMatches(token, v)
}

export function clearCookieOnReply(reply: FastifyReply, req: FastifyRequest, forceSecure: boolean): void {
  reply.header('Set-Cookie', clearedSessionCookies(req, forceSecure))
}
