// Versioned, forward-only migrations. Two processes starting at once apply each migration once:
// on PostgreSQL Kysely's migrator takes a row lock; on SQLite it takes none (it assumes one process),
// so we hold an exclusive lock on a side file for the whole run (see withSqliteMigrationLock).
import SqliteDatabase from 'better-sqlite3'
import { Migrator, sql, type Migration, type MigrationProvider } from 'kysely'
import type { Db } from './database.js'
import { coreMigration } from './migrations/001_core.js'
import { engineMigration } from './migrations/002_engine.js'
import { incarnationsMigration } from './migrations/003_incarnations.js'
import { auditActionMigration } from './migrations/006_audit_action.js'
import { consoleSessionsMigration } from './migrations/008_console_sessions.js'
import { runsMigration } from './migrations/007_runs.js'
import { queryPlansMigration } from './migrations/009_query_plans.js'
import { opRuntimeMigration } from './migrations/005_op_runtime.js'
import { processesMigration } from './migrations/010_processes.js'
import { orgWebhooksMigration } from './migrations/016_org_webhooks.js'
import { admissionFunctionMigration } from './migrations/015_admission_function.js'
import { ensurePartitions } from './partitions.js'

function migrations(db: Db): Record<string, Migration> {
  return {
    '001_core': coreMigration(db.dialect),
    '002_engine': engineMigration(db.dialect),
    '003_incarnations': incarnationsMigration(db.dialect),
    '006_audit_action': auditActionMigration(db.dialect),
    '008_console_sessions': consoleSessionsMigration(db.dialect),
    '007_runs': runsMigration(db.dialect),
    '009_query_plans': queryPlansMigration(db.dialect),
    '005_op_runtime': opRuntimeMigration(db.dialect),
    '010_processes': processesMigration(db.dialect),
    '015_admission_function': admissionFunctionMigration(db.dialect),
    '016_org_webhooks': orgWebhooksMigration(db.dialect),
  }
}

export async function listTables(db: Db): Promise<string[]> {
  if (db.dialect === 'postgres') {
    const r = await sql<{ name: string }>`
      SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r','p') AND NOT c.relispartition
      ORDER BY 1 LIMIT 500`.execute(db.kysely)
    return r.rows.map((x) => x.name)
  }
  const r = await sql<{ name: string }>`
    SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1 LIMIT 500`.execute(db.kysely)
  return r.rows.map((x) => x.name)
}

export async function migrateToLatest(db: Db, now = Date.now()): Promise<{ applied: string[] }> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(db) }
  const migrator = new Migrator({
    db: db.kysely,
    provider,
    migrationTableName: 'tenantflow_migrations',
    migrationLockTableName: 'tenantflow_migrations_lock',
    // Prefixes are assigned per work stream and land in any order: a store that already applied 008
    // must still apply a later-landed 007 instead of refusing to start.
    allowUnorderedMigrations: true,
  })
  const { error, results } = await withSqliteMigrationLock(db, () => migrator.migrateToLatest())
  if (error) throw error instanceof Error ? error : new Error('migration failed')
  if (db.dialect === 'postgres') await ensurePartitions(db, now)
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) }
}

/**
 * Kysely's SQLite adapter has no migration lock, and a second connection to the database itself cannot
 * be the lock (it would block this process's own writes). An exclusive transaction on a side file is a
 * cross-process mutex that the OS releases if the holder dies; waiters block up to busy_timeout.
 */
async function withSqliteMigrationLock<T>(db: Db, run: () => Promise<T>): Promise<T> {
  if (db.dialect !== 'sqlite' || !db.sqlitePath || db.sqlitePath === ':memory:') return run()
  const lock = new SqliteDatabase(`${db.sqlitePath}.migrate-lock`, { timeout: 120_000 })
  try {
    lock.exec('BEGIN EXCLUSIVE')
    try {
      return await run()
    } finally {
      lock.exec('COMMIT')
    }
  } finally {
    lock.close()
  }
}

/** Names of migrations not yet applied (read-only: creates no table on a fresh database). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(db) }
  const migrator = new Migrator({
    db: db.kysely,
    provider,
    migrationTableName: 'tenantflow_migrations',
    migrationLockTableName: 'tenantflow_migrations_lock',
  })
  return (await migrator.getMigrations()).filter((m) => !m.executedAt).map((m) => m.name)
}
