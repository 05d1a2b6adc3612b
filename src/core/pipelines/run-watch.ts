// Wake-ups for run watchers (`?wait=` and the SSE stream). The engine publishes `run.changed` hints on
// the event bus (in-process, or PostgreSQL NOTIFY across instances); a watcher re-reads the run from
// the database when woken, and also every `pollMs` as a fallback for hints it cannot receive (a
// worker in another process on the embedded store). Hints carry no state, so a lost or forged hint
// costs one read, never a wrong answer.
import type { EventBus } from '../events/bus.js'

export interface RunWatch {
  /**
   * Resolves when a hint arrived since the previous call (at once if one is already pending), after
   * `timeoutMs`, or when `signal` aborts. Never rejects.
   */
  next(timeoutMs: number, signal?: AbortSignal): Promise<'hint' | 'timeout' | 'aborted'>
  close(): void
}

export class RunWatcher {
  private readonly watches = new Map<string, Set<{ pending: boolean; wake: (() => void) | null }>>()

  constructor(bus: EventBus) {
    bus.subscribe((e) => {
      if (e.type !== 'run.changed' || !e.run_id) return
      const set = this.watches.get(e.run_id)
      if (!set) return
      for (const w of set) {
        w.pending = true
        w.wake?.()
      }
    })
  }

  /** Number of open watches on this instance. */
  get open(): number {
    let n = 0
    for (const s of this.watches.values()) n += s.size
    return n
  }

  /** Starts collecting hints for `runId` now (open it BEFORE reading the run, so no change is missed). */
  watch(runId: string): RunWatch {
    let set = this.watches.get(runId)
    if (!set) this.watches.set(runId, (set = new Set()))
    const state: { pending: boolean; wake: (() => void) | null } = { pending: false, wake: null }
    set.add(state)
    const watches = this.watches
    return {
      next(timeoutMs, signal) {
        if (signal?.aborted) return Promise.resolve('aborted')
        if (state.pending) {
          state.pending = false
          return Promise.resolve('hint')
        }
        return new Promise((resolve) => {
          const done = (why: 'hint' | 'timeout' | 'aborted') => {
            clearTimeout(timer)
            signal?.removeEventListener('abort', onAbort)
            state.wake = null
            if (why === 'hint') state.pending = false
            resolve(why)
          }
          const onAbort = () => done('aborted')
          const timer = setTimeout(() => done('timeout'), Math.max(0, timeoutMs))
          state.wake = () => done('hint')
          signal?.addEventListener('abort', onAbort, { once: true })
        })
      },
      close() {
        state.wake?.()
        set!.delete(state)
        if (set!.size === 0 && watches.get(runId) === set) watches.delete(runId)
      },
    }
  }
}
