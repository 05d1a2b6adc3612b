// Block-reserved rate-limit counters on PostgreSQL (issue 12 item 4): instances sharing one counter
// never admit more than the limit in a window, big limits cost one write per block, small limits stay exact.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible'
import { PgBlockLimiter, blockSize } from '../../src/app/dependencies/pg-block-limiter.js'
import { freshBackend, needsPostgres } from '../helpers/backends.js'

const TABLE = 'tenantflow_rate_limits'

async function withPool(fn: (pool: pg.Pool) => Promise<void>): Promise<void> {
  const backend = await freshBackend('postgres')
  const pool = new pg.Pool({ connectionString: backend.databaseUrl!, max: 4 })
  try {
    // The table as the server creates it (through rate-limiter-flexible).
    await new Promise<void>((resolve, reject) => {
      new RateLimiterPostgres({ storeClient: pool, tableName: TABLE, points: 1, duration: 60, keyPrefix: 'x', clearExpiredByTimeout: false }, (err?: unknown) => (err ? reject(err) : resolve()))
    })
    await fn(pool)
  } finally {
    await pool.end()
    await backend.cleanup()
  }
}

async function spend(l: PgBlockLimiter, key: string, n: number): Promise<{ ok: number; refused: number }> {
  const out = { ok: 0, refused: 0 }
  await Promise.all(
    Array.from({ length: n }, async () => {
      try {
        await l.consume(key)
        out.ok++
      } catch (err) {
        assert.ok(err instanceof RateLimiterRes, String(err))
        assert.ok(err.msBeforeNext > 0 && err.msBeforeNext <= 60_000)
        out.refused++
      }
    }),
  )
  return out
}

test('block size: exact for small limits, at most 1 % of the limit, never over 100', () => {
  assert.deepEqual([1, 100, 199, 1000, 10_000, 1_000_000].map(blockSize), [1, 1, 1, 10, 100, 100])
})

describe('PostgreSQL block limiter', { skip: needsPostgres() }, () => {
  test('three instances racing on one key admit exactly the limit (small limit: exact)', async () => {
    await withPool(async (pool) => {
      const limiters = [0, 1, 2].map(() => new PgBlockLimiter(pool, 25, 'tf_org_25', TABLE))
      const results = await Promise.all(limiters.map((l) => spend(l, 'acme', 20)))
      assert.equal(results.reduce((a, r) => a + r.ok, 0), 25)
      assert.equal(results.reduce((a, r) => a + r.refused, 0), 35)
    })
  })

  test('a big limit costs one write per block and never over-admits across instances', async () => {
    await withPool(async (pool) => {
      const limit = 5000
      const a = new PgBlockLimiter(pool, limit, 'tf_org_5000', TABLE)
      const b = new PgBlockLimiter(pool, limit, 'tf_org_5000', TABLE)
      const row = async () => (await pool.query(`SELECT points FROM ${TABLE} WHERE key = $1`, ['tf_org_5000:big'])).rows[0]?.points
      // 500 requests on one instance: 50-point blocks, so about 10 reservations, not 500.
      const first = await spend(a, 'big', 500)
      assert.equal(first.ok, 500)
      const reserved = Number(await row())
      assert.ok(reserved >= 500 && reserved <= 500 + 32 * blockSize(limit), `reserved ${reserved}`)
      // Both instances then race far past the limit: together they admit at most the limit.
      const [ra, rb] = await Promise.all([spend(a, 'big', 3000), spend(b, 'big', 3000)])
      const admitted = first.ok + ra.ok + rb.ok
      assert.ok(admitted <= limit, `admitted ${admitted} of ${limit}`)
      // Unspent reservations are the only loss: at most one block per instance plus what was in flight.
      assert.ok(admitted >= limit - 2 * 32 * blockSize(limit), `admitted ${admitted}`)
      assert.ok(ra.refused + rb.refused > 0)
    })
  })

  test('a new window starts from zero', async () => {
    await withPool(async (pool) => {
      let now = 1_000_000
      const l = new PgBlockLimiter(pool, 3, 'tf_org_3', TABLE, () => now)
      assert.deepEqual(await spend(l, 'w', 5), { ok: 3, refused: 2 })
      now += 60_001
      assert.deepEqual(await spend(l, 'w', 5), { ok: 3, refused: 2 })
    })
  })
})
