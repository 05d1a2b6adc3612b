// Engine part of `npm run bench`: admission decisions per second (trigger → 202 with a no-op
// template, workers off so every decision is a fresh admission) and trigger-to-RUNNING latency
// (workers on), on the embedded store and, with BENCH_DATABASE_URL, on PostgreSQL.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import Fastify from 'fastify'
import { logDestination } from '../src/core/observability/logger.js'
import { loadConfig } from '../src/app/config.js'
import { createRuntime } from '../src/app/runtime.js'
import { buildApp } from '../src/app/server.js'
import type { Processor } from '../src/core/processors/types.js'
import { finishAdmitted } from './admission.js'
import { BENCH_ROOT_KEY as ROOT, benchEnv } from './keys.js'


const noop: Processor<Record<string, never>> = {
  name: 'bench.noop',
  description: 'does nothing (benchmark)',
  validateConfig: () => ({}),
  run: async () => ({ rows_processed: 0 }),
}

const TEMPLATE = `description: no-op pipeline for the benchmark
parameters:
  n: { type: integer, min: 0, max: 100000000 }
timeout_seconds: 60
steps:
  - id: only
    processor: bench.noop
`

/** Connections of the trigger case and of its bare baseline (bareBaseline below). */
export const TRIGGER_CONNECTIONS = 16
/** Rounds of (bare POST, trigger) on the embedded store. */
const ROUNDS = 3

/**
 * POSTs `{"parameters":{"n":…}}` with a different n in every request (no two triggers are duplicates)
 * over TRIGGER_CONNECTIONS connections, for `seconds`. Each connection is its own one-connection
 * autocannon run with its own list of prebuilt requests, so the client sends stored bytes, as for a
 * static body: a body built per request (setupRequest) costs the in-process client about a third of a
 * bare POST and would slow the baseline's client more than our server. n runs from `first` up. A
 * connection that has sent all of its list starts it again: harmless for a bare route, an error for a
 * trigger, since a repeated request would be deduplicated instead of admitted.
 */
