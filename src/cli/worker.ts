// `tenantflow worker`: pipeline workers (and, with --scheduler, a scheduler candidate) without the
// HTTP API; stops gracefully on SIGTERM/SIGINT.
import { configOrExit, exitOnStartupError, startBackground, stopBackground } from '../app/main.js'
import { createRuntime, type Runtime } from '../app/runtime.js'

export async function runWorker(opts: { scheduler: boolean; concurrency?: number }): Promise<void> {
  const cfg = configOrExit((c) => ({ ...c, workers: { ...c.workers, concurrency: opts.concurrency ?? c.workers.concurrency } }))
  let runtime: Runtime
  try {
    runtime = await createRuntime(cfg, { defaultMetrics: true })
  } catch (err) {
    exitOnStartupError(err, cfg)
  }
  const scheduler = opts.scheduler && cfg.scheduler.enabled
  await startBackground(runtime, { workers: true, scheduler })
  runtime.ctx.logger.info({ concurrency: cfg.workers.concurrency, scheduler }, 'tenantflow worker started')
  const stop = () =>
    void stopBackground(runtime, cfg.shutdownGraceMs)
      .then(() => runtime.close())
      .then(() => process.exit(0), () => process.exit(1))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
