// Step logs (one row per step attempt), written in batches: start and finish only mark the row dirty;
// a flush (on an interval, when the buffer is full, or at run end) writes every dirty row with ONE
// multi-row upsert — a step that starts and ends between flushes costs a single row write.
import type { Db } from '../db/database.js'
import type { StepLogRow } from './runs.js'

export interface StepLogWriterOptions {
  flushMs?: number
  maxBatch?: number
  onError?: (err: unknown) => void
}

export class StepLogWriter {
  private readonly rows = new Map<string, StepLogRow>()
  private readonly dirty = new Set<string>()
  private chain: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | null = null
  private readonly maxBatch: number

  constructor(private readonly db: Db, private readonly opts: StepLogWriterOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 200
  }

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => {
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
    const batch = ids.map((id) => ({ ...this.rows.get(id)! }))
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
            })),
          )
          .execute()
      }
    } catch (err) {
      for (const id of ids) this.dirty.add(id) // retried by the next flush
      throw err
    }
    // Finished rows are stored for good; forget them unless they changed again meanwhile.
    for (const r of batch) if (r.status !== 'RUNNING' && !this.dirty.has(r.log_id)) this.rows.delete(r.log_id)
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.flush()
  }
}
