// The worker pool: claims due PENDING runs up to its size (round-robin across orgs, at most maxPerOrg
// slots per org), leases them, renews every lease with one
// statement per heartbeat (which also picks up cancel requests), and runs the executor. The reaper
// turns expired leases into retries or FAILED WORKER_LOST. stop() stops claiming, lets running steps
// finish until the deadline, then hands the rest back as PENDING for another worker.
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { allocateClaims, reapExpiredLeases, releaseOrphanedSlots, renewLeases, type RunRow } from './runs.js'
import { executeRun, type ExecutorContext, type StopReason } from './executor.js'
import type { EngineLogger } from './executor.js'
import type { EngineMetrics } from './metrics.js'
import { PeriodicTask } from './periodic.js'
import { assertLeaseCoversHeartbeats } from './lease.js'
import type { Db } from '../db/database.js'
import type { Clock } from '../clock.js'

export interface WorkerPoolOptions {
  concurrency: number
  leaseMs: number
  heartbeatMs: number
  pollMs: number
  /** How many of this pool's slots one org may hold (default concurrency - 1, at least 1). */
  maxPerOrg?: number
}

/** WORKER_MAX_PER_ORG's default: every org but one leaves a slot free for the others. */
export const defaultMaxPerOrg = (concurrency: number) => Math.max(1, concurrency - 1)

interface Active {
  run: RunRow
  control: AbortController
  done: Promise<void>
  /** When our lease ends unless a heartbeat renews it (this worker's view, from the same clock). */
  leaseUntil: number
  /** The org incarnation the run belongs to, once the executor has resolved it. */
  datasetId?: string
}

export const newWorkerId = () => `${hostname().slice(0, 40)}:${process.pid}:${randomBytes(6).toString('hex')}`

export class WorkerPool {
  readonly workerId: string
  private readonly active = new Map<string, Active>()
  private running = false
  private loop: Promise<void> | null = null
  private wake: (() => void) | null = null
  private heartbeat: NodeJS.Timeout | null = null

  constructor(
    private readonly exec: Omit<ExecutorContext, 'workerId'>,
    private readonly opts: WorkerPoolOptions,
    workerId: string = newWorkerId(),
  ) {
    assertLeaseCoversHeartbeats(opts.leaseMs, opts.heartbeatMs)
    this.workerId = workerId
  }

  get size(): number {
    return this.opts.concurrency
  }

  activeRunIds(): string[] {
    return [...this.active.keys()]
  }

  start(): void {
    if (this.running || this.opts.concurrency <= 0) return
    this.running = true
    this.heartbeat = setInterval(() => void this.beat(), this.opts.heartbeatMs)
    this.loop = this.pollLoop()
  }

  /** Polls immediately (called after an in-process admission so new runs start without waiting a poll interval). */
  nudge(): void {
    this.wake?.()
  }

  /** In-process cancel: aborts the run's signal at once if this pool is executing it. */
  cancelLocal(runId: string): boolean {
    const a = this.active.get(runId)
    if (!a) return false
    a.control.abort({ kind: 'cancel' } satisfies StopReason)
    return true
  }

  /**
   * Offboarding (from any process, through the event bus): aborts every run of that org incarnation
   * at once. A run whose incarnation is not resolved yet is aborted too when it is of that slug; it
   * could only belong to the offboarded org, whose runs were deleted (it would end 'lost' anyway).
   */
  abortOrg(orgSlug: string, datasetId?: string): number {
    let n = 0
    for (const a of this.active.values()) {
      if (a.run.org_slug !== orgSlug || a.control.signal.aborted) continue
      if (datasetId !== undefined && a.datasetId !== undefined && a.datasetId !== datasetId) continue
      a.control.abort({ kind: 'offboarded' } satisfies StopReason)
      n++
    }
    return n
  }

