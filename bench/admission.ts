// Admission part of `npm run bench`: admission decisions per second in-process (no HTTP), one hot
// org, many concurrent callers, as the org's run history grows (10k / 100k / 1M runs). Shows the cost
// of the decision itself and whether it stays flat with history. Embedded, and PostgreSQL with
// BENCH_DATABASE_URL. Numbers, not assertions.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { openDatabase, type Db } from '../src/core/db/database.js'
import { migrateToLatest } from '../src/core/db/migrate.js'
import { admitRun } from '../src/core/orgs/admission.js'
import { computeDedupKey, getRun, listRuns, listStepLogs } from '../src/core/pipelines/runs.js'

const HISTORY = (process.env.BENCH_HISTORY ?? '10000,100000,1000000').split(',').map(Number)
const CALLERS = Number(process.env.BENCH_ADMIT_CALLERS ?? 32)

async function createOrg(db: Db, slug: string, now: number): Promise<void> {
  await db.kysely
    .insertInto('org_profiles')
    .values({ org_slug: slug, company_name: 'Bench', admin_email: 'b@bench.example.com', status: 'ACTIVE', dataset_id: `org_${slug}`, created_at: now, updated_at: now })
    .execute()
  await db.kysely
    .insertInto('org_subscriptions')
    .values({
      org_slug: slug, subscription_id: `sub_${slug}`, plan_name: 'ENTERPRISE', status: 'ACTIVE',
      daily_limit: 1e9, monthly_limit: 1e9, concurrent_limit: 1e9,
      requests_per_minute: 1e6, triggers_per_minute: 1e6, trial_end_at: null, created_at: now, updated_at: now,
    })
    .execute()
}

/** Adds finished runs to the org's history up to `total`, in set-based statements. */
async function fillHistory(db: Db, slug: string, from: number, total: number, now: number): Promise<void> {
  const chunk = 50_000
  for (let start = from; start < total; start += chunk) {
    const end = Math.min(total, start + chunk)
    const series = db.dialect === 'postgres'
      ? sql`SELECT g AS i FROM generate_series(CAST(${start} AS bigint), CAST(${end - 1} AS bigint)) AS g`
      : sql`WITH RECURSIVE s(i) AS (SELECT ${start} UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ${end}) SELECT i FROM s`
    // History spread over the last 30 days, every run finished.
    await sql`
      INSERT INTO org_pipeline_runs (run_id, run_date, org_slug, pipeline_id, status, parameters, dedup_key, trigger_type, triggered_by,
        schedule_id, created_at, started_at, finished_at, duration_ms, error_code, error_message, attempt, max_attempts, available_at,
        lease_owner, lease_expires_at, cancel_requested, slot_released, outcome_counted)
      SELECT 'run_hist_' || CAST(i AS TEXT), ${new Date(now).toISOString().slice(0, 10)}, ${slug}, 'bench/noop/run', 'SUCCEEDED', '{}',
        'hist_' || CAST(i AS TEXT), 'api', 'bench', NULL, CAST(${now} AS bigint) - i * 2, CAST(${now} AS bigint) - i * 2, CAST(${now} AS bigint) - i * 2 + 1, 1, NULL, NULL, 1, 1, CAST(${now} AS bigint) - i * 2,
        NULL, NULL, 0, 1, 1
      FROM (${series}) AS series`.execute(db.kysely)
  }
  if (from === 0) {
    // Five step rows for each of the first 1,000 runs, for the steps route.
    const steps = db.dialect === 'postgres'
      ? sql`SELECT g AS i FROM generate_series(CAST(0 AS bigint), CAST(4999 AS bigint)) AS g`
      : sql`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < 5000) SELECT i FROM s`
    await sql`
      INSERT INTO org_step_logs (log_id, log_date, run_id, org_slug, step_id, processor, attempt, status, started_at, finished_at,
        duration_ms, rows_processed, error_code, error_message, result)
      SELECT 'log_hist_' || CAST(i AS TEXT), ${new Date(now).toISOString().slice(0, 10)}, 'run_hist_' || CAST(i / 5 AS TEXT), ${slug},
        'step' || CAST(i % 5 AS TEXT), 'bench.noop', 1, 'COMPLETED', CAST(${now} AS bigint) - i, CAST(${now} AS bigint) - i + 1, 1, 10, NULL, NULL, '{}'
      FROM (${steps}) AS series`.execute(db.kysely)
  }
  // What autovacuum does to freshly loaded rows on a production server, done here because the bench
  // cannot count on it (it may be off, or not yet have reached them): planner statistics, and hint
  // bits and the visibility map, without which the first read of each fresh page also writes it.
  if (db.dialect === 'postgres') await sql`VACUUM (ANALYZE) org_pipeline_runs, org_step_logs`.execute(db.kysely)
  else await sql`PRAGMA optimize`.execute(db.kysely)
}

/**
 * Finishes the runs the bench admitted, as workers would: what grows between the columns is then the
 * finished history, as the table says, and not a backlog of hundreds of thousands of PENDING runs
 * (which a real org never holds, and which makes every admission's active-run index larger).
 */
export async function finishAdmitted(db: Db, slug: string, now: number): Promise<void> {
  await sql`UPDATE org_pipeline_runs SET status = 'SUCCEEDED', started_at = created_at, finished_at = created_at + 1, duration_ms = 1,
    slot_released = 1, outcome_counted = 1 WHERE org_slug = ${slug} AND status = 'PENDING'`.execute(db.kysely)
  await sql`UPDATE org_run_slots SET running = 0, updated_at = ${now} WHERE org_slug = ${slug}`.execute(db.kysely)
}

