// `tenantflow serve`: validate config (exit non-zero listing every problem), build the runtime,
// listen, and shut down gracefully on SIGTERM/SIGINT: stop accepting, drain requests, let running
// steps finish up to the deadline, hand unfinished runs back.
import { ConfigError, loadConfig, type Config } from './config.js'
import { createRuntime, type Runtime } from './runtime.js'
import { buildApp, type App } from './server.js'
import { describeStartupError, StartupStepError } from './startup-errors.js'

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
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    await app.close().catch(() => undefined)
    await runtime.close()
    throw new StartupStepError('listen', err)
  }
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

export async function startBackground(runtime: Runtime, opts: { workers?: boolean; scheduler?: boolean; role?: 'serve' | 'worker' }): Promise<void> {
  runtime.ctx.engine?.start({ workers: opts.workers ?? true, scheduler: opts.scheduler ?? runtime.ctx.config.scheduler.enabled, role: opts.role ?? 'serve' })
  await runtime.ctx.engine?.checkedIn()
}

export async function stopBackground(runtime: Runtime, graceMs: number): Promise<void> {
  await runtime.ctx.engine?.stop(graceMs)
}

/** Prints every problem of a failed startup in words with a fix hint, then exits (2 for configuration, else 1). */
export function exitOnStartupError(err: unknown, config: Config | null = null): never {
  for (const p of describeStartupError(err, config)) process.stderr.write(`tenantflow: ${p.message}\n  fix: ${p.hint}\n`)
  process.exit(err instanceof ConfigError ? 2 : 1)
}

/** Loads the configuration from the process environment or exits listing every problem. */
export function configOrExit(overrides: (c: Config) => Config = (c) => c): Config {
  try {
    return overrides(loadConfig(process.env, { persistDevSecrets: true }))
  } catch (err) {
    exitOnStartupError(err)
  }
}

export async function main(opts: { port?: number; host?: string } = {}): Promise<void> {
  const config = configOrExit((c) => ({ ...c, port: opts.port ?? c.port, host: opts.host ?? c.host }))
  let started: Started
  try {
    started = await startServer(config)
  } catch (err) {
    exitOnStartupError(err, config)
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
