// Template SQL on the embedded store runs off the event loop: a small pool of helper processes, each
// opening its own read-only better-sqlite3 connection to the org's dataset file per query. A query
// still running at its deadline (or when its step stops) is ended by killing its process; the pool
// starts a fresh one lazily and keeps the others warm. better-sqlite3 is synchronous, so on the main
// thread a slow statement (a recursive CTE, a cross join) would freeze heartbeats and every tenant's
// requests until it returned. Not worker threads: worker.terminate() cannot interrupt a statement
// inside sqlite3_step (V8 only regains control when it returns), so a terminated thread kept
// computing for minutes; a killed process stops at once.
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { DatasetError } from './errors.js'

/** Helper processes at most (each runs one statement at a time); further queries wait their turn. */
export const SQL_WORKERS_MAX = 2

export interface SqlJob {
  path: string
  text: string
  params: unknown[]
  maxRows: number
  timeoutMs: number
  /** Stops the query early (the step was cancelled, timed out or its org offboarded). */
  signal?: AbortSignal
}

// Plain CommonJS for `node -e`, so it runs the same from src/ (tsx) and dist/ (tsc). It exits when
// its parent goes away (the IPC channel closes).
const WORKER_SOURCE = `
const Database = require(process.argv[1])
process.on('disconnect', () => process.exit(0))
process.on('message', (job) => {
  let db = null
  try {
    try {
      db = new Database(job.path, { readonly: true, fileMustExist: true, timeout: 60000 })
    } catch (err) {
      process.send({ error: err && err.code === 'SQLITE_CANTOPEN' ? 'DATASET_NOT_FOUND' : 'OPEN_FAILED' })
      return
    }
    db.pragma('busy_timeout = 60000')
    db.pragma('trusted_schema = OFF')
    db.pragma('query_only = ON')
    const st = db.prepare(job.text)
    if (!st.reader) {
      process.send({ error: 'NOT_A_READER' })
      return
    }
    const rows = []
    for (const r of st.iterate(...job.params)) {
      for (const k of Object.keys(r)) if (Buffer.isBuffer(r[k])) r[k] = null
      rows.push(r)
      if (rows.length >= job.maxRows) break
    }
    process.send({ rows })
  } catch (err) {
    const code = err && typeof err.code === 'string' && /^[A-Z0-9_]{1,40}$/.test(err.code) ? err.code : 'UNKNOWN'
    process.send({ error: 'DRIVER', code })
  } finally {
    if (db && db.open) db.close()
  }
})
`
type Reply = { rows: Record<string, unknown>[] } | { error: 'DATASET_NOT_FOUND' | 'OPEN_FAILED' | 'NOT_A_READER' | 'DRIVER'; code?: string }

interface Slot {
  worker: ChildProcess
  busy: boolean
}

interface Waiting {
  start: (slot: Slot) => void
}

const driverPath = createRequire(import.meta.url).resolve('better-sqlite3')

class SqlWorkerPool {
  private readonly slots: Slot[] = []
  private readonly queue: Waiting[] = []

  constructor(private readonly max: number) {}

  /** Helpers alive now (busy or warm). */
  get size(): number {
    return this.slots.length
  }

