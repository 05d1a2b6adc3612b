// Authentication (SPEC §4). Three guards — verifyAdminKey (root), getCurrentOrg (org key) and
// getOrgOrAdminAuth (either) — chosen per route by `config.auth`; the server refuses to start if a
// route declares none. Org keys are checked offline (format + CRC32) before one LIMIT 1 lookup by
// SHA-256 hash, whose result is cached briefly and evicted on every instance when keys or the org change.
import { hash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { Kysely } from 'kysely'
import type { Database, SubscriptionStatus } from '../../core/db/schema.js'
import type { EventBus } from '../../core/events/bus.js'
import type { Clock } from '../../core/clock.js'
import { hashApiKey, isWellFormedApiKey } from '../../core/security/api-keys.js'
import { ApiError } from '../errors.js'
import type { RateLimits } from './rate-limit.js'
import { csrfPresented, sessionNeedsCsrf, sessionTokenOf, SECURE_SESSION_COOKIE, SESSION_COOKIE, type PresentedSession, type SessionService } from './session.js'

export type GuardKind = 'admin' | 'org' | 'org_or_admin' | 'public'

export interface OrgIdentity {
  kind: 'org'
  org_slug: string
  /** The org incarnation's dataset id: what the org's data and idempotency records are bound to. */
  dataset_id: string
  key_id: string
  requests_per_minute: number
  triggers_per_minute: number
  key_expires_at: number | null
  subscription_status: SubscriptionStatus
  trial_end_at: number | null
}

export type AuthContext = { kind: 'admin' } | OrgIdentity

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: GuardKind
    /** An admin route that also accepts the METRICS_TOKEN (only /metrics). */
    scrape?: boolean
  }
  interface FastifyRequest {
    auth: AuthContext | null
  }
}

export interface AuthOptions {
  cacheTtlMs: number
  negativeCacheTtlMs: number
  cacheMax: number
  lastUsedFlushMs: number
}

/** Background retries of a failed cross-instance eviction broadcast. */
const EVICT_RETRY_DELAYS_MS = [1_000, 5_000, 15_000]

const sha256 = (s: string) => hash('sha256', s, 'buffer')

export class AuthService {
  private readonly positive: LRUCache<string, OrgIdentity>
  private readonly negative: LRUCache<string, true>
  /** Cached entries per org, so evicting one org does not walk the whole cache. */
  private readonly byOrg = new Map<string, Set<string>>()
  private readonly lastUsed = new Map<string, number>()
  private readonly rootDigest: Buffer
  private readonly metricsDigest: Buffer | null
  private generation = 0
  private flushTimer: NodeJS.Timeout | null = null
  lookups = 0

  constructor(
    private readonly db: Kysely<Database>,
    rootKey: string,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    private readonly opts: AuthOptions,
    metricsToken: string | null = null,
  ) {
    this.rootDigest = sha256(rootKey)
    this.metricsDigest = metricsToken ? sha256(metricsToken) : null
    this.positive = new LRUCache({
      max: opts.cacheMax,
      ttl: Math.max(1, opts.cacheTtlMs),
      dispose: (id, key) => this.unindex(id.org_slug, key),
    })
    this.negative = new LRUCache({ max: opts.cacheMax, ttl: Math.max(1, opts.negativeCacheTtlMs) })
    bus.subscribe((e) => {
      if (e.type === 'auth.evict_all') this.evictAllLocal()
      else if (e.type === 'auth.evict_org' && e.org_slug) this.evictOrgLocal(e.org_slug)
    })
  }

  start(): void {
    if (this.flushTimer) return
    this.flushTimer = setInterval(() => void this.flushLastUsed().catch(() => undefined), this.opts.lastUsedFlushMs)
    this.flushTimer.unref()
  }

