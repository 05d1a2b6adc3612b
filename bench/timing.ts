// Timing part of `npm run bench` (issue 8 items 5 and 6), self-contained:
// - scheduler: 10,000 per-minute schedules (100 orgs × 100) all due at the same instant; how late each
//   fires (last_run_at − due time) and when the last fire committed, with every fire admitting a run;
// - fairness: trigger→RUNNING for an idle org while another org saturates its concurrency with slow runs.
// Embedded store, and PostgreSQL with BENCH_DATABASE_URL. Numbers, not assertions.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { loadConfig } from '../src/app/config.js'
import { createRuntime, type Runtime } from '../src/app/runtime.js'
import type { Processor } from '../src/core/processors/types.js'
import type { Db } from '../src/core/db/database.js'

const ROOT = 'bench-root-key-0123456789abcdefghijklmnopqrstuvwxyz'

const noop: Processor<Record<string, never>> = {
  name: 'bench.timing_noop',
  description: 'does nothing (benchmark)',
  validateConfig: () => ({}),
  run: async () => ({ rows_processed: 0 }),
}
const slow: Processor<Record<string, never>> = {
  name: 'bench.timing_slow',
  description: 'waits like a slow upstream (benchmark)',
  validateConfig: () => ({}),
  run: async (ctx) => {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 3000)
      ctx.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
    })
    return { rows_processed: 0 }
  },
}

const template = (processor: string) => `description: timing benchmark
parameters:
  n: { type: integer, min: 0, max: 100000000 }
timeout_seconds: 120
steps:
  - id: only
    processor: ${processor}
`

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function runtimeFor(databaseUrl: string | null, extra: Record<string, string>): Promise<{ runtime: Runtime; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tf-bench-timing-'))
  const templates = join(dataDir, 'templates')
  mkdirSync(join(templates, 'bench', 'timing'), { recursive: true })
  writeFileSync(join(templates, 'bench', 'timing', 'noop.yml'), template('bench.timing_noop'))
  writeFileSync(join(templates, 'bench', 'timing', 'slow.yml'), template('bench.timing_slow'))
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    CA_ROOT_API_KEY: ROOT,
    KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 6).toString('base64'),
    LOG_LEVEL: 'warn',
    PIPELINE_CONFIG_DIRS: templates,
    ...extra,
  }
  if (databaseUrl) env.DATABASE_URL = databaseUrl
  const runtime = await createRuntime(loadConfig(env), { processors: [(r) => r.register(noop).register(slow)] })
  return { runtime, dataDir }
}

/** Orgs straight into storage (no datasets: these runs write nothing), with limits that never refuse. */
async function insertOrgs(db: Db, slugs: string[], concurrent: number, now: number): Promise<void> {
  for (let i = 0; i < slugs.length; i += 200) {
    const part = slugs.slice(i, i + 200)
    await db.kysely.insertInto('org_profiles').values(part.map((s) => ({
      org_slug: s, company_name: s, admin_email: `a@${s}.example.com`, status: 'ACTIVE', dataset_id: `org_${s}`, created_at: now, updated_at: now,
    }))).execute()
    await db.kysely.insertInto('org_subscriptions').values(part.map((s) => ({
      org_slug: s, subscription_id: `sub_${s}`, plan_name: 'SCALE', status: 'ACTIVE', daily_limit: 1_000_000, monthly_limit: 10_000_000,
      concurrent_limit: concurrent, requests_per_minute: 100_000, triggers_per_minute: 100_000, trial_end_at: null, created_at: now, updated_at: now,
    }))).execute()
  }
}

async function schedulerCase(databaseUrl: string | null, label: string) {
  const { runtime, dataDir } = await runtimeFor(databaseUrl, { SCHEDULER_TICK_MS: '1000', WORKER_CONCURRENCY: '0' })
  const db = runtime.ctx.db
  const stamp = Date.now().toString(36)
  const orgs = Array.from({ length: 100 }, (_, i) => `bs-${stamp}-${i}`)
  const now = Date.now()
  await insertOrgs(db, orgs, 1_000_000, now)
  const due = now + 3000
  const rows = orgs.flatMap((org, o) => Array.from({ length: 100 }, (_, i) => ({
    schedule_id: `sch_b${stamp}_${o}_${i}`, org_slug: org, pipeline_id: 'bench/timing/noop', cron: '* * * * *', timezone: 'UTC',
    parameters: JSON.stringify({ n: i }), is_active: 1, next_run_at: due, last_run_at: null, last_run_id: null,
    last_status: null, last_error_code: null, created_at: now, updated_at: now,
  })))
  for (let i = 0; i < rows.length; i += 500) await db.kysely.insertInto('org_schedules').values(rows.slice(i, i + 500)).execute()
  runtime.ctx.engine!.start({ workers: false, scheduler: true, maintenance: false })
  let allFiredAt = NaN
  const deadline = Date.now() + 300_000
  while (Date.now() < deadline) {
    const left = await sql<{ n: number | string }>`SELECT count(*) AS n FROM org_schedules WHERE last_run_at IS NULL AND schedule_id LIKE ${`sch_b${stamp}_%`}`.execute(db.kysely)
    if (Number(left.rows[0]!.n) === 0) {
      allFiredAt = Date.now()
      break
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const fired = await db.kysely.selectFrom('org_schedules').select('last_run_at').where('org_slug', 'in', orgs).where('last_run_at', 'is not', null).limit(20_000).execute()
  const runs = await sql<{ n: number | string }>`SELECT count(*) AS n FROM org_pipeline_runs WHERE trigger_type = 'schedule' AND org_slug LIKE ${`bs-${stamp}-%`}`.execute(db.kysely)
  const lateness = fired.map((f) => Number(f.last_run_at) - due).sort((a, b) => a - b)
  await runtime.ctx.engine!.stop(0)
  await runtime.close()
  rmSync(dataDir, { recursive: true, force: true })
  return {
    label, fired: fired.length, runs: Number(runs.rows[0]!.n),
    p50: percentile(lateness, 50), p99: percentile(lateness, 99), max: lateness[lateness.length - 1] ?? NaN, allCommitted: allFiredAt - due,
  }
}

export async function runTimingBench(): Promise<void> {
  const sched = [await schedulerCase(null, 'embedded')]
  if (process.env.BENCH_DATABASE_URL) sched.push(await schedulerCase(process.env.BENCH_DATABASE_URL, 'postgres'))
  console.log('\n| store | schedules fired | runs admitted | lateness p50 ms | p99 ms | max ms | last fire committed ms after due |')
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const x of sched) console.log(`| ${x.label} | ${x.fired}/10000 | ${x.runs} | ${x.p50} | ${x.p99} | ${x.max} | ${x.allCommitted} |`)
}