  run(job: SqlJob): Promise<Record<string, unknown>[]> {
    return new Promise((resolve, reject) => {
      const timeoutMs = Math.max(1, Math.floor(job.timeoutMs))
      let slot: Slot | null = null
      let settled = false
      const waiting: Waiting = { start: (s) => begin(s) }
      const finish = (err: Error | null, rows?: Record<string, unknown>[]) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        job.signal?.removeEventListener('abort', onAbort)
        const i = this.queue.indexOf(waiting)
        if (i >= 0) this.queue.splice(i, 1)
        if (err) reject(err)
        else resolve(rows!)
      }
      const stop = (err: DatasetError) => {
        // A running statement only stops with its process: kill it, a fresh one replaces it later.
        if (slot) this.discard(slot)
        finish(err)
      }
      const timer = setTimeout(() => stop(new DatasetError('QUERY_TIMEOUT', `query exceeded its timeout of ${timeoutMs} ms`)), timeoutMs)
      const onAbort = () => stop(new DatasetError('QUERY_TIMEOUT', 'query stopped: its step was stopped'))
      if (job.signal?.aborted) return onAbort()
      job.signal?.addEventListener('abort', onAbort, { once: true })
      const begin = (s: Slot) => {
        if (settled) return this.release(s)
        slot = s
        const onMessage = (reply: Reply) => {
          s.worker.off('error', onError)
          s.worker.off('exit', onExit)
          if (settled) return
          slot = null
          this.release(s)
          if ('rows' in reply) return finish(null, reply.rows)
          if (reply.error === 'DATASET_NOT_FOUND') return finish(new DatasetError('DATASET_NOT_FOUND', 'dataset does not exist'))
          if (reply.error === 'OPEN_FAILED') return finish(new DatasetError('QUERY_FAILED', 'dataset could not be opened'))
          if (reply.error === 'NOT_A_READER') return finish(new DatasetError('SQL_REFUSED', 'sql refused: statement returns no rows'))
          finish(new DatasetError('QUERY_FAILED', `dataset query failed (${reply.code ?? 'UNKNOWN'})`))
        }
        const onError = () => {
          s.worker.off('message', onMessage)
          this.discard(s)
          finish(new DatasetError('QUERY_FAILED', 'dataset query failed (HELPER_EXITED)'))
        }
        const onExit = onError
        s.worker.once('message', onMessage)
        s.worker.once('error', onError)
        s.worker.once('exit', onExit)
        s.worker.send({ path: job.path, text: job.text, params: job.params, maxRows: job.maxRows }, (err) => {
          if (err) onError()
        })
      }
      const free = this.acquire()
      if (free) begin(free)
      else this.queue.push(waiting)
    })
  }

  private acquire(): Slot | null {
    const idle = this.slots.find((s) => !s.busy)
    if (idle) {
      idle.busy = true
      setRef(idle.worker, true)
      return idle
    }
    if (this.slots.length >= this.max) return null
    // No inherited environment: the helper needs none, and it holds no secret.
    const worker = spawn(process.execPath, ['-e', WORKER_SOURCE, driverPath], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], env: {}, serialization: 'advanced' })
    const slot: Slot = { worker, busy: true }
    // A process that dies on its own (not through discard) leaves the pool.
    worker.on('exit', () => this.forget(slot))
    worker.on('error', () => this.forget(slot))
    this.slots.push(slot)
    return slot
  }

  private release(slot: Slot): void {
    if (!this.slots.includes(slot)) return
    const next = this.queue.shift()
    if (next) return next.start(slot)
    slot.busy = false
    // A warm idle helper never keeps this process alive.
    setRef(slot.worker, false)
  }

  private discard(slot: Slot): void {
    slot.worker.removeAllListeners('message')
    this.forget(slot)
    slot.worker.kill('SIGKILL')
  }

  private forget(slot: Slot): void {
    const i = this.slots.indexOf(slot)
    if (i < 0) return
    this.slots.splice(i, 1)
    // Room for a waiting query: it gets a fresh thread.
    const next = this.queue.shift()
    if (next) {
      const fresh = this.acquire()
      if (fresh) next.start(fresh)
      else this.queue.unshift(next)
    }
  }
}

function setRef(child: ChildProcess, on: boolean): void {
  const channel = child.channel as { ref?: () => void; unref?: () => void } | null | undefined
  if (on) {
    child.ref()
    channel?.ref?.()
  } else {
    child.unref()
    channel?.unref?.()
  }
}

let pool: SqlWorkerPool | null = null

/** Runs one read-only statement on an org's dataset file in a helper process, bounded by its deadline. */
export function runReadOnlyInWorker(job: SqlJob): Promise<Record<string, unknown>[]> {
  pool ??= new SqlWorkerPool(SQL_WORKERS_MAX)
  return pool.run(job)
}

/** Helper processes the pool holds now (tests check it stays bounded). */
export function sqlWorkerCount(): number {
  return pool?.size ?? 0
}
