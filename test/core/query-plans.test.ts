// The hot run queries use an index that matches them, on both backends, once the tables hold history
// for many orgs: no scan of the runs table, no sort of an org's runs. Plans, not timings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CompiledQuery, sql } from 'kysely'
import { openDatabase, PREPARED_MARK, type Db } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { refreshPlannerStatistics } from '../../src/core/db/partitions.js'
import type { OrgPipelineRunsTable, RunStatus } from '../../src/core/db/schema.js'
import { getRun, listRuns, listStepLogs, type ListRunsQuery } from '../../src/core/pipelines/runs.js'
import { DEDUP_LOOKUP_SQL } from '../../src/core/orgs/admission-sql.js'
import { backendNames, freshBackend } from '../helpers/backends.js'

const ORGS = 8
const RUNS_PER_ORG = 2500
const BIG_ORG_RUNS = 50_000
const DAY = 86_400_000
const T0 = Date.UTC(2026, 10, 1)

function runRow(r: Pick<OrgPipelineRunsTable, 'run_id' | 'run_date' | 'org_slug' | 'pipeline_id' | 'status' | 'dedup_key' | 'created_at'>): OrgPipelineRunsTable {
  return {
    parameters: '{}', trigger_type: 'api', triggered_by: 'test', schedule_id: null, started_at: null, finished_at: null,
    duration_ms: null, error_code: null, error_message: null, attempt: 0, max_attempts: 1, available_at: r.created_at,
    lease_owner: null, lease_expires_at: null, cancel_requested: 0, slot_released: 1, outcome_counted: 1, ...r,
  }
}

async function seed(db: Db): Promise<void> {
  const statuses: RunStatus[] = ['COMPLETED', 'COMPLETED', 'COMPLETED', 'FAILED', 'CANCELLED']
  for (let o = 0; o < ORGS; o++) {
    for (let start = 0; start < RUNS_PER_ORG; start += 500) {
      const rows = []
      for (let i = start; i < start + 500; i++) {
        const created = T0 + i * 60_000
        rows.push(runRow({
          run_id: `run-${o}-${String(i).padStart(6, '0')}`, run_date: new Date(created).toISOString().slice(0, 10),
          org_slug: `org-${o}`, pipeline_id: `p/${i % 4}/x`, status: statuses[i % statuses.length]!, dedup_key: `d${i % 50}`, created_at: created,
        }))
      }
      await db.kysely.insertInto('org_pipeline_runs').values(rows).execute()
    }
  }
  const steps = []
  for (let r = 0; r < 200; r++) {
    for (let s = 0; s < 10; s++) {
      steps.push({
        log_id: `log-${r}-${s}`, log_date: '2026-11-01', run_id: `run-0-${String(r).padStart(6, '0')}`, org_slug: 'org-0',
        step_id: `s${s}`, processor: 'x', attempt: 1, status: 'COMPLETED' as const, started_at: T0 + r * 1000 + s, rows_processed: 0,
      })
    }
  }
  for (let i = 0; i < steps.length; i += 500) await db.kysely.insertInto('org_step_logs').values(steps.slice(i, i + 500)).execute()
  // One org with a long history, in one set-based statement: against it a statement whose generic plan
  // is misjudged (a LIMIT that is a parameter is costed as a tenth of the org's runs) stays planned per call.
  const series = db.dialect === 'postgres'
    ? sql`SELECT g AS i FROM generate_series(0, ${BIG_ORG_RUNS - 1}) AS g`
    : sql`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ${BIG_ORG_RUNS}) SELECT i FROM s`
  await sql`
    INSERT INTO org_pipeline_runs (run_id, run_date, org_slug, pipeline_id, status, parameters, dedup_key, trigger_type, triggered_by,
      created_at, attempt, max_attempts, available_at, cancel_requested, slot_released, outcome_counted)
    SELECT 'run-big-' || CAST(i AS TEXT), '2026-11-01', 'org-big', 'p/0/x', 'COMPLETED', '{}', 'd', 'api', 'test',
      CAST(${T0} AS bigint) + i, 0, 1, CAST(${T0} AS bigint) + i, 0, 1, 1
    FROM (${series}) AS series`.execute(db.kysely)
  await refreshPlannerStatistics(db)
}

/**
 * A Db whose statements are recorded with their values as they run. The hot reads are compiled once
 * (core/db/prepared.ts) and run through `executeQuery`, which is what is recorded: a hot read built
 * anew at each call would not be recorded at all.
 */
