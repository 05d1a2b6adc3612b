// Shared rate-limit counters on PostgreSQL without a write per request (issue 12 item 4). A process
// takes points from the shared counter row in blocks (one upsert reserves up to `blockSize(points)`)
// and spends them from memory; the row counts every reserved point, so the instances together never
// admit more than the limit in a window. The cost is the other way: points a process reserved but
// did not spend before the window ends (or before it crashed) are lost, so with N processes a client
// may be refused up to N × (block − 1) requests early — at most 1 % of the limit per process.
// Rate limits only: quotas are decided in the admission transaction, never here.
// Windows are fixed, 60 s, started by the first reservation (the same row layout and key names as
// rate-limiter-flexible's PostgreSQL store, so maintenance cleans both).
import type pg from 'pg'
import { LRUCache } from 'lru-cache'
import { RateLimiterRes } from 'rate-limiter-flexible'

/** Points reserved per round trip: 1 for small limits (exact), up to 100 for large ones. */
export function blockSize(points: number): number {
  return Math.max(1, Math.min(100, Math.floor(points / 100)))
}

interface Held {
  /** Window end (epoch ms) of the shared row these points came from. */
  expire: number
  tokens: number
  /** The shared row had no points left at the last reservation: refuse until the window ends. */
  exhausted: boolean
  /** Points the shared row had left after the last reservation (for the RateLimit header). */
  sharedRemaining: number
}

const WINDOW_MS = 60_000
/** A caller that keeps losing the points reserved for it to others gives up waiting and is refused. */
const MAX_WAITS = 20

export class PgBlockLimiter {
  private readonly held = new LRUCache<string, Held>({ max: 50_000 })
  private readonly reserving = new Map<string, { done: Promise<void>; waiters: number }>()
  private readonly block: number

  constructor(
    private readonly pool: pg.Pool,
    private readonly points: number,
    private readonly keyPrefix: string,
    private readonly table: string,
    private readonly now: () => number = Date.now,
  ) {
    this.block = blockSize(points)
  }

  /** Resolves with the remaining points, or rejects with a RateLimiterRes when the limit is spent. */
  async consume(key: string): Promise<RateLimiterRes> {
    const rowKey = `${this.keyPrefix}:${key}`
    for (let wait = 0; wait <= MAX_WAITS; wait++) {
      const now = this.now()
      const h = this.held.get(rowKey)
      if (h && h.expire > now) {
        if (h.tokens > 0) {
          h.tokens--
          return new RateLimiterRes(h.sharedRemaining + h.tokens, h.expire - now, 1, false)
        }
        if (h.exhausted) throw new RateLimiterRes(0, h.expire - now, 1, false)
      }
      if (wait === MAX_WAITS) break
      // One reservation per key at a time, sized for everyone waiting on it.
      let r = this.reserving.get(rowKey)
      if (!r) {
        const entry = { done: Promise.resolve(), waiters: 1 }
        entry.done = Promise.resolve().then(() => this.reserve(rowKey, Math.max(this.block, entry.waiters))).finally(() => this.reserving.delete(rowKey))
        this.reserving.set(rowKey, entry)
        r = entry
      } else {
        r.waiters++
      }
      await r.done
    }
    const h = this.held.get(rowKey)
    throw new RateLimiterRes(0, Math.max(1000, (h?.expire ?? this.now() + 1000) - this.now()), 1, false)
  }

  private async reserve(rowKey: string, want: number): Promise<void> {
    const now = this.now()
    const ask = Math.min(want, this.points)
    const { rows } = await this.pool.query<{ points: number | string; expire: number | string }>(
      `INSERT INTO ${this.table} (key, points, expire) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET
         points = CASE WHEN ${this.table}.expire IS NULL OR ${this.table}.expire <= $4 THEN EXCLUDED.points ELSE ${this.table}.points + EXCLUDED.points END,
         expire = CASE WHEN ${this.table}.expire IS NULL OR ${this.table}.expire <= $4 THEN EXCLUDED.expire ELSE ${this.table}.expire END
       RETURNING points, expire`,
      [rowKey, ask, now + WINDOW_MS, now],
    )
    const after = Number(rows[0]!.points)
    const expire = Number(rows[0]!.expire)
    const before = after - ask
    const granted = Math.max(0, Math.min(ask, this.points - before))
    const prev = this.held.get(rowKey)
    const leftover = prev && prev.expire === expire ? prev.tokens : 0
    this.held.set(rowKey, {
      expire,
      tokens: leftover + granted,
      exhausted: granted < ask,
      sharedRemaining: Math.max(0, this.points - after),
    })
  }
}
