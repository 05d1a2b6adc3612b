// Engine metrics (SPEC §11): admissions and refusals, runs by final status, step durations, queue
// depth and lease expiries, registered on the app's prom-client registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { sql } from 'kysely'
import type { Db } from '../db/database.js'

export interface EngineMetrics {
  admissions: Counter<'result'>
  refusals: Counter<'reason'>
  /** Labelled by org slug: one series per (org, final status), bounded by the number of orgs. */
  runsFinished: Counter<'status' | 'org'>
  stepDuration: Histogram<'processor' | 'status'>
  leaseExpiries: Counter<'action'>
  schedulerFires: Counter<'result'>
}

/** The queue-depth gauge counts at most this many PENDING runs per scrape (cheap, bounded). */
const QUEUE_DEPTH_CAP = 100_000

export function createEngineMetrics(registry: Registry, db: Db, now: () => number = Date.now): EngineMetrics {
  const registers = [registry]
  new Gauge({
    name: 'tenantflow_run_queue_depth',
    help: `PENDING runs due now (capped at ${QUEUE_DEPTH_CAP})`,
    registers,
    async collect() {
      const r = await sql<{ n: number | string }>`
        SELECT count(*) AS n FROM (
          SELECT 1 FROM org_pipeline_runs WHERE status = 'PENDING' AND available_at <= ${now()} LIMIT ${QUEUE_DEPTH_CAP}
        ) AS q`.execute(db.kysely)
      this.set(Number(r.rows[0]?.n ?? 0))
    },
  })
  return {
    admissions: new Counter({ name: 'tenantflow_admissions_total', help: 'Admission decisions by result', labelNames: ['result'], registers }),
    refusals: new Counter({ name: 'tenantflow_admission_refusals_total', help: 'Refused admissions by binding limit', labelNames: ['reason'], registers }),
    runsFinished: new Counter({ name: 'tenantflow_runs_finished_total', help: 'Runs reaching a final status, by org', labelNames: ['status', 'org'], registers }),
    stepDuration: new Histogram({
      name: 'tenantflow_step_duration_seconds',
      help: 'Step attempt duration by processor and status',
      labelNames: ['processor', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    }),
    leaseExpiries: new Counter({ name: 'tenantflow_lease_expiries_total', help: 'Expired run leases by what the reaper did', labelNames: ['action'], registers }),
    schedulerFires: new Counter({ name: 'tenantflow_scheduler_fires_total', help: 'Schedule ticks by result', labelNames: ['result'], registers }),
  }
}
