// Watching a run: `GET …/runs/{run_id}?wait=` (long-poll, see pipelines.ts) and
// `GET …/runs/{run_id}/events` (Server-Sent Events). Both are woken by `run.changed` hints on the event
// bus and re-read the run from the database (org_slug in every WHERE clause), with a fallback re-read
// every RUN_WATCH_POLL_MS. Event names and data shapes are documented in docs/runs.md.
import type { FastifyReply } from 'fastify'
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { errorResponses, Id, OrgSlug, Strict } from '../models/common.js'
import { getRun, listStepLogs, TERMINAL_STATUSES, type RunRow, type StepLogRow } from '../../core/pipelines/runs.js'
import { RunWatcher } from '../../core/pipelines/run-watch.js'
import { runView, stepView } from './pipelines.js'

/** Per app: the watcher, the per-org open-stream counters and the signal that ends every watch on close. */
export interface WatchState {
  watcher: RunWatcher
  streams: Map<string, number>
  closing: AbortController
}

const states = new WeakMap<object, WatchState>()
/** A client that does not read its stream is dropped once this much is buffered for it. */
const MAX_BUFFERED_BYTES = 1024 * 1024
const TERMINAL = new Set<string>(TERMINAL_STATUSES)

/** The app's watch state; the first call (during route registration) also hooks app close. */
export function runWatchState(app: App, ctx: AppContext): WatchState {
  let s = states.get(app)
  if (s) return s
  s = { watcher: new RunWatcher(ctx.bus), streams: new Map(), closing: new AbortController() }
  states.set(app, s)
  const closing = s.closing
  app.addHook('preClose', async () => closing.abort())
  return s
}

/** Aborts when the client goes away or the app closes. */
function requestSignal(w: WatchState, reply: FastifyReply): { signal: AbortSignal; dispose(): void } {
  const gone = new AbortController()
  const onClose = () => gone.abort()
  reply.raw.once('close', onClose)
  return { signal: AbortSignal.any([gone.signal, w.closing.signal]), dispose: () => reply.raw.off('close', onClose) }
}

/**
 * Long-poll: returns the run as soon as its status differs from `since` (default: its status when the
 * request arrived), or after `seconds`; undefined when the run is not the org's.
 */
export async function waitForRunChange(
  w: WatchState,
  ctx: AppContext,
  reply: FastifyReply,
  o: { org_slug: string; run_id: string; since?: RunRow['status']; seconds: number },
): Promise<RunRow | undefined> {
  const watch = w.watcher.watch(o.run_id)
  const { signal, dispose } = requestSignal(w, reply)
  try {
    let run = await getRun(ctx.db, o.org_slug, o.run_id)
    if (!run) return undefined
    const since = o.since ?? run.status
    const deadline = performance.now() + Math.min(o.seconds, 30) * 1000
    while (run.status === since && !signal.aborted) {
      const left = deadline - performance.now()
      if (left <= 0) break
      await watch.next(Math.min(left, ctx.config.runWatch.pollMs), signal)
      const again = await getRun(ctx.db, o.org_slug, o.run_id)
      if (!again) return undefined
      run = again
    }
    return run
  } finally {
    watch.close()
    dispose()
  }
}

const RunParams = Strict({ org_slug: OrgSlug, run_id: Id })

const runSignature = (r: RunRow) =>
  JSON.stringify([r.status, r.attempt, Number(r.cancel_requested), r.error_code, r.started_at, r.finished_at])
const stepSignature = (s: StepLogRow) =>
  JSON.stringify([s.status, Number(s.rows_processed), s.progress, s.finished_at, s.error_code, s.result])

export function runEventRoutes(app: App, ctx: AppContext): void {
  const w = runWatchState(app, ctx)

  app.get(
    '/api/v1/pipelines/:org_slug/runs/:run_id/events',
    {
      config: { auth: 'org' },
      schema: {
        params: RunParams,
        response: { 200: Type.String({ description: 'text/event-stream: events run, step, end (docs/runs.md)' }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const { org_slug, run_id } = req.params
      const cfg = ctx.config.runWatch
      const watch = w.watcher.watch(run_id)
      let run: RunRow | undefined
      try {
        run = await getRun(ctx.db, org_slug, run_id)
      } catch (err) {
        watch.close()
        throw err
      }
      if (!run) {
        watch.close()
        throw new ApiError('RUN_NOT_FOUND')
      }
      const open = w.streams.get(org_slug) ?? 0
      if (open >= cfg.maxStreamsPerOrg) {
        watch.close()
        throw new ApiError('EVENT_STREAM_LIMIT_EXCEEDED', { retryAfterSeconds: 5 })
      }
      w.streams.set(org_slug, open + 1)
      let released = false
      const release = () => {
        if (released) return
        released = true
        const n = (w.streams.get(org_slug) ?? 1) - 1
        if (n <= 0) w.streams.delete(org_slug)
        else w.streams.set(org_slug, n)
      }

      reply.hijack()
      const res = reply.raw
      const { signal, dispose } = requestSignal(w, reply)
      res.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      })
      let seq = 0
      let lastWrite = performance.now()
      const write = (chunk: string) => {
        if (res.writableEnded || res.destroyed) return
        res.write(chunk)
        lastWrite = performance.now()
        if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy()
      }
      const send = (event: string, data: unknown) => write(`id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`)

      const sentSteps = new Map<string, string>()
      let sentRun = ''
      const emitSteps = async () => {
        const page = await listStepLogs(ctx.db, org_slug, run_id, { limit: 1000 })
        for (const s of page.steps) {
          const sig = stepSignature(s)
          if (sentSteps.get(s.log_id) === sig) continue
          sentSteps.set(s.log_id, sig)
          send('step', stepView(s))
        }
      }
      const emitRun = (r: RunRow) => {
        const sig = runSignature(r)
        if (sig === sentRun) return
        sentRun = sig
        send('run', runView(r))
      }

      const started = performance.now()
      const lifetimeMs = cfg.maxStreamSeconds * 1000
      try {
        write(`retry: 3000\n\n`)
        for (;;) {
          // Order as it happened: a live run's status before its steps; a finished run's steps before its end.
          const terminal = TERMINAL.has(run.status)
          if (!terminal) emitRun(run)
          await emitSteps()
          if (terminal) {
            emitRun(run)
            send('end', { run_id, status: run.status })
            break
          }
          if (signal.aborted || res.destroyed) break
          for (;;) {
            const now = performance.now()
            const lifeLeft = lifetimeMs - (now - started)
            if (lifeLeft <= 0) break
            const beatLeft = cfg.heartbeatMs - (now - lastWrite)
            if (beatLeft <= 0) {
              write(`: keep-alive\n\n`)
              continue
            }
            const why = await watch.next(Math.min(cfg.pollMs, beatLeft, lifeLeft), signal)
            if (why !== 'timeout' || performance.now() - lastWrite < cfg.heartbeatMs) break
          }
          if (signal.aborted || res.destroyed || performance.now() - started >= lifetimeMs) break
          const again = await getRun(ctx.db, org_slug, run_id)
          if (!again) break // offboarded meanwhile
          run = again
        }
      } catch (err) {
        req.log.warn({ request_id: req.id, err_name: (err as Error)?.name }, 'run event stream failed')
      } finally {
        watch.close()
        dispose()
        release()
        if (!res.writableEnded && !res.destroyed) res.end()
      }
    },
  )
}
