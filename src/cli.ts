// The `tenantflow` command: serve (API + workers + scheduler), worker (workers only), migrate,
// kms rewrap.
import { loadConfig, type Config } from './app/config.js'
import { exitOnConfigError, main as serve, startBackground, stopBackground } from './app/main.js'
import { createRuntime } from './app/runtime.js'
import { openDatabase } from './core/db/database.js'
import { migrateToLatest } from './core/db/migrate.js'

const USAGE = `usage: tenantflow <command>
  serve          start the API server, workers and scheduler (default)
  worker         run pipeline workers only (no HTTP server)
  migrate        apply database migrations and exit
  kms rewrap     re-wrap every stored data key under the current KMS key version
`

function config(): Config {
  try {
    return loadConfig(process.env, { persistDevSecrets: true })
  } catch (err) {
    exitOnConfigError(err)
  }
}

async function worker(): Promise<void> {
  const cfg = config()
  const runtime = await createRuntime(cfg, { defaultMetrics: true })
  await startBackground(runtime, { workers: true, scheduler: cfg.scheduler.enabled })
  runtime.ctx.logger.info({ concurrency: cfg.workers.concurrency }, 'tenantflow worker started')
  const stop = () =>
    void stopBackground(runtime, cfg.shutdownGraceMs)
      .then(() => runtime.close())
      .then(() => process.exit(0), () => process.exit(1))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

async function migrate(): Promise<void> {
  const cfg = config()
  const db = openDatabase({ databaseUrl: cfg.databaseUrl, dataDir: cfg.dataDir })
  try {
    const { applied } = await migrateToLatest(db)
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
  } finally {
    await db.close()
  }
}

async function kmsRewrap(): Promise<void> {
  const cfg = config()
  const runtime = await createRuntime(cfg)
  try {
    const { rewrapAll } = await import('./cli/kms-rewrap.js')
    const result = await rewrapAll({ db: runtime.ctx.db, kms: runtime.ctx.kms })
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    await runtime.close()
  }
}

async function run(argv: string[]): Promise<void> {
  const [cmd = 'serve', sub] = argv
  switch (cmd) {
    case 'serve':
      return serve()
    case 'worker':
      return worker()
    case 'migrate':
      return migrate()
    case 'kms':
      if (sub === 'rewrap') return kmsRewrap()
      break
    case 'help':
    case '--help':
      process.stdout.write(USAGE)
      return
  }
  process.stderr.write(USAGE)
  process.exit(2)
}

run(process.argv.slice(2)).catch((err) => exitOnConfigError(err))