  async stop(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer)
    this.flushTimer = null
    await this.flushLastUsed().catch(() => undefined)
  }

  /** Constant-time comparison of SHA-256 digests (equal lengths, so no length leak). */
  isRootKey(presented: string): boolean {
    return timingSafeEqual(sha256(presented), this.rootDigest)
  }

  /** Same comparison for the METRICS_TOKEN; false when none is configured. */
  isMetricsToken(presented: string): boolean {
    return this.metricsDigest !== null && timingSafeEqual(sha256(presented), this.metricsDigest)
  }

  /** Resolves an org key to its identity, or null. Never throws for bad input. */
  async verifyOrgKey(key: string): Promise<OrgIdentity | null> {
    if (!isWellFormedApiKey(key)) return null
    return this.lookupKey(hashApiKey(key), 'k.key_hash')
  }

  /**
   * Resolves a key by its id (a console session remembers the key it was opened with, never the key):
   * the same query, rules and caches as verifyOrgKey, so a revoked/expired key or a suspended org
   * ends the session exactly when it would refuse the key.
   */
  async verifyOrgKeyId(keyId: string): Promise<OrgIdentity | null> {
    if (!/^[A-Za-z0-9_]{1,64}$/.test(keyId)) return null
    return this.lookupKey(keyId, 'k.key_id')
  }

  /**
   * An org key's identity when it is cached and still valid, without waiting (runGuard's fast path);
   * undefined when the key must go through verifyOrgKey (not cached, expired, or malformed).
   */
  cachedOrgKey(key: string): OrgIdentity | undefined {
    // No format check first: only well-formed keys are ever cached, so a hit is one; a miss goes
    // the full way, which checks the format before any lookup.
    return this.cachedHit(hashApiKey(key), this.clock.now())
  }

  /** A cached identity still valid at `now` (its use is recorded); a stale entry is dropped. */
  private cachedHit(cacheKey: string, now: number): OrgIdentity | undefined {
    const cached = this.positive.get(cacheKey)
    if (!cached) return undefined
    if (!stillValid(cached, now)) {
      this.positive.delete(cacheKey)
      return undefined
    }
    this.touch(cached.key_id, now)
    return cached
  }

  private async lookupKey(value: string, column: 'k.key_hash' | 'k.key_id'): Promise<OrgIdentity | null> {
    const cacheKey = column === 'k.key_hash' ? value : `id:${value}`
    const now = this.clock.now()
    const cached = this.cachedHit(cacheKey, now)
    if (cached) return cached
    if (this.negative.has(cacheKey)) return null
    const gen = this.generation
    this.lookups++
    const row = await this.db
      .selectFrom('org_api_keys as k')
      .innerJoin('org_profiles as p', 'p.org_slug', 'k.org_slug')
      .innerJoin('org_subscriptions as s', 's.org_slug', 'k.org_slug')
      .select([
        'k.key_id',
        'k.org_slug',
        'p.dataset_id',
        'k.expires_at',
        's.status',
        's.trial_end_at',
        's.requests_per_minute',
        's.triggers_per_minute',
      ])
      .where(column, '=', value)
      .where('k.revoked_at', 'is', null)
      .where((eb) => eb.or([eb('k.expires_at', 'is', null), eb('k.expires_at', '>', now)]))
      .where('p.status', '=', 'ACTIVE')
      .where('s.status', 'in', ['ACTIVE', 'TRIAL'])
      .where((eb) => eb.or([eb('s.status', '=', 'ACTIVE'), eb('s.trial_end_at', 'is', null), eb('s.trial_end_at', '>', now)]))
      .limit(1)
      .executeTakeFirst()
    if (!row) {
      if (gen === this.generation) this.negative.set(cacheKey, true)
      return null
    }
    const identity: OrgIdentity = {
      kind: 'org',
      org_slug: row.org_slug,
      dataset_id: row.dataset_id,
      key_id: row.key_id,
      requests_per_minute: row.requests_per_minute,
      triggers_per_minute: row.triggers_per_minute,
      key_expires_at: row.expires_at,
      subscription_status: row.status,
      trial_end_at: row.trial_end_at,
    }
    // An eviction that ran while we were querying may have made this row stale: do not cache it.
    if (gen === this.generation) {
      this.positive.set(cacheKey, identity)
      let keys = this.byOrg.get(identity.org_slug)
      if (!keys) this.byOrg.set(identity.org_slug, (keys = new Set()))
      keys.add(cacheKey)
    }
    this.touch(identity.key_id, now)
    return identity
  }

  /** Evicts an org's cached keys here and on every other instance. */
  async evictOrg(orgSlug: string): Promise<void> {
    this.evictOrgLocal(orgSlug)
    await this.bus.publish({ type: 'auth.evict_org', org_slug: orgSlug })
  }

  /**
   * For a change that has already committed: evicts here at once, broadcasts to the other instances,
   * and never throws. A failed broadcast is retried in the background (the change is durable; other
   * instances' caches also expire within the cache TTL), so the caller can still answer with what it
   * committed (e.g. a rotated key) instead of a 500 that would hide it.
   */
  async evictOrgAfterCommit(orgSlug: string, onFailure: (err: unknown, attempt: number) => void): Promise<boolean> {
    this.evictOrgLocal(orgSlug)
    const attempt = async (n: number): Promise<boolean> => {
      try {
        await this.bus.publish({ type: 'auth.evict_org', org_slug: orgSlug })
        return true
      } catch (err) {
        onFailure(err, n)
        if (n < EVICT_RETRY_DELAYS_MS.length) setTimeout(() => void attempt(n + 1), EVICT_RETRY_DELAYS_MS[n]).unref()
        return false
      }
    }
    return attempt(0)
  }

  private evictOrgLocal(orgSlug: string): void {
    this.generation++
    for (const key of [...(this.byOrg.get(orgSlug) ?? [])]) this.positive.delete(key)
    this.byOrg.delete(orgSlug)
    this.negative.clear()
  }

  private unindex(orgSlug: string, key: string): void {
    const keys = this.byOrg.get(orgSlug)
    if (!keys) return
    keys.delete(key)
    if (keys.size === 0) this.byOrg.delete(orgSlug)
  }

  private evictAllLocal(): void {
    this.generation++
    this.positive.clear()
    this.negative.clear()
  }

  private touch(keyId: string, now: number): void {
    this.lastUsed.set(keyId, now)
  }

  /** Writes last_used_at for every key seen since the last flush: one UPDATE per 500 keys. */
  async flushLastUsed(): Promise<number> {
    if (this.lastUsed.size === 0) return 0
    const batch = [...this.lastUsed.entries()]
    this.lastUsed.clear()
    let written = 0
    for (let i = 0; i < batch.length; i += 500) {
      const chunk = batch.slice(i, i + 500)
      const at = Math.max(...chunk.map(([, t]) => t))
      try {
        const r = await this.db
          .updateTable('org_api_keys')
          .set({ last_used_at: at })
          .where('key_id', 'in', chunk.map(([id]) => id))
          .executeTakeFirst()
        written += Number(r.numUpdatedRows)
      } catch (err) {
        for (const [id, t] of chunk) if (!this.lastUsed.has(id)) this.lastUsed.set(id, t)
        throw err
      }
    }
    return written
  }
}

