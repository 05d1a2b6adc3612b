// Step logs (one row per step attempt), written in batches: start and finish only mark the row dirty;
// a flush (on an interval, when the buffer is full, or at run end) writes every dirty row with ONE
// multi-row upsert — a step that starts and ends between flushes costs a single row write.
// Progress reports are throttled per row: a RUNNING row is rewritten for progress at most once per
// `progressMinMs` (default 1 s) however often its processor reports; the latest values win.
import type { Db } from '../db/database.js'
import type { StepLogRow } from './runs.js'

export interface StepLogWriterOptions {
  flushMs?: number
  maxBatch?: number
  onError?: (err: unknown) => void
  /** Minimum time between two progress writes of one step row (ms). */
  progressMinMs?: number
  /** Called after a flush stored rows, with the (org, run) pairs they belong to. */
  onFlushed?: (runs: { org_slug: string; run_id: string }[]) => void
  /** Clock for the progress throttle (ms). */
  now?: () => number
}

export interface StepProgress {
  rows?: number
  /** Small, secret-free counters, e.g. { pages: 2, records: 150 }. */
  counters?: Record<string, number>
}

const MAX_PROGRESS_KEYS = 10

export class StepLogWriter {
  private readonly rows = new Map<string, StepLogRow>()
  private readonly dirty = new Set<string>()
  /** Rows with progress not yet written, and when each row's progress was last written. */
  private readonly progressPending = new Set<string>()
  private readonly progressWrittenAt = new Map<string, number>()
  private chain: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | null = null
  private readonly maxBatch: number

  constructor(private readonly db: Db, private readonly opts: StepLogWriterOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 200
  }

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => {
      this.promoteProgress()
      if (this.dirty.size) this.flush().catch((e) => this.opts.onError?.(e))
    }, this.opts.flushMs ?? 1000)
    this.timer.unref()
  }

  /** Records the beginning of a step attempt (status RUNNING). */
  begin(row: StepLogRow): void {
    this.rows.set(row.log_id, { ...row })
    this.mark(row.log_id)
  }

  /** Records the final state of a step attempt. */
  end(logId: string, patch: Partial<Pick<StepLogRow, 'status' | 'finished_at' | 'duration_ms' | 'rows_processed' | 'error_code' | 'error_message' | 'result'>>): void {
    const row = this.rows.get(logId)
    if (!row) return
    Object.assign(row, patch)
    this.mark(logId)
  }

  /** Records live progress of a RUNNING step attempt; written by a later flush, throttled per row. */
  progress(logId: string, p: StepProgress): void {
    const row = this.rows.get(logId)
    if (!row || row.status !== 'RUNNING') return
    if (p.rows !== undefined && Number.isSafeInteger(p.rows) && p.rows >= 0) row.rows_processed = p.rows
    if (p.counters) {
      const clean: Record<string, number> = {}
      for (const [k, v] of Object.entries(p.counters).slice(0, MAX_PROGRESS_KEYS)) {
        if (/^[a-z][a-z0-9_]{0,31}$/.test(k) && Number.isSafeInteger(v) && v >= 0) clean[k] = v
      }
      row.progress = JSON.stringify(clean)
    }
    this.progressPending.add(logId)
  }

  private promoteProgress(): void {
    if (this.progressPending.size === 0) return
    const now = this.opts.now?.() ?? Date.now()
    const min = this.opts.progressMinMs ?? 1000
    for (const id of this.progressPending) {
      if (now - (this.progressWrittenAt.get(id) ?? 0) < min) continue
      this.progressPending.delete(id)
      this.progressWrittenAt.set(id, now)
      if (this.rows.has(id)) this.dirty.add(id)
    }
  }

  /** Forgets a run's buffered rows unwritten (its org was offboarded: its rows were deleted with it). */
  discardRun(runId: string): void {
    for (const [id, row] of this.rows) {
      if (row.run_id !== runId) continue
      this.rows.delete(id)
      this.dirty.delete(id)
      this.progressPending.delete(id)
      this.progressWrittenAt.delete(id)
    }
  }

  private mark(logId: string): void {
    this.dirty.add(logId)
    if (this.dirty.size >= this.maxBatch) this.flush().catch((e) => this.opts.onError?.(e))
  }

  /** Writes everything dirty so far; resolves when those rows are stored. */
  flush(): Promise<void> {
    const next = this.chain.then(() => this.write())
    this.chain = next.catch(() => undefined)
    return next
  }

  private async write(): Promise<void> {
    if (this.dirty.size === 0) return
    const ids = [...this.dirty]
    this.dirty.clear()
    const batch = ids.flatMap((id) => {
      const row = this.rows.get(id)
      return row ? [{ ...row }] : []
    })
    try {
      for (let i = 0; i < batch.length; i += this.maxBatch) {
        await this.db.kysely
          .insertInto('org_step_logs')
          .values(batch.slice(i, i + this.maxBatch))
          .onConflict((oc) =>
            oc.columns(['log_id', 'log_date']).doUpdateSet((eb) => ({
              status: eb.ref('excluded.status'),
              finished_at: eb.ref('excluded.finished_at'),
              duration_ms: eb.ref('excluded.duration_ms'),
              rows_processed: eb.ref('excluded.rows_processed'),
              error_code: eb.ref('excluded.error_code'),
              error_message: eb.ref('excluded.error_message'),
              result: eb.ref('excluded.result'),
              progress: eb.ref('excluded.progress'),
            })),
          )
          .execute()
      }
    } catch (err) {
      for (const id of ids) this.dirty.add(id) // retried by the next flush
      throw err
    }
    // Finished rows are stored for good; forget them unless they changed again meanwhile.
    for (const r of batch) {
      if (r.status !== 'RUNNING' && !this.dirty.has(r.log_id)) {
        this.rows.delete(r.log_id)
        this.progressPending.delete(r.log_id)
        this.progressWrittenAt.delete(r.log_id)
      }
    }
    if (this.opts.onFlushed) {
      const runs = new Map<string, { org_slug: string; run_id: string }>()
      for (const r of batch) runs.set(r.run_id, { org_slug: r.org_slug, run_id: r.run_id })
      try {
        this.opts.onFlushed([...runs.values()])
      } catch {
        /* a listener never fails a flush */
      }
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.flush()
  }
}
