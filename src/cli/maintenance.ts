// `tenantflow migrate` and `tenantflow kms rewrap`: one-shot maintenance commands.
import { configOrExit, exitOnStartupError } from '../app/main.js'
import { createRuntime } from '../app/runtime.js'
import { StartupStepError } from '../app/startup-errors.js'
import { openDatabase } from '../core/db/database.js'
import { migrateToLatest } from '../core/db/migrate.js'

export async function runMigrate(): Promise<number> {
  const cfg = configOrExit()
  const db = openDatabase({ databaseUrl: cfg.databaseUrl, dataDir: cfg.dataDir })
  try {
    const { applied } = await migrateToLatest(db)
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
    return 0
  } catch (err) {
    exitOnStartupError(new StartupStepError('database', err), cfg)
  } finally {
    await db.close().catch(() => undefined)
  }
}

export async function runKmsRewrap(): Promise<number> {
  const cfg = configOrExit()
  let runtime
  try {
    runtime = await createRuntime(cfg)
  } catch (err) {
    exitOnStartupError(err, cfg)
  }
  try {
    const { rewrapAll } = await import('./kms-rewrap.js')
    const result = await rewrapAll({ db: runtime.ctx.db, kms: runtime.ctx.kms })
    process.stdout.write(`${JSON.stringify(result)}\n`)
    return 0
  } finally {
    await runtime.close()
  }
}
