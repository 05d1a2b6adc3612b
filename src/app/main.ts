// `tenantflow serve`: validate config (exit non-zero naming the variable), build the runtime,
// listen, and shut down gracefully on SIGTERM/SIGINT: stop accepting, drain requests, let running
// steps finish up to the deadline, hand unfinished runs back.
import { ConfigError, loadConfig, type Config } from './config.js'
import { createRuntime, type Runtime } from './runtime.js'
import { buildApp, type App } from './server.js'

export interface Started {
  app: App
  runtime: Runtime
  config: Config
  stop(): Promise<void>
}

export async function startServer(config: Config, opts: { workers?: boolean; scheduler?: boolean } = {}): Promise<Started> {
  const runtime = await createRuntime(config, { defaultMetrics: true })
  const { ctx } = runtime
  let app: App
  try {
    app = await buildApp(ctx)
  } catch (err) {
    await runtime.close()
    throw err
  }
  await app.listen({ port: config.port, host: config.host })
  await startBackground(runtime, opts)
  let stopping: Promise<void> | null = null
  const stop = () => {
    stopping ??= (async () => {
      ctx.state.shuttingDown = true
      await app.close()
      await stopBackground(runtime, config.shutdownGraceMs)
      await runtime.close()
    })()
    return stopping
  }
  return { app, runtime, config, stop }
}

export async function startBackground(runtime: Runtime, opts: { workers?: boolean; scheduler?: boolean }): Promise<void> {
  runtime.ctx.engine?.start({ workers: opts.workers ?? true, scheduler: opts.scheduler ?? runtime.ctx.config.scheduler.enabled })
}

export async function stopBackground(runtime: Runtime, graceMs: number): Promise<void> {
  await runtime.ctx.engine?.stop(graceMs)
}

export function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`tenantflow: ${err.message}\n`)
    process.exit(2)
  }
  // Driver messages can carry connection details: print the error's kind and code only.
  const code = (err as { code?: unknown } | null)?.code
  const kind = err instanceof Error ? err.name : 'Error'
  process.stderr.write(`tenantflow: startup failed (${kind}${typeof code === 'string' ? ` ${code.slice(0, 40)}` : ''})\n`)
  process.exit(1)
}

export async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env, { persistDevSecrets: true })
  } catch (err) {
    exitOnConfigError(err)
  }
  let started: Started
  try {
    started = await startServer(config)
  } catch (err) {
    exitOnConfigError(err)
  }
  const log = started.runtime.ctx.logger
  if (config.rootKeyGenerated) {
    // Shown once, on the terminal only (not through the logger): it was just generated.
    process.stdout.write(`\nGenerated development root key (stored in ${config.dataDir}/root-key, mode 0600):\n  ${config.rootApiKey}\n\n`)
  }
  log.info({ host: config.host, port: config.port, environment: config.environment, store: config.databaseUrl ? 'postgres' : 'sqlite' }, 'tenantflow listening')
  const onSignal = (signal: string) => {
    log.info({ signal }, 'shutting down')
    started.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', () => onSignal('SIGTERM'))
  process.once('SIGINT', () => onSignal('SIGINT'))
}
