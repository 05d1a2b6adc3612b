// Request rate limits (SPEC §8.6): per org (plan's requests/min), per org for pipeline triggers,
// per client IP for unauthenticated and failed-auth traffic, and a global ceiling. Counters live in
// memory on the embedded store, in PostgreSQL when running on it, or in Redis when REDIS_URL is set,
// so every instance shares them. 429s carry Retry-After (seconds) and RateLimit-* headers.
// A failing shared store (Redis timeout or disconnect, PostgreSQL table/query failure) is logged once,
// reported by storeHealth() (readiness "degraded"), and limits fall back as configured
// (RATE_LIMIT_STORE_FALLBACK); while failing, one request per second probes the store.
import type { FastifyReply } from 'fastify'
import type pg from 'pg'
import { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { RateLimiterPostgres, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import type { Logger } from 'pino'
import { ApiError, type ErrorCode } from '../errors.js'
import { RATE_LIMIT_TABLE } from '../../core/db/rate-limit-table.js'
import { PgBlockLimiter } from './pg-block-limiter.js'

/** What a limit needs: one point, resolved with what is left or rejected with a RateLimiterRes. */
interface Limiter {
  consume(key: string, points?: number): Promise<RateLimiterRes>
}

export type LimitKind = 'org' | 'trigger' | 'ip' | 'auth_fail' | 'global'

const CODES: Record<LimitKind, ErrorCode> = {
  org: 'ORG_RATE_LIMITED',
  trigger: 'TRIGGER_RATE_LIMITED',
  ip: 'IP_RATE_LIMITED',
  auth_fail: 'AUTH_RATE_LIMITED',
  global: 'GLOBAL_RATE_LIMITED',
}

export interface RateLimitStore {
  kind: 'memory' | 'postgres' | 'redis'
  pgPool?: pg.Pool
  redisUrl?: string
  /** Redis: TCP connect and per-command reply timeouts (a silent Redis must not hang requests). */
  redisConnectTimeoutMs?: number
  redisCommandTimeoutMs?: number
}

/**
 * What a limit decides while the shared store (Redis / the PostgreSQL table) is failing:
 * - `memory`: count in this process's memory (limits hold per process, not across processes);
 * - `deny`: per-org and per-trigger limits refuse with 503 (fail closed). Per-IP and failed-auth limits
 *   always fall back to memory, so health probes still answer and brute-force protection stays on.
 */
export type RateLimitFallback = 'memory' | 'deny'

export interface RateLimitOptions {
  enabled: boolean
  globalPerMinute: number
  ipPerMinute: number
  failedAuthPerMinute: number
  fallback?: RateLimitFallback
  logger?: Pick<Logger, 'error' | 'info'>
}

/** The shared counter store as readiness reports it. `reason` never carries a URL or driver text. */
export interface RateLimitStoreHealth {
  store: RateLimitStore['kind']
  healthy: boolean
  reason: string | null
}

const TABLE = RATE_LIMIT_TABLE
/** While the store is failing, at most one request per interval probes it; the rest use the fallback. */
const PROBE_INTERVAL_MS = 1000
/** A failed table creation is retried, at most once per interval (never cached forever). */
const TABLE_RETRY_MS = 1000

function storeFailureReason(store: RateLimitStore['kind'], err: unknown): string {
  const msg = err instanceof Error ? err.message : ''
  if (store === 'redis') {
    if (msg.includes('timed out')) return 'command timed out'
    if (msg.includes("isn't writeable") || msg.includes('Connection is closed')) return 'not connected'
    return 'command failed'
  }
  return msg.includes('table creation') ? 'table could not be created' : 'query failed'
}

/**
 * Fixed one-minute windows per key, in this process's memory, decided synchronously: the library's
 * memory limiter answers with a promise, a cost on every request for a counter that is only a map
 * entry. A window starts at a key's first point, like the library's. At most `max` keys are kept (the
 * least recently used go first), so a flood of distinct keys cannot grow memory without bound.
 */
export class MemoryWindows implements Limiter {
  private readonly windows: LRUCache<string, { used: number; resetAt: number }>
  constructor(
    private readonly points: number,
    private readonly durationMs = 60_000,
    max = 100_000,
  ) {
    this.windows = new LRUCache({ max })
  }

  /** One point now: what is left, or a thrown RateLimiterRes when the window is spent (as the library does). */
  takeNow(key: string, now = Date.now()): RateLimiterRes {
    let w = this.windows.get(key)
    if (!w || w.resetAt <= now) this.windows.set(key, (w = { used: 0, resetAt: now + this.durationMs }))
    w.used++
    const res = new RateLimiterRes(Math.max(0, this.points - w.used), w.resetAt - now, w.used, w.used === 1)
    if (w.used > this.points) throw res
    return res
  }

  async consume(key: string, points = 1): Promise<RateLimiterRes> {
    if (points !== 1) throw new Error('memory windows take one point at a time')
    return this.takeNow(key)
  }
}

export class RateLimits {
  private readonly limiters = new Map<string, Limiter>()
  private readonly fallbacks = new Map<string, MemoryWindows>()
  private readonly memory = new Map<string, MemoryWindows>()
  private redis: Redis | null = null
  private tableReady: Promise<void> | null = null
  private tableRetryAt = 0
  private failure: string | null = null
  private nextProbeAt = 0
  /** IPs over the failed-auth limit, blocked on this instance without a store round trip. */
  private readonly blocked = new LRUCache<string, number>({ max: 50_000 })
  private readonly global: MemoryWindows
  /** Counters live in Redis or PostgreSQL (every instance shares them), not in this process. */
  private readonly shared: boolean

  constructor(private readonly store: RateLimitStore, private readonly opts: RateLimitOptions) {
    // The global ceiling protects this process, so it is kept per instance.
    this.global = new MemoryWindows(opts.globalPerMinute)
    this.shared = (store.kind === 'redis' && !!store.redisUrl) || (store.kind === 'postgres' && store.pgPool !== undefined)
    if (store.kind === 'redis' && store.redisUrl) {
      this.redis = new Redis(store.redisUrl, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
        connectTimeout: store.redisConnectTimeoutMs ?? 3000,
        commandTimeout: store.redisCommandTimeoutMs ?? 1000,
      })
      // ioredis reconnects by itself (with backoff); the error text may name the host, so only a fixed reason is kept.
      this.redis.on('error', () => this.markFailed('connection failed'))
      this.redis.on('ready', () => this.markHealthy())
    }
  }

  /** For /health/ready: Redis not connected, or the last store operation failed. */
  storeHealth(): RateLimitStoreHealth {
    const store = this.store.kind === 'redis' && this.redis ? 'redis' : this.store.kind === 'postgres' && this.store.pgPool ? 'postgres' : 'memory'
    if (store === 'memory' || !this.opts.enabled) return { store, healthy: true, reason: null }
    if (this.failure) return { store, healthy: false, reason: this.failure }
    if (this.redis && this.redis.status !== 'ready') return { store, healthy: false, reason: 'not connected' }
    return { store, healthy: true, reason: null }
  }

  private markFailed(reason: string): void {
    if (this.failure === null) {
      const fallback = this.opts.fallback ?? 'memory'
      this.opts.logger?.error({ store: this.store.kind, reason, fallback }, 'rate-limit store unavailable; limits fall back')
    }
    this.failure = reason
    this.nextProbeAt = Date.now() + PROBE_INTERVAL_MS
  }

  private markHealthy(): void {
    if (this.failure === null) return
    this.failure = null
    this.opts.logger?.info({ store: this.store.kind }, 'rate-limit store available again')
  }

  /** Per-process counters used while the shared store fails (or for kinds that never fail closed). */
  private fallbackLimiter(kind: LimitKind, points: number): MemoryWindows {
    return windowsFor(this.fallbacks, kind, points)
  }

  private ensureTable(pool: pg.Pool, base: { points: number; duration: number; keyPrefix: string }): Promise<void> {
    if (this.tableReady) return this.tableReady
    if (Date.now() < this.tableRetryAt) return Promise.reject(new Error('rate-limit table creation failed recently'))
    const ready = new Promise<void>((resolve, reject) => {
      new RateLimiterPostgres(
        { ...base, storeClient: pool, tableName: TABLE, clearExpiredByTimeout: false },
        (err?: unknown) => (err ? reject(new Error('rate-limit table creation failed')) : resolve()),
      )
    })
    this.tableReady = ready
    ready.catch(() => {
      // Not cached: a later request tries again (at most once per TABLE_RETRY_MS).
      if (this.tableReady === ready) this.tableReady = null
      this.tableRetryAt = Date.now() + TABLE_RETRY_MS
    })
    return ready
  }

  get enabled(): boolean {
    return this.opts.enabled
  }

  private async limiter(kind: LimitKind, points: number): Promise<Limiter> {
    const name = `${kind}:${points}`
    const existing = this.limiters.get(name)
    if (existing) return existing
    const base = { points, duration: 60, keyPrefix: `tf_${kind}_${points}` }
    let l: Limiter
    // No insurance limiter: a store failure is handled (logged, reported, fallback) in consume().
    if (this.redis) {
      l = new RateLimiterRedis({ ...base, storeClient: this.redis })
    } else if (this.store.kind === 'postgres' && this.store.pgPool) {
      const pool = this.store.pgPool
      await this.ensureTable(pool, base)
      // Points are reserved in blocks, so a busy org costs one write per block, not one per request.
      l = new PgBlockLimiter(pool, points, base.keyPrefix, TABLE)
    } else {
      l = windowsFor(this.memory, kind, points)
    }
    if (this.limiters.size > 1000) this.limiters.clear()
    this.limiters.set(name, l)
    return l
  }

  /** One point from the shared store; when the store fails, from the configured fallback. */
  private async take(kind: LimitKind, key: string, perMinute: number): Promise<RateLimiterRes> {
    const probing = this.failure !== null
    if (!probing || Date.now() >= this.nextProbeAt) {
      if (probing) this.nextProbeAt = Date.now() + PROBE_INTERVAL_MS
      try {
        const res = await (await this.limiter(kind, perMinute)).consume(key, 1)
        this.markHealthy()
        return res
      } catch (err) {
        if (err instanceof RateLimiterRes) {
          this.markHealthy()
          throw err
        }
        this.markFailed(storeFailureReason(this.store.kind, err))
      }
    }
    if ((this.opts.fallback ?? 'memory') === 'deny' && (kind === 'org' || kind === 'trigger')) throw new ApiError('SERVICE_UNAVAILABLE')
    return this.fallbackLimiter(kind, perMinute).consume(key, 1)
  }

  /** Consumes one point; on refusal throws a 429 ApiError with Retry-After. Sets RateLimit headers on the reply. */
  async consume(kind: LimitKind, key: string, perMinute: number, reply?: FastifyReply): Promise<void> {
    if (this.consumeNow(kind, key, perMinute, reply)) return
    try {
      const res = await this.take(kind, key, perMinute)
      if (reply) setHeaders(reply, kind, perMinute, res)
    } catch (err) {
      throw refusal(kind, perMinute, err)
    }
  }

  /**
   * Decides at once when the kind's counters are in this process (the global ceiling always; every
   * kind on the embedded store): true when decided (a refusal throws the 429), false when the
   * counters are shared and the caller must await consume().
   */
  consumeNow(kind: LimitKind, key: string, perMinute: number, reply?: FastifyReply): boolean {
    if (!this.opts.enabled) return true
    if (kind !== 'global' && this.shared) return false
    const windows = kind === 'global' ? this.global : windowsFor(this.memory, kind, perMinute)
    try {
      const res = windows.takeNow(key)
      if (reply) setHeaders(reply, kind, perMinute, res)
    } catch (err) {
      throw refusal(kind, perMinute, err)
    }
    return true
  }

  /** The process's global ceiling: always in memory, so always decided at once. */
  checkGlobal(): void {
    this.consumeNow('global', 'all', this.opts.globalPerMinute)
  }

  async checkIp(ip: string, reply?: FastifyReply): Promise<void> {
    await this.consume('ip', ip, this.opts.ipPerMinute, reply)
  }

  /** Throws 429 if this IP is currently blocked for failed authentications. */
  assertNotBlocked(ip: string, now = Date.now()): void {
    if (!this.opts.enabled) return
    const until = this.blocked.get(ip)
    if (until === undefined) return
    if (until <= now) {
      this.blocked.delete(ip)
      return
    }
    const retryAfter = Math.max(1, Math.ceil((until - now) / 1000))
    throw new ApiError('AUTH_RATE_LIMITED', { retryAfterSeconds: retryAfter })
  }

  /** Counts a failed authentication; when the IP goes over the limit it is blocked and a 429 is thrown. */
  async recordFailedAuth(ip: string): Promise<void> {
    if (!this.opts.enabled) return
    try {
      await this.consume('auth_fail', ip, this.opts.failedAuthPerMinute)
    } catch (err) {
      if (err instanceof ApiError) this.blocked.set(ip, Date.now() + (err.options.retryAfterSeconds ?? 60) * 1000)
      throw err
    }
  }

  async close(): Promise<void> {
    if (this.redis) {
      this.redis.disconnect()
      this.redis = null
    }
  }
}

/** The per-process windows for one kind and limit (at most 1000 distinct limits are kept). */
function windowsFor(map: Map<string, MemoryWindows>, kind: LimitKind, points: number): MemoryWindows {
  const name = `${kind}:${points}`
  let w = map.get(name)
  if (!w) {
    if (map.size > 1000) map.clear()
    map.set(name, (w = new MemoryWindows(points)))
  }
  return w
}

/** A spent window becomes the kind's 429 with Retry-After and RateLimit headers; any other error passes through. */
function refusal(kind: LimitKind, perMinute: number, err: unknown): unknown {
  if (!(err instanceof RateLimiterRes)) return err
  const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000))
  const headers: Record<string, string> = {
    'RateLimit-Policy': `"${kind}";q=${perMinute};w=60`,
    RateLimit: `"${kind}";r=0;t=${retryAfter}`,
  }
  return new ApiError(CODES[kind], { retryAfterSeconds: retryAfter, headers })
}

function setHeaders(reply: FastifyReply, kind: LimitKind, perMinute: number, res: RateLimiterRes): void {
  const reset = Math.max(0, Math.ceil(res.msBeforeNext / 1000))
  reply.header('RateLimit-Policy', `"${kind}";q=${perMinute};w=60`)
  reply.header('RateLimit', `"${kind}";r=${Math.max(0, res.remainingPoints)};t=${reset}`)
}