/**
 * p99 in ms of each read the run views make, over 300 calls at random places in the history. With
 * BENCH_READS_P50 each read's p50 and p99 are printed, and those of a bare `SELECT 1`: the floor a
 * loaded machine sets under every read.
 */
async function readLatencies(db: Db, slug: string, total: number): Promise<{ detail: number; steps: number; deep: number }> {
  const now = Date.now()
  const label = `${db.dialect} ${total.toLocaleString('en')} runs`
  const time = async (name: string, f: (i: number) => Promise<unknown>) => {
    const samples: number[] = []
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now()
      await f(i)
      samples.push(performance.now() - t0)
    }
    samples.sort((a, b) => a - b)
    if (process.env.BENCH_READS_P50) console.log(`${label} ${name}: p50 ${samples[150]!.toFixed(3)} p99 ${samples[297]!.toFixed(3)} ms`)
    return samples[Math.floor(samples.length * 0.99)]!
  }
  const pick = (i: number) => Math.floor(((i * 7919) % 300) / 300 * total)
  if (process.env.BENCH_READS_P50) await time('SELECT 1', () => sql`SELECT 1`.execute(db.kysely))
  return {
    detail: await time('detail', (i) => getRun(db, slug, `run_hist_${pick(i)}`)),
    steps: await time('steps', (i) => listStepLogs(db, slug, `run_hist_${i % 1000}`, { limit: 100 })),
    // A page deep in the history: the keyset position of a run far from the newest.
    deep: await time('deep page', (i) => listRuns(db, slug, { limit: 50, after: { created_at: now - pick(i) * 2, run_id: `run_hist_${pick(i)}` } })),
  }
}

async function admissionsPerSecond(db: Db, slug: string, seconds: number, seq: { n: number }): Promise<number> {
  const until = Date.now() + seconds * 1000
  let done = 0
  const caller = async () => {
    while (Date.now() < until) {
      const parameters = { n: seq.n++ }
      const now = Date.now()
      const r = await admitRun(db, {
        org_slug: slug, pipeline_id: 'bench/noop/run', parameters, dedup_key: computeDedupKey('bench/noop/run', parameters),
        trigger_type: 'api', triggered_by: 'bench', max_attempts: 1, now,
      })
      if (r.kind !== 'admitted') throw new Error(`unexpected ${r.kind}`)
      done++
    }
  }
  const started = Date.now()
  await Promise.all(Array.from({ length: CALLERS }, caller))
  return done / ((Date.now() - started) / 1000)
}

interface StoreResult {
  label: string
  rates: number[]
  reads: { detail: number; steps: number; deep: number }[]
}

async function storeCase(databaseUrl: string | null, label: string, seconds: number): Promise<StoreResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tf-bench-admit-'))
  const db = openDatabase({ databaseUrl, dataDir })
  await migrateToLatest(db)
  const slug = `bench-a-${Date.now().toString(36)}`
  const now = Date.now()
  await createOrg(db, slug, now)
  const rates: number[] = []
  const reads: StoreResult['reads'] = []
  const seq = { n: 0 }
  let filled = 0
  try {
    for (const total of HISTORY) {
      await fillHistory(db, slug, filled, total, now)
      filled = total
      await admissionsPerSecond(db, slug, 1, seq) // warm-up
      await finishAdmitted(db, slug, now)
      // The median of three rounds: one round's rate on this machine swings by a sixth either way.
      const rounds: number[] = []
      for (let i = 0; i < 3; i++) {
        rounds.push(await admissionsPerSecond(db, slug, seconds, seq))
        await finishAdmitted(db, slug, now)
      }
      rates.push(rounds.sort((a, b) => a - b)[1]!)
      reads.push(await readLatencies(db, slug, total))
    }
  } finally {
    if (databaseUrl) {
      // A shared PostgreSQL database keeps what earlier runs left; remove this run's rows.
      for (const t of ['org_step_logs', 'org_pipeline_runs', 'org_usage_quotas', 'org_run_slots', 'org_subscriptions', 'org_profiles'] as const) {
        await db.kysely.deleteFrom(t).where('org_slug', '=', slug).execute()
      }
    }
    await db.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
  return { label, rates, reads }
}

export async function runAdmissionBench(opts: { duration: number }): Promise<void> {
  const results = [await storeCase(null, 'embedded', opts.duration)]
  if (process.env.BENCH_DATABASE_URL) results.push(await storeCase(process.env.BENCH_DATABASE_URL, 'postgres', opts.duration))
  console.log(`\n| store | in-process admissions/s, one hot org, ${CALLERS} callers | ${HISTORY.map((h) => `${h.toLocaleString('en')} runs`).join(' | ')} | change first → last |`)
  console.log(`|---|---|${HISTORY.map(() => '---:').join('|')}|---:|`)
  for (const r of results) {
    const change = (r.rates[r.rates.length - 1]! / r.rates[0]! - 1) * 100
    console.log(`| ${r.label} | | ${r.rates.map((x) => x.toFixed(0)).join(' | ')} | ${change >= 0 ? '+' : ''}${change.toFixed(0)} % |`)
  }
  console.log(`\n| store | in-process read p99 ms (run detail / steps / deep runs page) | ${HISTORY.map((h) => `${h.toLocaleString('en')} runs`).join(' | ')} |`)
  console.log(`|---|---|${HISTORY.map(() => '---').join('|')}|`)
  for (const r of results) {
    console.log(`| ${r.label} | | ${r.reads.map((x) => `${x.detail.toFixed(2)} / ${x.steps.toFixed(2)} / ${x.deep.toFixed(2)}`).join(' | ')} |`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runAdmissionBench({ duration: Number(process.env.BENCH_SECONDS ?? 5) }).then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
}
