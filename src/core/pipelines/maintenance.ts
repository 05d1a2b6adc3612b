// Periodic housekeeping: PostgreSQL partitions created ahead and dropped after retention, SQLite
// rows deleted after retention, and expired idempotency keys, rate-limit rows and finished webhook
// deliveries removed in bounded batches.
import { sql } from 'kysely'
import type { Db } from '../db/database.js'
import type { Clock } from '../clock.js'
import { deleteExpiredRows, dropExpiredPartitions, ensurePartitions, refreshPlannerStatistics } from '../db/partitions.js'
import { PeriodicTask } from './periodic.js'
import { deleteExpiredRateLimitRows } from '../db/rate-limit-table.js'
import type { EngineLogger } from './executor.js'
import { forgetGoneProcesses } from '../observability/process-registry.js'
import { deleteOldDeliveries } from '../webhooks/store.js'

const IDEMPOTENCY_BATCH = 1000
const IDEMPOTENCY_MAX_BATCHES = 20

/** Deletes expired idempotency keys, at most `batch * maxBatches` per call. */
export async function deleteExpiredIdempotencyKeys(db: Db, now: number, batch = IDEMPOTENCY_BATCH, maxBatches = IDEMPOTENCY_MAX_BATCHES): Promise<number> {
  let total = 0
  for (let i = 0; i < maxBatches; i++) {
    const r = await sql`
      DELETE FROM org_idempotency_keys WHERE (scope, idempotency_key) IN (
        SELECT scope, idempotency_key FROM org_idempotency_keys WHERE expires_at < ${now} LIMIT ${batch})`.execute(db.kysely)
    const n = Number(r.numAffectedRows ?? 0n)
    total += n
    if (n < batch) break
  }
  return total
}

export interface MaintenanceResult {
  partitionsCreated: string[]
  partitionsDropped: string[]
  rowsDeleted: number
  idempotencyKeysDeleted: number
  rateLimitRowsDeleted: number
  processRowsDeleted: number
  webhookDeliveriesDeleted: number
}

/**
 * Retention never reaches back to the oldest run still PENDING/RUNNING: dropping its partition would
 * lose the run and leak its concurrency slot (nothing would be left to release it).
 */
export async function retentionSparingActiveRuns(db: Db, retentionDays: number, now: number): Promise<number> {
  const oldest = await db.kysely
    .selectFrom('org_pipeline_runs')
    .select('run_date')
    .where('status', 'in', ['PENDING', 'RUNNING'])
    .orderBy('run_date')
    .limit(1)
    .executeTakeFirst()
  if (!oldest) return retentionDays
  const start = Date.parse(`${String(oldest.run_date).slice(0, 10)}T00:00:00Z`)
  return Math.max(retentionDays, Math.ceil((now - start) / 86_400_000) + 1)
}

export async function runMaintenance(db: Db, retentionDays: number, now: number): Promise<MaintenanceResult> {
  const partitionsCreated = await ensurePartitions(db, now)
  const retention = await retentionSparingActiveRuns(db, retentionDays, now)
  const partitionsDropped = await dropExpiredPartitions(db, retention, now)
  const rowsDeleted = await deleteExpiredRows(db, retention, now)
  const idempotencyKeysDeleted = await deleteExpiredIdempotencyKeys(db, now)
  await refreshPlannerStatistics(db)
  // The counters' expiry is wall-clock time (set by rate-limiter-flexible), not the engine clock.
  const rateLimitRowsDeleted = await deleteExpiredRateLimitRows(db, Date.now())
  const processRowsDeleted = await forgetGoneProcesses(db, now)
  const webhookDeliveriesDeleted = await deleteOldDeliveries(db.kysely, retentionDays, now)
  return { partitionsCreated, partitionsDropped, rowsDeleted, idempotencyKeysDeleted, rateLimitRowsDeleted, processRowsDeleted, webhookDeliveriesDeleted }
}

export class Maintenance {
  private readonly task: PeriodicTask

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly logger: EngineLogger,
    private readonly opts: { retentionDays: number; intervalMs?: number },
  ) {
    this.task = new PeriodicTask(
      opts.intervalMs ?? 3_600_000,
      async () => {
        const r = await runMaintenance(this.db, this.opts.retentionDays, this.clock.now())
        if (r.partitionsCreated.length || r.partitionsDropped.length || r.rowsDeleted || r.idempotencyKeysDeleted || r.rateLimitRowsDeleted || r.processRowsDeleted || r.webhookDeliveriesDeleted) {
          this.logger.info({ ...r }, 'maintenance pass')
        }
      },
      (err) => this.logger.error({ err_name: (err as Error)?.name }, 'maintenance pass failed'),
    )
  }

  start(): void {
    this.task.start({ runNow: true })
  }

  stop(): Promise<void> {
    return this.task.stop()
  }
}
