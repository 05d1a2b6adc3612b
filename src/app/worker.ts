// `tenantflow worker`: pipeline workers without the API. With WORKER_HTTP_PORT it also serves the
// operations routes (/health/live, /health/ready, /metrics) so runs finished here reach a scrape.
import type { Config } from './config.js'
import { createRuntime, type Runtime } from './runtime.js'
import { buildApp, type App } from './server.js'
import { startBackground, stopBackground } from './main.js'

export interface StartedWorker {
  runtime: Runtime
  /** The operations HTTP server, when WORKER_HTTP_PORT is set. */
  app: App | null
  /** The port it listens on (useful with WORKER_HTTP_PORT=0), or null. */
  port: number | null
  stop(): Promise<void>
}

export async function startWorker(config: Config, opts: { scheduler?: boolean } = {}): Promise<StartedWorker> {
  const runtime = await createRuntime(config, { defaultMetrics: true })
  let app: App | null = null
  let port: number | null = null
  try {
    if (config.workerHttpPort !== null) {
      app = await buildApp(runtime.ctx, { opsOnly: true })
      await app.listen({ port: config.workerHttpPort, host: config.host })
      const addr = app.server.address()
      port = typeof addr === 'object' && addr ? addr.port : config.workerHttpPort
    }
  } catch (err) {
    await app?.close().catch(() => undefined)
    await runtime.close()
    throw err
  }
  await startBackground(runtime, { workers: true, scheduler: opts.scheduler ?? config.scheduler.enabled, role: 'worker' })
  let stopping: Promise<void> | null = null
  const stop = () => {
    stopping ??= (async () => {
      // Readiness turns 503 first, so an orchestrator stops counting on this worker while it drains.
      runtime.ctx.state.shuttingDown = true
      await stopBackground(runtime, config.shutdownGraceMs)
      await app?.close()
      await runtime.close()
    })()
    return stopping
  }
  return { runtime, app, port, stop }
}
