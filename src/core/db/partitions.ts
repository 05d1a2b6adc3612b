// PostgreSQL only: monthly range partitions for the high-volume tables, created ahead and dropped
// after the retention period. Names and bounds come from dates we compute, never from input.
import { sql } from 'kysely'
import type { Db } from './database.js'

const PARTITIONED = ['org_pipeline_runs', 'org_step_logs'] as const
const LOCK_ID = 727_001 // advisory lock id for partition maintenance

function monthStart(d: Date, offset: number): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1))
}
const iso = (d: Date) => d.toISOString().slice(0, 10)
const suffix = (d: Date) => `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`

export async function ensurePartitions(db: Db, now = Date.now(), monthsAhead = 2): Promise<string[]> {
  if (db.dialect !== 'postgres') return []
  const created: string[] = []
  await db.kysely.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${LOCK_ID})`.execute(trx)
    const base = new Date(now)
    for (let i = -1; i <= monthsAhead; i++) {
      const from = monthStart(base, i)
      const to = monthStart(base, i + 1)
      for (const table of PARTITIONED) {
        const name = `${table}_p${suffix(from)}`
        const exists = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_class WHERE relname = ${name} LIMIT 1`.execute(trx)
        if (exists.rows[0]?.n) continue
        try {
          await sql`SAVEPOINT part`.execute(trx)
          await sql
            .raw(`CREATE TABLE ${name} PARTITION OF ${table} FOR VALUES FROM ('${iso(from)}') TO ('${iso(to)}')`)
            .execute(trx)
          await sql`RELEASE SAVEPOINT part`.execute(trx)
          created.push(name)
        } catch {
          // Rows for that month already sit in the default partition; they stay readable there.
          await sql`ROLLBACK TO SAVEPOINT part`.execute(trx)
        }
      }
    }
  })
  return created
}

/** Drops whole monthly partitions that end before now - retentionDays. */
export async function dropExpiredPartitions(db: Db, retentionDays: number, now = Date.now()): Promise<string[]> {
  if (db.dialect !== 'postgres') return []
  const cutoff = new Date(now - retentionDays * 86_400_000)
  const dropped: string[] = []
  await db.kysely.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${LOCK_ID})`.execute(trx)
    for (const table of PARTITIONED) {
      const r = await sql<{ name: string }>`
        SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ${table} LIMIT 1000`.execute(trx)
      for (const { name } of r.rows) {
        // Only partitions this module names (`<table>_pYYYYMM`); anything else attached is left alone.
        const m = /^org_[a-z_]+_p(\d{4})(\d{2})$/.exec(name)
        if (!m || !name.startsWith(`${table}_p`)) continue
        const end = new Date(Date.UTC(Number(m[1]), Number(m[2]), 1))
        if (end <= cutoff) {
          await sql`DROP TABLE IF EXISTS ${sql.table(name)}`.execute(trx)
          dropped.push(name)
        }
      }
    }
  })
  return dropped
}

/** SQLite keeps one table; retention deletes old rows in bounded batches. */
export async function deleteExpiredRows(db: Db, retentionDays: number, now = Date.now()): Promise<number> {
  if (db.dialect !== 'sqlite') return 0
  const cutoff = new Date(now - retentionDays * 86_400_000).toISOString().slice(0, 10)
  const a = await sql`DELETE FROM org_step_logs WHERE log_id IN (SELECT log_id FROM org_step_logs WHERE log_date < ${cutoff} LIMIT 10000)`.execute(db.kysely)
  const b = await sql`DELETE FROM org_pipeline_runs WHERE run_id IN (SELECT run_id FROM org_pipeline_runs WHERE run_date < ${cutoff} AND status NOT IN ('PENDING','RUNNING') LIMIT 10000)`.execute(db.kysely)
  return Number(a.numAffectedRows ?? 0n) + Number(b.numAffectedRows ?? 0n)
}

/**
 * Planner statistics. SQLite is never analyzed on its own: `PRAGMA optimize` analyzes what needs it.
 * PostgreSQL's autovacuum analyzes partitions but never a partitioned parent, whose statistics the
 * planner uses for queries across partitions, so the parents are analyzed here.
 */
export async function refreshPlannerStatistics(db: Db): Promise<void> {
  if (db.dialect === 'sqlite') {
    try {
      await sql`PRAGMA optimize`.execute(db.kysely)
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err
    }
    return
  }
  for (const table of PARTITIONED) await sql`ANALYZE ${sql.table(table)}`.execute(db.kysely)
}