export async function distinctPosts(port: number, path: string, headers: Record<string, string>, seconds: number, first = 0) {
  // Enough for 1,000 requests/s per connection (16,000/s, several times the trigger's rate) and
  // no more: the prebuilt requests live on the heap this process's server collects garbage in.
  const perConnection = Math.ceil(seconds * 1000)
  const runs = await Promise.all(
    Array.from({ length: TRIGGER_CONNECTIONS }, (_, c) =>
      autocannon({
        url: `http://127.0.0.1:${port}`,
        connections: 1,
        duration: seconds,
        requests: Array.from({ length: perConnection }, (_, i) => ({
          method: 'POST' as const,
          path,
          headers: { ...headers, 'content-type': 'application/json' },
          body: `{"parameters":{"n":${first + c * perConnection + i}}}`,
        })),
      }),
    ),
  )
  const sum = (f: (r: autocannon.Result) => number) => runs.reduce((a, r) => a + f(r), 0)
  return {
    /** Whether some connection sent a request of its list twice. */
    repeated: runs.some((r) => r.requests.sent > perConnection),
    rps: sum((r) => r.requests.total) / seconds,
    ok: sum((r) => r['2xx']),
    non2xx: sum((r) => r.non2xx),
    // The connections share one distribution: their median p50, and the worst p99.
    p50: runs.map((r) => r.latency.p50).sort((a, b) => a - b)[runs.length >> 1]!,
    p99: Math.max(...runs.map((r) => r.latency.p99)),
    sent: TRIGGER_CONNECTIONS * perConnection,
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function engineCase(databaseUrl: string | null, label: string, duration: number, baseline?: (seconds: number) => Promise<number>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tf-bench-engine-'))
  const templates = join(dataDir, 'templates')
  mkdirSync(join(templates, 'bench', 'noop'), { recursive: true })
  writeFileSync(join(templates, 'bench', 'noop', 'run.yml'), TEMPLATE)
  const env = benchEnv(dataDir, databaseUrl, { PIPELINE_CONFIG_DIRS: templates, WORKER_CONCURRENCY: '4', WORKER_POLL_MS: '50' })
  const runtime = await createRuntime(loadConfig(env), {
    processors: [(r) => r.register(noop)],
    logDestination: logDestination(join(dataDir, 'server.log')),
  })
  const app = await buildApp(runtime.ctx)
  const slug = `bench-${Date.now().toString(36)}`
  const root = { 'x-ca-root-key': ROOT }
  const on = await app.inject({
    method: 'POST',
    url: '/api/v1/organizations/onboard',
    headers: root,
    payload: { org_slug: slug, company_name: 'Bench Inc', admin_email: 'b@bench.example.com', subscription_plan: 'SCALE' },
  })
  const key = on.json().api_key as string
  await app.inject({
    method: 'PUT',
    url: `/api/v1/organizations/${slug}/subscription`,
    headers: root,
    payload: {
      plan_name: 'ENTERPRISE',
      daily_limit: 999999,
      monthly_limit: 999999,
      concurrent_limit: 999999,
      requests_per_minute: 100000,
      triggers_per_minute: 100000,
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  let first = 0
  const trigger = async (seconds: number) => {
    const r = await distinctPosts(port, `/api/v1/pipelines/run/${slug}/bench/noop/run`, { 'x-api-key': key }, seconds, first)
    first += r.sent
    if (r.repeated) throw new Error('bench: a trigger connection ran out of distinct parameters')
    return r
  }
  await trigger(1) // warm-up: JIT and statement caches in steady state, as every other case has
  // Embedded: three rounds, each a bare Fastify POST then the trigger, one after the other, so each
  // ratio compares two runs seconds apart (single runs on this machine swing by a fifth); the
  // median round is reported. PostgreSQL: one round, no baseline.
  const rounds: { r: Awaited<ReturnType<typeof trigger>>; bare: number | null }[] = []
  for (let i = 0; i < (baseline ? ROUNDS : 1); i++) {
    // The runs admitted so far are marked finished, as workers would have, so no round starts with
    // the tens of thousands of PENDING runs the rounds before it left (a backlog no org holds).
    await finishAdmitted(runtime.ctx.db, slug, Date.now())
    const bare = baseline ? await baseline(duration) : null
    rounds.push({ r: await trigger(duration), bare })
  }
  rounds.sort((a, b) => (a.bare ? a.r.ok / a.bare : a.r.ok) - (b.bare ? b.r.ok / b.bare : b.r.ok))
  const { r, bare } = rounds[rounds.length >> 1]!
  const admitted = r.ok

  // Trigger-to-RUNNING: workers on, one trigger at a time, started_at - created_at from the run rows.
  // The admission phase's backlog (tens of thousands of PENDING no-op runs) is removed first, so
  // latency measures an idle system, not a queue (the workers would take minutes to drain it).
  await runtime.ctx.db.kysely.deleteFrom('org_pipeline_runs').where('org_slug', '=', slug).where('status', '=', 'PENDING').execute()
  runtime.ctx.engine!.start({ workers: true, scheduler: false })
  const ids: string[] = []
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/pipelines/run/${slug}/bench/noop/run`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { n: 50_000_000 + i } }),
    })
    ids.push(((await res.json()) as { run_id: string }).run_id)
    await new Promise((res2) => setTimeout(res2, 5))
  }
  const deadline = Date.now() + 60_000
  let rows: { started_at: number | null; created_at: number }[] = []
  while (Date.now() < deadline) {
    rows = await runtime.ctx.db.kysely
      .selectFrom('org_pipeline_runs')
      .select(['started_at', 'created_at'])
      .where('org_slug', '=', slug)
      .where('run_id', 'in', ids)
      .limit(200)
      .execute()
    if (rows.every((x) => x.started_at !== null)) break
    await new Promise((res2) => setTimeout(res2, 100))
  }
  const lat = rows.filter((x) => x.started_at !== null).map((x) => x.started_at! - x.created_at).sort((a, b) => a - b)
  await app.close()
  await runtime.ctx.engine!.stop(5000)
  await runtime.close()
  rmSync(dataDir, { recursive: true, force: true })
  return {
    label,
    admissionsPerSec: admitted / duration,
    barePostPerSec: bare,
    p50: r.p50,
    p99: r.p99,
    non2xx: r.non2xx,
    runningP50: percentile(lat, 50),
    runningP99: percentile(lat, 99),
    started: lat.length,
  }
}

export async function runEngineBench(opts: { duration: number }): Promise<{ embeddedAdmissionsPerSec: number; barePostPerSec: number }> {
  const bare = await bareBaseline()
  let embedded: Awaited<ReturnType<typeof engineCase>>
  try {
    embedded = await engineCase(null, 'embedded', opts.duration, bare.rate)
  } finally {
    await bare.close()
  }
  const results = [embedded]
  if (process.env.BENCH_DATABASE_URL) results.push(await engineCase(process.env.BENCH_DATABASE_URL, 'postgres', opts.duration))
  console.log('\n| store | admissions/s (trigger → 202) | bare Fastify POST/s, same round | trigger p50 ms | trigger p99 ms | non-2xx | trigger→RUNNING p50 ms | p99 ms | runs started |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const x of results) {
    console.log(`| ${x.label} | ${x.admissionsPerSec.toFixed(0)} | ${x.barePostPerSec?.toFixed(0) ?? '-'} | ${x.p50} | ${x.p99} | ${x.non2xx} | ${x.runningP50} | ${x.runningP99} | ${x.started}/200 |`)
  }
  return { embeddedAdmissionsPerSec: embedded.admissionsPerSec, barePostPerSec: embedded.barePostPerSec! }
}

/** A bare Fastify POST route answering the same JSON bodies, sent the same way: the baseline for admissions. */
async function bareBaseline(): Promise<{ rate: (seconds: number) => Promise<number>; close: () => Promise<void> }> {
  const bare = Fastify({ logger: false })
  bare.post('/run', async () => ({ run_id: 'run_x', status: 'PENDING' }))
  await bare.listen({ port: 0, host: '127.0.0.1' })
  const port = (bare.server.address() as { port: number }).port
  await distinctPosts(port, '/run', {}, 1) // warm-up, as the trigger case has
  return { rate: async (seconds) => (await distinctPosts(port, '/run', {}, seconds)).rps, close: () => bare.close() }
}