function stillValid(id: OrgIdentity, now: number): boolean {
  if (id.key_expires_at !== null && id.key_expires_at <= now) return false
  if (id.subscription_status === 'TRIAL' && id.trial_end_at !== null && id.trial_end_at <= now) return false
  return true
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name]
  if (typeof v !== 'string' || v.length === 0) return undefined
  return v
}

export interface GuardDeps {
  auth: AuthService
  rateLimits: RateLimits
  /** Console sessions (null when the console is off: cookies are then ignored). */
  sessions?: SessionService | null
}

type AuthFailure = 'INVALID_API_KEY' | 'INVALID_ROOT_KEY' | 'SESSION_EXPIRED' | 'INVALID_METRICS_TOKEN'

/**
 * A key that failed verification: a client address already blocked gets 429, otherwise the failure is
 * counted (and may block it). A valid key never reaches here, so it is never refused for failures.
 */
async function failAuth(deps: GuardDeps, req: FastifyRequest, code: AuthFailure, headers?: Record<string, string>): Promise<never> {
  deps.rateLimits.assertNotBlocked(req.ip)
  await deps.rateLimits.recordFailedAuth(req.ip)
  throw new ApiError(code, headers ? { headers } : {})
}

/**
 * The principal of a console session cookie, when no key header is sent (null without a cookie).
 * A cookie whose session is gone is a failed authentication that also deletes the cookie.
 */
