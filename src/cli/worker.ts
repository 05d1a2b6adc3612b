// `tenantflow worker`: pipeline workers (and, with --scheduler, a scheduler candidate) without the
// HTTP API; with WORKER_HTTP_PORT it also serves /health/live, /health/ready and /metrics (app/worker.ts).
// Stops gracefully on SIGTERM/SIGINT.
import { configOrExit, exitOnStartupError } from '../app/main.js'
import { startWorker, type StartedWorker } from '../app/worker.js'

export async function runWorker(opts: { scheduler: boolean; concurrency?: number }): Promise<void> {
  const cfg = configOrExit((c) => ({ ...c, workers: { ...c.workers, concurrency: opts.concurrency ?? c.workers.concurrency } }))
  const scheduler = opts.scheduler && cfg.scheduler.enabled
  let w: StartedWorker
  try {
    w = await startWorker(cfg, { scheduler })
  } catch (err) {
    exitOnStartupError(err, cfg)
  }
  w.runtime.ctx.logger.info({ concurrency: cfg.workers.concurrency, scheduler, http_port: w.port }, 'tenantflow worker started')
  const stop = () => void w.stop().then(() => process.exit(0), () => process.exit(1))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
