// The PostgreSQL table that holds shared rate-limit counters (created on first use by
// rate-limiter-flexible: key text primary key, points integer, expire bigint epoch ms).
// Maintenance deletes expired rows in bounded batches; one row per distinct client would otherwise stay forever.
import { sql } from 'kysely'
import type { Db } from './database.js'

export const RATE_LIMIT_TABLE = 'tenantflow_rate_limits'

/** Deletes rows that expired before `now`, at most `batch * maxBatches` per call; 0 when the table does not exist yet. */
export async function deleteExpiredRateLimitRows(db: Db, now: number, batch = 1000, maxBatches = 20): Promise<number> {
  if (db.dialect !== 'postgres') return 0
  const exists = await sql<{ t: string | null }>`SELECT to_regclass(${RATE_LIMIT_TABLE}) AS t`.execute(db.kysely)
  if (!exists.rows[0]?.t) return 0
  let total = 0
  for (let i = 0; i < maxBatches; i++) {
    const r = await sql`
      DELETE FROM tenantflow_rate_limits WHERE key IN (
        SELECT key FROM tenantflow_rate_limits WHERE expire < ${now} LIMIT ${batch})`.execute(db.kysely)
    const n = Number(r.numAffectedRows ?? 0n)
    total += n
    if (n < batch) break
  }
  return total
}