async function sessionPrincipal(deps: GuardDeps, req: FastifyRequest): Promise<AuthContext | null> {
  if (!deps.sessions) return null
  const token = sessionTokenOf(req)
  if (token === undefined) return null
  const found = await deps.sessions.resolve(token)
  if (!found) {
    const secure = (req.headers.cookie ?? '').includes(SECURE_SESSION_COOKIE + '=')
    const clear = `${secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`
    return failAuth(deps, req, 'SESSION_EXPIRED', { 'Set-Cookie': clear })
  }
  req.consoleSession = { token, row: found.row }
  return found.ctx
}

function checkOrgPath(req: FastifyRequest, identity: OrgIdentity): OrgIdentity {
  const pathOrg = (req.params as Record<string, unknown> | undefined)?.org_slug
  if (pathOrg !== undefined && pathOrg !== identity.org_slug) throw new ApiError('ORG_MISMATCH')
  return identity
}

/** A missing key from a blocked client address is refused like a failed one (it is not counted). */
function missingKey(deps: GuardDeps, req: FastifyRequest, code: 'MISSING_API_KEY' | 'MISSING_ROOT_KEY'): never {
  deps.rateLimits.assertNotBlocked(req.ip)
  throw new ApiError(code)
}

/** verify_admin_key: the root key from the environment, compared in constant time (or an admin console session). */
export async function verifyAdminKey(deps: GuardDeps, req: FastifyRequest): Promise<AuthContext> {
  const root = header(req, 'x-ca-root-key')
  if (root === undefined) {
    if (header(req, 'x-api-key') !== undefined) throw new ApiError('ADMIN_REQUIRED')
    const session = await sessionPrincipal(deps, req)
    if (session?.kind === 'admin') return session
    if (session) throw new ApiError('ADMIN_REQUIRED')
    missingKey(deps, req, 'MISSING_ROOT_KEY')
  }
  if (root.length > 512 || !deps.auth.isRootKey(root)) return failAuth(deps, req, 'INVALID_ROOT_KEY')
  return { kind: 'admin' }
}

/** The metrics scrape token (METRICS_TOKEN): grants /metrics only; compared in constant time. */
async function verifyScrapeToken(deps: GuardDeps, req: FastifyRequest): Promise<void> {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header(req, 'authorization') ?? '')
  if (!m || !deps.auth.isMetricsToken(m[1]!)) return failAuth(deps, req, 'INVALID_METRICS_TOKEN')
}

/** get_current_org: an active org key (or an org console session) whose org matches the path's org_slug. */
export async function getCurrentOrg(deps: GuardDeps, req: FastifyRequest): Promise<OrgIdentity> {
  const key = header(req, 'x-api-key')
  if (key === undefined) {
    // The root key on an org-only route is refused as before; an admin session the same way.
    const session = header(req, 'x-ca-root-key') === undefined ? await sessionPrincipal(deps, req) : null
    if (session?.kind === 'org') return checkOrgPath(req, session)
    missingKey(deps, req, 'MISSING_API_KEY')
  }
  const identity = key.length <= 128 ? await deps.auth.verifyOrgKey(key) : null
  if (!identity) return failAuth(deps, req, 'INVALID_API_KEY')
  return checkOrgPath(req, identity)
}

