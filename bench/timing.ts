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
import { computeDedupKey } from '../src/core/pipelines/runs.js'
import { createDataset, dropDataset } from '../src/core/datasets/index.js'
import { benchEnv } from './keys.js'


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
  const env = benchEnv(dataDir, databaseUrl, { LOG_LEVEL: 'warn', PIPELINE_CONFIG_DIRS: templates, ...extra })
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
  // When each fire committed, from the count of fired schedules seen every 50 ms (last_run_at is the
  // time the fire was decided, which can be earlier than its commit).
  const seen: { at: number; fired: number }[] = []
  const deadline = Date.now() + 600_000
  while (Date.now() < deadline) {
    const left = await sql<{ n: number | string }>`SELECT count(*) AS n FROM org_schedules WHERE last_run_at IS NOT NULL AND schedule_id LIKE ${`sch_b${stamp}_%`}`.execute(db.kysely)
    const fired = Number(left.rows[0]!.n)
    seen.push({ at: Date.now(), fired })
    if (fired >= rows.length) break
    await new Promise((r) => setTimeout(r, 50))
  }
  const committedBy = (p: number) => {
    const need = Math.ceil((p / 100) * rows.length)
    const hit = seen.find((x) => x.fired >= need)
    return hit ? Math.max(0, hit.at - due) : NaN
  }
  const fired = await db.kysely.selectFrom('org_schedules').select('last_run_at').where('org_slug', 'in', orgs).where('last_run_at', 'is not', null).limit(20_000).execute()
  const runs = await sql<{ n: number | string }>`SELECT count(*) AS n FROM org_pipeline_runs WHERE trigger_type = 'schedule' AND org_slug LIKE ${`bs-${stamp}-%`}`.execute(db.kysely)
  const decided = fired.map((f) => Number(f.last_run_at) - due).sort((a, b) => a - b)
  await runtime.ctx.engine!.stop(0)
  await runtime.close()
  rmSync(dataDir, { recursive: true, force: true })
  return {
    label, fired: fired.length, runs: Number(runs.rows[0]!.n),
    p50: committedBy(50), p99: committedBy(99), max: committedBy(100), decidedP99: percentile(decided, 99),
  }
}

/**
 * Fairness: `busy` keeps 20+ slow runs (3 s each) queued behind a pool of 4 workers, so it alone could
 * fill every slot; `idle` triggers one no-op run at a time. trigger→RUNNING of idle's runs is
 * started_at − created_at. `maxPerOrg` is WORKER_MAX_PER_ORG (4 = no slot kept for other orgs).
 */
async function fairnessCase(databaseUrl: string | null, label: string, maxPerOrg: number | null, samples = 40) {
  const extra: Record<string, string> = { WORKER_CONCURRENCY: '4', SCHEDULER_ENABLED: 'false' }
  if (maxPerOrg !== null) extra.WORKER_MAX_PER_ORG = String(maxPerOrg)
  const { runtime, dataDir } = await runtimeFor(databaseUrl, extra)
  const db = runtime.ctx.db
  const engine = runtime.ctx.engine!
  const stamp = Date.now().toString(36)
  const busy = `bf-busy-${stamp}`
  const idle = `bf-idle-${stamp}`
  await insertOrgs(db, [busy, idle], 1000, Date.now())
  // These runs write nothing, but a run starts only once its org's dataset exists.
  const datasets: Record<string, string> = {}
  for (const org of [busy, idle]) {
    datasets[org] = await createDataset(db, dataDir, org)
    await db.kysely.updateTable('org_profiles').set({ dataset_id: datasets[org]! }).where('org_slug', '=', org).execute()
  }
  let n = 0
  const trigger = (org: string, pipeline: string) => {
    const parameters = { n: n++ }
    return engine.admit({
      org_slug: org, pipeline_id: pipeline, parameters, dedup_key: computeDedupKey(pipeline, parameters),
      trigger_type: 'api', triggered_by: 'bench', max_attempts: 1, now: Date.now(),
    })
  }
  const pendingOf = async (org: string) =>
    (await db.kysely.selectFrom('org_pipeline_runs').select('run_id').where('org_slug', '=', org).where('status', '=', 'PENDING').limit(100).execute()).length
  engine.start({ workers: true, scheduler: false, maintenance: false })
  for (let i = 0; i < 24; i++) await trigger(busy, 'bench/timing/slow')
  let stop = false
  // Keeps busy's queue at 20+ while idle is measured.
  const refill = (async () => {
    while (!stop) {
      const p = await pendingOf(busy)
      for (let i = p; i < 20; i++) await trigger(busy, 'bench/timing/slow')
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  await new Promise((r) => setTimeout(r, 500))
  const lat: number[] = []
  for (let i = 0; i < samples; i++) {
    const r = await trigger(idle, 'bench/timing/noop')
    if (r.kind !== 'admitted') continue
    const deadline = Date.now() + 60_000
    for (;;) {
      const row = await db.kysely.selectFrom('org_pipeline_runs').select(['started_at', 'created_at']).where('run_id', '=', r.run.run_id).executeTakeFirst()
      if (row?.started_at != null) {
        lat.push(Number(row.started_at) - Number(row.created_at))
        break
      }
      if (Date.now() > deadline) break
      await new Promise((res) => setTimeout(res, 10))
    }
    await new Promise((res) => setTimeout(res, 100))
  }
  stop = true
  await refill
  await engine.stop(0)
  for (const org of [busy, idle]) await dropDataset(db, dataDir, { orgSlug: org, datasetId: datasets[org]! })
  await runtime.close()
  rmSync(dataDir, { recursive: true, force: true })
  lat.sort((a, b) => a - b)
  return { label, maxPerOrg: maxPerOrg ?? 3, started: lat.length, samples, p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[lat.length - 1] ?? NaN }
}

export async function runFairnessBench(): Promise<void> {
  const rows = [await fairnessCase(null, 'embedded', null), await fairnessCase(null, 'embedded', 4, 10)]
  if (process.env.BENCH_DATABASE_URL) {
    rows.push(await fairnessCase(process.env.BENCH_DATABASE_URL, 'postgres', null), await fairnessCase(process.env.BENCH_DATABASE_URL, 'postgres', 4, 10))
  }
  console.log('\n| store | WORKER_MAX_PER_ORG (4 workers) | idle org runs started | trigger→RUNNING p50 ms | p99 ms | max ms |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const x of rows) console.log(`| ${x.label} | ${x.maxPerOrg}${x.maxPerOrg === 3 ? ' (default)' : ''} | ${x.started}/${x.samples} | ${x.p50} | ${x.p99} | ${x.max} |`)
}

/** 10,000 schedules of 100 orgs due at once: how late each fire commits, per store. */
export async function runSchedulerBench(): Promise<void> {
  const sched = [await schedulerCase(null, 'embedded')]
  if (process.env.BENCH_DATABASE_URL) sched.push(await schedulerCase(process.env.BENCH_DATABASE_URL, 'postgres'))
  console.log('\n| store (10,000 schedules, 100 orgs, due at once) | fired | runs admitted | committed lateness p50 ms | p99 ms | max ms | decided p99 ms |')
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const x of sched) console.log(`| ${x.label} | ${x.fired}/10000 | ${x.runs} | ${x.p50} | ${x.p99} | ${x.max} | ${x.decidedP99} |`)
}

export async function runTimingBench(): Promise<void> {
  await runFairnessBench()
  await runSchedulerBench()
}