  private async pollLoop(): Promise<void> {
    while (this.running) {
      let claimed = 0
      const free = this.opts.concurrency - this.active.size
      if (free > 0) {
        try {
          const now = this.exec.clock.now()
          const held = new Map<string, number>()
          for (const a of this.active.values()) held.set(a.run.org_slug, (held.get(a.run.org_slug) ?? 0) + 1)
          const runs = await allocateClaims(this.exec.db, {
            workerId: this.workerId, now, leaseMs: this.opts.leaseMs, limit: free, held,
            maxPerOrg: this.opts.maxPerOrg ?? defaultMaxPerOrg(this.opts.concurrency),
          })
          claimed = runs.length
          for (const run of runs) this.launch(run, now + this.opts.leaseMs)
        } catch (err) {
          this.exec.logger.error({ err_name: (err as Error)?.name, worker: this.workerId }, 'claiming runs failed')
        }
      }
      if (!this.running) break
      if (claimed > 0 && claimed === free) continue
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.opts.pollMs)
        this.wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      this.wake = null
    }
  }

  private launch(run: RunRow, leaseUntil: number): void {
    const control = new AbortController()
    const entry: Active = { run, control, done: Promise.resolve(), leaseUntil }
    entry.done = executeRun({ ...this.exec, workerId: this.workerId }, run, control.signal, { bound: (id) => (entry.datasetId = id) })
      .then((r) => {
        if (r.kind === 'lost') this.exec.logger.warn({ run_id: run.run_id, worker: this.workerId }, 'lease lost; run left to its new owner')
        if (r.kind === 'offboarded') this.exec.logger.info({ run_id: run.run_id, org: run.org_slug, worker: this.workerId }, 'run stopped: its org was offboarded')
      })
      .catch((err) => this.exec.logger.error({ run_id: run.run_id, err_name: (err as Error)?.name }, 'executor crashed'))
      .finally(() => {
        this.active.delete(run.run_id)
        this.nudge()
      })
    this.active.set(run.run_id, entry)
    this.exec.onRunChanged?.(run.org_slug, run.run_id)
  }

  /** Aborts runs whose lease ends before `until` (fencing: the reaper may hand them to another worker). */
  private fence(until: number): void {
    for (const a of this.active.values()) {
      if (!a.control.signal.aborted && a.leaseUntil <= until) a.control.abort({ kind: 'lease_lost' } satisfies StopReason)
    }
  }

  /**
   * Renews all leases in one statement; a run we no longer own is aborted, a cancel request aborts its run.
   * A run whose lease could not be renewed in time is aborted too, so it never runs on two workers at once.
   */
  private async beat(): Promise<void> {
    const now = this.exec.clock.now()
    this.fence(now)
    const ids = [...this.active.keys()]
    if (ids.length === 0) return
    try {
      const alive = await renewLeases(this.exec.db, { workerId: this.workerId, runIds: ids, now, leaseMs: this.opts.leaseMs })
      for (const id of ids) {
        const a = this.active.get(id)
        if (!a || a.control.signal.aborted) continue
        const state = alive.get(id)
        if (!state) a.control.abort({ kind: 'lease_lost' } satisfies StopReason)
        else {
          a.leaseUntil = now + this.opts.leaseMs
          if (state.cancelRequested) a.control.abort({ kind: 'cancel' } satisfies StopReason)
        }
      }
    } catch (err) {
      this.exec.logger.warn({ err_name: (err as Error)?.name, worker: this.workerId }, 'lease renewal failed')
      // The next beat may come too late: stop what would expire before it.
      this.fence(this.exec.clock.now() + this.opts.heartbeatMs)
    }
  }

  /** Stops claiming; waits for running runs until `deadlineMs`, then hands the unfinished ones back. */
  async stop(deadlineMs: number): Promise<void> {
    this.running = false
    this.nudge()
    await this.loop
    const all = () => Promise.allSettled([...this.active.values()].map((a) => a.done))
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([all(), new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadlineMs))))])
      clearTimeout(timer)
      for (const a of this.active.values()) if (!a.control.signal.aborted) a.control.abort({ kind: 'shutdown' } satisfies StopReason)
      await all()
    }
    if (this.heartbeat) clearInterval(this.heartbeat)
    this.heartbeat = null
  }
}

export interface ReaperOptions {
  intervalMs: number
  backoffMs?: (attempt: number) => number
  /** Told the id of every run the reaper moved (retried, failed or cancelled). */
  onRunChanged?: (runId: string) => void
}

/** Periodically recovers runs whose worker died (expired leases) and slots never released. */
export class Reaper {
  private readonly task: PeriodicTask

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly logger: EngineLogger,
    private readonly opts: ReaperOptions,
    private readonly metrics?: EngineMetrics,
  ) {
    this.task = new PeriodicTask(opts.intervalMs, () => this.runOnce(), (err: unknown) => this.logger.error({ err_name: (err as Error)?.name }, 'reaper pass failed'))
  }

  start(): void {
    this.task.start()
  }

  async runOnce(): Promise<{ retried: number; failed: number; cancelled: number; orphans: number }> {
    const now = this.clock.now()
    const r = await reapExpiredLeases(this.db, { now, backoffMs: this.opts.backoffMs })
    const orphans = await releaseOrphanedSlots(this.db, now)
    if (r.retried.length) this.metrics?.leaseExpiries.inc({ action: 'retried' }, r.retried.length)
    if (r.failed.length) {
      this.metrics?.leaseExpiries.inc({ action: 'failed' }, r.failed.length)
    }
    if (r.cancelled.length) {
      this.metrics?.leaseExpiries.inc({ action: 'cancelled' }, r.cancelled.length)
    }
    for (const f of r.finished) this.metrics?.runsFinished.inc({ status: f.status, org: f.org_slug })
    const n = r.retried.length + r.failed.length + r.cancelled.length
    for (const id of [...r.retried, ...r.failed, ...r.cancelled]) this.opts.onRunChanged?.(id)
    if (n || orphans) this.logger.warn({ retried: r.retried, failed: r.failed, cancelled: r.cancelled, orphans }, 'reaper recovered runs')
    return { retried: r.retried.length, failed: r.failed.length, cancelled: r.cancelled.length, orphans }
  }

  stop(): Promise<void> {
    return this.task.stop()
  }
}