/** get_org_or_admin_auth: the root key (any existing org) or the org's own key, same checks as above; a console session stands in for either. */
export async function getOrgOrAdminAuth(deps: GuardDeps, req: FastifyRequest): Promise<AuthContext> {
  if (header(req, 'x-ca-root-key') !== undefined) return verifyAdminKey(deps, req)
  if (header(req, 'x-api-key') !== undefined) return getCurrentOrg(deps, req)
  const session = await sessionPrincipal(deps, req)
  if (!session) missingKey(deps, req, 'MISSING_API_KEY')
  return session.kind === 'org' ? checkOrgPath(req, session) : session
}

/**
 * onRequest hook body: runs the route's guard, then the matching request rate limits. The common case
 * (an org key already in the cache, counters in this process) is decided without waiting: it returns
 * nothing, or throws the refusal; anything else returns the promise of the full check.
 */
export function runGuard(deps: GuardDeps, req: FastifyRequest, reply: FastifyReply): void | Promise<void> {
  const guard = req.routeOptions.config.auth ?? 'public'
  if (guard !== 'org' && guard !== 'org_or_admin') return guardInFull(deps, req, reply, guard)
  const key = header(req, 'x-api-key')
  if (key === undefined || key.length > 128 || header(req, 'x-ca-root-key') !== undefined) return guardInFull(deps, req, reply, guard)
  const identity = deps.auth.cachedOrgKey(key)
  if (!identity) return guardInFull(deps, req, reply, guard)
  // The same steps, in the same order, as below for a key: global ceiling, path org, org limit.
  req.auth = null
  req.consoleSession = null
  if (deps.rateLimits.enabled) deps.rateLimits.checkGlobal()
  checkOrgPath(req, identity)
  req.auth = identity
  if (deps.rateLimits.consumeNow('org', identity.org_slug, identity.requests_per_minute, reply)) return
  return deps.rateLimits.consume('org', identity.org_slug, identity.requests_per_minute, reply)
}

async function guardInFull(deps: GuardDeps, req: FastifyRequest, reply: FastifyReply, guard: GuardKind): Promise<void> {
  req.auth = null
  req.consoleSession = null
  // The failed-auth block is checked only on failing attempts (failAuth/missingKey), never here.
  if (deps.rateLimits.enabled) deps.rateLimits.checkGlobal()
  if (guard === 'public') {
    await deps.rateLimits.checkIp(req.ip, reply)
    return
  }
  // /metrics (config.scrape) also takes the METRICS_TOKEN as `Authorization: Bearer`, instead of the root key.
  if (guard === 'admin' && req.routeOptions.config.scrape && header(req, 'x-ca-root-key') === undefined && header(req, 'authorization') !== undefined) {
    try {
      await verifyScrapeToken(deps, req)
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) await deps.rateLimits.checkIp(req.ip)
      throw err
    }
    return
  }
  let ctx: AuthContext
  try {
    if (guard === 'admin') ctx = await verifyAdminKey(deps, req)
    else if (guard === 'org') ctx = await getCurrentOrg(deps, req)
    else ctx = await getOrgOrAdminAuth(deps, req)
  } catch (err) {
    // Unauthenticated traffic also counts against the per-IP limit.
    if (err instanceof ApiError && err.status === 401) await deps.rateLimits.checkIp(req.ip)
    throw err
  }
  // A cookie is sent by the browser on its own: a mutation must also prove it came from the console.
  const presented = req.consoleSession as PresentedSession | null // set by the guard above
  if (presented && sessionNeedsCsrf(req) && !csrfPresented(req, presented.token)) {
    throw new ApiError('CSRF_TOKEN_INVALID')
  }
  req.auth = ctx
  if (ctx.kind === 'org') await deps.rateLimits.consume('org', ctx.org_slug, ctx.requests_per_minute, reply)
}

/** Actor label for audit rows. */
export function actorOf(req: FastifyRequest): string {
  const a = req.auth
  if (!a) return 'anonymous'
  return a.kind === 'admin' ? 'root' : `key:${a.key_id}`
}

/** The org the request acts on: the authenticated org, or (root key) the path's org. */
export function requireOrgAuth(req: FastifyRequest): OrgIdentity {
  if (req.auth?.kind !== 'org') throw new ApiError('INVALID_API_KEY')
  return req.auth
}
