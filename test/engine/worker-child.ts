// Child process for the crash test: a worker pool on the test's store, killed with SIGKILL mid-run.
// Env: TF_DATABASE_URL (empty = SQLite), TF_DATA_DIR, TF_TEMPLATE_DIR, TF_WORKER_ID; optional
// TF_CONCURRENCY (default 4), TF_MAX_PER_ORG (default: the pool's), TF_LEASE_MS (default 1000).
import { systemClock } from '../../src/core/clock.js'
import { openDatabase } from '../../src/core/db/database.js'
import { testEngine } from './fixtures.js'

const db = openDatabase({ databaseUrl: process.env.TF_DATABASE_URL || null, dataDir: process.env.TF_DATA_DIR! })
const { engine } = testEngine(db, systemClock, {
  templateDir: process.env.TF_TEMPLATE_DIR!,
  workerId: process.env.TF_WORKER_ID!,
  leaseMs: Number(process.env.TF_LEASE_MS || 1000),
  heartbeatMs: 200,
  concurrency: Number(process.env.TF_CONCURRENCY || 4),
  ...(process.env.TF_MAX_PER_ORG ? { maxPerOrg: Number(process.env.TF_MAX_PER_ORG) } : {}),
})
engine.start({ workers: true, scheduler: false, maintenance: false })
process.stdout.write('ready\n')
