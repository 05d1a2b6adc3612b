// Processes seen recently: each engine instance (`serve` with workers, `tenantflow worker`) upserts one
// row on a heartbeat and deletes it on a clean stop, so operators see idle workers too, not only the
// ones holding a run lease. A process that died stops beating and drops out of "recent".
import { hostname } from 'node:os'
import type { Db } from '../db/database.js'
import type { ProcessesTable } from '../db/schema.js'
import type { Clock } from '../clock.js'
import { PeriodicTask } from '../pipelines/periodic.js'

export const PROCESS_BEAT_MS = 15_000
/** Seen within this window counts as alive (four missed beats is dead). */
export const PROCESS_RECENT_MS = 4 * PROCESS_BEAT_MS
/** Rows not refreshed for a day are deleted by maintenance. */
export const PROCESS_FORGET_MS = 86_400_000

export interface ProcessInfo {
  processId: string
  role: 'serve' | 'worker'
  workerSlots: number
  scheduler: boolean
  runsInFlight: () => number
}

/** A row as read back: counters as numbers, the scheduler flag as a boolean. */
export type SeenProcess = Omit<ProcessesTable, 'scheduler'> & { scheduler: boolean }

export class ProcessBeat {
  private readonly task: PeriodicTask
  private readonly startedAt: number

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly info: ProcessInfo,
    onError: (err: unknown) => void,
    intervalMs = PROCESS_BEAT_MS,
  ) {
    this.startedAt = clock.now()
    this.task = new PeriodicTask(intervalMs, () => this.beat(), onError)
  }

  /** Starts beating; resolves once the first beat has been written (or has failed and been reported). */
  start(): Promise<void> {
    this.task.start({ runNow: true })
    return this.task.settled()
  }

  async beat(): Promise<void> {
    const now = this.clock.now()
    const row = {
      process_id: this.info.processId.slice(0, 200),
      role: this.info.role,
      host: hostname().slice(0, 200),
      pid: process.pid,
      worker_slots: this.info.workerSlots,
      runs_in_flight: this.info.runsInFlight(),
      scheduler: this.info.scheduler ? 1 : 0,
      started_at: this.startedAt,
      last_seen_at: now,
    }
    await this.db.kysely
      .insertInto('tenantflow_processes')
      .values(row)
      .onConflict((oc) => oc.column('process_id').doUpdateSet({ runs_in_flight: row.runs_in_flight, scheduler: row.scheduler, worker_slots: row.worker_slots, last_seen_at: now }))
      .execute()
  }

  /** Stops beating and removes the row (best effort: a failed delete ages out like a crash). */
  async stop(): Promise<void> {
    await this.task.stop()
    await this.db.kysely.deleteFrom('tenantflow_processes').where('process_id', '=', this.info.processId.slice(0, 200)).execute().catch(() => undefined)
  }
}

export async function recentProcesses(db: Db, now: number, limit = 100): Promise<SeenProcess[]> {
  const rows = await db.kysely
    .selectFrom('tenantflow_processes')
    .selectAll()
    .where('last_seen_at', '>=', now - PROCESS_RECENT_MS)
    .orderBy('started_at')
    .orderBy('process_id')
    .limit(limit)
    .execute()
  return rows.map((r) => ({ ...r, pid: Number(r.pid), worker_slots: Number(r.worker_slots), runs_in_flight: Number(r.runs_in_flight), scheduler: Number(r.scheduler) === 1, started_at: Number(r.started_at), last_seen_at: Number(r.last_seen_at) }))
}

/** Deletes rows of processes gone for a day, in one bounded statement. */
export async function forgetGoneProcesses(db: Db, now: number, limit = 1000): Promise<number> {
  const stale = db.kysely.selectFrom('tenantflow_processes').select('process_id').where('last_seen_at', '<', now - PROCESS_FORGET_MS).limit(limit)
  const r = await db.kysely.deleteFrom('tenantflow_processes').where('process_id', 'in', stale).executeTakeFirst()
  return Number(r.numDeletedRows ?? 0n)
}
