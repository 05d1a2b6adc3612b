// Request rate limits (SPEC §8.6): per org (plan's requests/min), per org for pipeline triggers,
// per client IP for unauthenticated and failed-auth traffic, and a global ceiling. Counters live in
// memory on the embedded store, in PostgreSQL when running on it, or in Redis when REDIS_URL is set,
// so every instance shares them. 429s carry Retry-After (seconds) and RateLimit-* headers.
import type { FastifyReply } from 'fastify'
import type pg from 'pg'
import { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible'
import { ApiError, type ErrorCode } from '../errors.js'

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
}

export interface RateLimitOptions {
  enabled: boolean
  globalPerMinute: number
  ipPerMinute: number
  failedAuthPerMinute: number
}

const TABLE = 'tenantflow_rate_limits'

export class RateLimits {
  private readonly limiters = new Map<string, RateLimiterAbstract>()
  private redis: Redis | null = null
  private tableReady: Promise<void> | null = null
  /** IPs over the failed-auth limit, blocked on this instance without a store round trip. */
  private readonly blocked = new LRUCache<string, number>({ max: 50_000 })
  private readonly global: RateLimiterMemory

  constructor(private readonly store: RateLimitStore, private readonly opts: RateLimitOptions) {
    // The global ceiling protects this process, so it is kept per instance.
    this.global = new RateLimiterMemory({ points: opts.globalPerMinute, duration: 60, keyPrefix: 'global' })
    if (store.kind === 'redis' && store.redisUrl) {
      this.redis = new Redis(store.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false })
      this.redis.on('error', () => undefined)
    }
  }

  get enabled(): boolean {
    return this.opts.enabled
  }

  private async limiter(kind: LimitKind, points: number): Promise<RateLimiterAbstract> {
    const name = `${kind}:${points}`
    const existing = this.limiters.get(name)
    if (existing) return existing
    const base = { points, duration: 60, keyPrefix: `tf_${kind}_${points}` }
    let l: RateLimiterAbstract
    if (this.redis) {
      l = new RateLimiterRedis({ ...base, storeClient: this.redis, insuranceLimiter: new RateLimiterMemory(base) })
    } else if (this.store.kind === 'postgres' && this.store.pgPool) {
      const pool = this.store.pgPool
      if (!this.tableReady) {
        this.tableReady = new Promise<void>((resolve, reject) => {
          new RateLimiterPostgres(
            { ...base, storeClient: pool, tableName: TABLE, clearExpiredByTimeout: false },
            (err?: unknown) => (err ? reject(err) : resolve()),
          )
        })
      }
      await this.tableReady
      l = new RateLimiterPostgres({
        ...base,
        storeClient: pool,
        tableName: TABLE,
        tableCreated: true,
        clearExpiredByTimeout: false,
        insuranceLimiter: new RateLimiterMemory(base),
      })
    } else {
      l = new RateLimiterMemory(base)
    }
    if (this.limiters.size > 1000) this.limiters.clear()
    this.limiters.set(name, l)
    return l
  }

  /** Consumes one point; on refusal throws a 429 ApiError with Retry-After. Sets RateLimit headers on the reply. */
  async consume(kind: LimitKind, key: string, perMinute: number, reply?: FastifyReply): Promise<void> {
    if (!this.opts.enabled) return
    const limiter = kind === 'global' ? this.global : await this.limiter(kind, perMinute)
    try {
      const res = await limiter.consume(key, 1)
      if (reply) setHeaders(reply, kind, perMinute, res)
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err
      const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000))
      const headers: Record<string, string> = {
        'RateLimit-Policy': `"${kind}";q=${perMinute};w=60`,
        RateLimit: `"${kind}";r=0;t=${retryAfter}`,
      }
      throw new ApiError(CODES[kind], { retryAfterSeconds: retryAfter, headers })
    }
  }

  async checkGlobal(): Promise<void> {
    await this.consume('global', 'all', this.opts.globalPerMinute)
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

function setHeaders(reply: FastifyReply, kind: LimitKind, perMinute: number, res: RateLimiterRes): void {
  const reset = Math.max(0, Math.ceil(res.msBeforeNext / 1000))
  reply.header('RateLimit-Policy', `"${kind}";q=${perMinute};w=60`)
  reply.header('RateLimit', `"${kind}";r=${Math.max(0, res.remainingPoints)};t=${reset}`)
}