function recording(db: Db): { db: Db; queries: CompiledQuery[] } {
  const queries: CompiledQuery[] = []
  const kysely = new Proxy(db.kysely, {
    get(target, prop) {
      if (prop === 'executeQuery') {
        return (q: CompiledQuery) => {
          queries.push(q)
          return target.executeQuery(q)
        }
      }
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { db: { ...db, kysely }, queries }
}

interface PgNode {
  'Node Type': string
  'Relation Name'?: string
  'Index Name'?: string
  Plans?: PgNode[]
}

async function plan(db: Db, q: CompiledQuery): Promise<string | PgNode> {
  if (db.dialect === 'sqlite') {
    const r = await db.kysely.executeQuery<{ detail: string }>(CompiledQuery.raw(`EXPLAIN QUERY PLAN ${q.sql}`, [...q.parameters]))
    return r.rows.map((x) => x.detail).join('\n')
  }
  const r = q.sql.startsWith(PREPARED_MARK)
    ? await genericPlan(db, q)
    : await db.kysely.executeQuery<{ 'QUERY PLAN': unknown }>(CompiledQuery.raw(`EXPLAIN (FORMAT JSON) ${q.sql}`, [...q.parameters]))
  const doc = r.rows[0]!['QUERY PLAN']
  return ((typeof doc === 'string' ? JSON.parse(doc) : doc) as { Plan: PgNode }[])[0]!.Plan
}

/** The named statement a prepared read runs as on PostgreSQL (the test's pool has one connection). */
async function namedStatement(db: Db, q: CompiledQuery): Promise<{ name: string; generic_plans: number; custom_plans: number }> {
  const r = await sql<{ name: string; generic_plans: number; custom_plans: number }>`
    SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = ${q.sql} LIMIT 2`.execute(db.kysely)
  assert.equal(r.rows.length, 1, `one named statement for ${q.sql}`)
  return r.rows[0]!
}

/** The plan PostgreSQL keeps for the statement once it stops planning per call: its generic plan. */
async function genericPlan(db: Db, q: CompiledQuery) {
  const { name } = await namedStatement(db, q)
  const args = sql.join(q.parameters.map((v) => sql.lit(v)))
  await sql`SET plan_cache_mode = force_generic_plan`.execute(db.kysely)
  try {
    return await sql<{ 'QUERY PLAN': unknown }>`EXPLAIN (FORMAT JSON) EXECUTE ${sql.id(name)}(${args})`.execute(db.kysely)
  } finally {
    await sql`RESET plan_cache_mode`.execute(db.kysely)
  }
}

/** Relations (partitions) that hold rows: an empty partition is scanned (and sorted) for free. */
async function nonEmptyRelations(db: Db): Promise<Set<string>> {
  const r = await sql<{ relname: string }>`SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples > 0 AND relname LIKE 'org_%' LIMIT 1000`.execute(db.kysely)
  return new Set(r.rows.map((x) => x.relname))
}

function relationsUnder(n: PgNode): string[] {
  return [...(n['Relation Name'] ? [n['Relation Name']] : []), ...(n.Plans ?? []).flatMap(relationsUnder)]
}

function assertPgIndexed(n: PgNode, full: Set<string>, index: RegExp, what: string, sortOk: boolean, used: string[] = []): string[] {
  const rel = n['Relation Name']
  if (rel && full.has(rel)) {
    assert.ok(!/Seq Scan/.test(n['Node Type']), `${what}: sequential scan of ${rel}`)
    if (n['Index Name']) used.push(n['Index Name'])
  }
  if (n['Node Type'] === 'Sort' && !sortOk) assert.ok(relationsUnder(n).every((r) => !full.has(r)), `${what}: sorts rows of ${relationsUnder(n).join(', ')}`)
  for (const c of n.Plans ?? []) assertPgIndexed(c, full, index, what, sortOk, used)
  return used
}

/** `sortOk`: the index bounds the rows to one run's few steps, so PostgreSQL may sort those instead of merging partitions. */
async function assertIndexed(db: Db, q: CompiledQuery, index: RegExp, what: string, sortOk = false): Promise<void> {
  const p = await plan(db, q)
  if (typeof p === 'string') {
    assert.match(p, index, `${what}: ${p}`)
    assert.doesNotMatch(p, /SCAN org_pipeline_runs(?! USING)|SCAN org_step_logs(?! USING)/, `${what} scans: ${p}`)
    assert.doesNotMatch(p, /TEMP B-TREE/, `${what} sorts: ${p}`)
    return
  }
  const used = assertPgIndexed(p, await nonEmptyRelations(db), index, what, sortOk)
  assert.ok(used.length > 0 && used.every((u) => index.test(u)), `${what}: indexes used on the rows: ${used.join(', ') || 'none'}`)
}

for (const name of backendNames()) {
  test(`hot run queries use their index (${name})`, async () => {
    const b = await freshBackend(name)
    // One connection, so the session that prepared a named statement is the one asked about it.
    const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 1 })
    try {
      await migrateToLatest(db, T0)
      await seed(db)
      const rec = recording(db)
      const cases: [string, () => Promise<unknown>, RegExp, boolean?][] = [
        ['run by id', () => getRun(rec.db, 'org-3', 'run-3-001234'), /org_pipeline_runs_id_idx|org_pipeline_runs_p\d+_org_slug_run_id_idx|pkey/],
        ['runs page 1', () => listRuns(rec.db, 'org-3', { limit: 50 }), /org_pipeline_runs_org_idx|org_slug_created_at_run_id_idx/],
        ['deep runs page', () => listRuns(rec.db, 'org-3', { limit: 50, after: { created_at: T0 + 200 * 60_000, run_id: 'run-3-000200' } }), /org_pipeline_runs_org_idx|org_slug_created_at_run_id_idx/],
        ['deep page, long history', () => listRuns(rec.db, 'org-big', { limit: 50, after: { created_at: T0 + 20_000, run_id: 'run-big-20000' } }), /org_pipeline_runs_org_idx|org_slug_created_at_run_id_idx/],
        ['runs by status', () => listRuns(rec.db, 'org-3', { limit: 50, status: 'FAILED', after: { created_at: T0 + 2000 * 60_000, run_id: 'run-3-002000' } }), /org_pipeline_runs_status_idx|org_slug_status_created_at/],
        ['runs by pipeline', () => listRuns(rec.db, 'org-3', { limit: 50, pipeline_id: 'p/1/x' }), /org_pipeline_runs_pipeline_idx|org_slug_pipeline_id_created/],
        ['steps of a run', () => listStepLogs(rec.db, 'org-0', 'run-0-000100', { limit: 100 }), /org_step_logs_run_idx|org_slug_run_id_started_at/, true],
        ['steps after a key', () => listStepLogs(rec.db, 'org-0', 'run-0-000100', { limit: 100, after: { started_at: T0 + 100_000, log_id: 'log-100-0' } }), /org_step_logs_run_idx|org_slug_run_id_started_at/, true],
      ]
      for (const [what, run, index, sortOk] of cases) {
        rec.queries.length = 0
        await run()
        assert.equal(rec.queries.length, 1, `${what}: one statement, compiled once`)
        const q = rec.queries[0]!
        assert.ok(q.sql.startsWith(PREPARED_MARK), `${what}: a prepared statement`)
        if (db.dialect === 'postgres') {
          // PostgreSQL plans a named statement's first five runs with their values, then keeps its
          // generic plan unless that looks dearer: a hot read must not be planned anew at every call.
          const before = await namedStatement(db, q)
          for (let i = 0; i < 5; i++) await run()
          const after = await namedStatement(db, q)
          assert.ok(after.generic_plans > before.generic_plans, `${what}: planned at every call (${after.custom_plans} custom plans, no generic plan)`)
        }
        await assertIndexed(db, q, index, what, sortOk)
      }
      // The admission's dedup lookup (an org's oldest active run with one dedup key): the same text runs
      // as a prepared statement on SQLite and inside tenantflow_admit on PostgreSQL.
      const dedup = CompiledQuery.raw(DEDUP_LOOKUP_SQL[db.dialect], ['org-5', 'd7'])
      // A partial index over active runs only: what it returns is bounded by the running work, so a sort of it is fine.
      await assertIndexed(db, dedup, /org_pipeline_runs_dedup_idx|org_slug_dedup_key_created/, 'dedup lookup', true)
    } finally {
      await db.close()
      await b.cleanup()
    }
  })
}

for (const name of backendNames()) {
  test(`keyset pages by row value return every run of the org exactly once, in order, per filter (${name})`, async () => {
    const b = await freshBackend(name)
    const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir })
    try {
      await migrateToLatest(db, T0)
      // Equal created_at values across pages: the run_id tie-break must neither skip nor repeat. Another
      // org's runs share every key and must never show.
      const rows = ['org-k', 'org-other'].flatMap((org) => Array.from({ length: 95 }, (_, i) =>
        runRow({
          run_id: `${org === 'org-k' ? 'r' : 'o'}${String(i).padStart(3, '0')}`, run_date: '2026-11-01', org_slug: org,
          pipeline_id: `p/${i % 2}/y`, status: i % 3 === 0 ? 'FAILED' : 'COMPLETED', dedup_key: 'd', created_at: T0 + Math.floor(i / 10),
        }),
      ))
      await db.kysely.insertInto('org_pipeline_runs').values(rows).execute()
      const filters: Pick<ListRunsQuery, 'status' | 'pipeline_id'>[] = [{}, { status: 'FAILED' }, { pipeline_id: 'p/1/y' }, { status: 'FAILED', pipeline_id: 'p/1/y' }]
      for (const filter of filters) {
        for (const limit of [7, 100]) {
          const seen: string[] = []
          let after = null
          for (let page = 0; page < 20; page++) {
            const r: Awaited<ReturnType<typeof listRuns>> = await listRuns(db, 'org-k', { limit, after, ...filter })
            assert.ok(r.runs.length <= limit)
            seen.push(...r.runs.map((x) => x.run_id))
            if (!r.next) break
            after = r.next
          }
          const expected = rows
            .filter((x) => x.org_slug === 'org-k' && (!filter.status || x.status === filter.status) && (!filter.pipeline_id || x.pipeline_id === filter.pipeline_id))
            .sort((a, b) => b.created_at - a.created_at || (a.run_id < b.run_id ? 1 : -1))
            .map((x) => x.run_id)
          assert.deepEqual(seen, expected, JSON.stringify({ filter, limit }))
        }
      }
      assert.equal((await getRun(db, 'org-k', 'o001')), undefined, "another org's run is not found")
      assert.equal((await getRun(db, 'org-k', 'r001'))?.run_id, 'r001')
    } finally {
      await db.close()
      await b.cleanup()
    }
  })
}
