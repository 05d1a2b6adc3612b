// The BigQuery dataset home against the local fake of BigQuery's v2 REST API: isolation refused before
// any job is sent, user values only as typed parameters, idempotent loads (staging + one MERGE), tables
// partitioned and clustered, errors mapped without upstream text, 429/5xx retried, fences honoured.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { createServer } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { openDatabase, type Db } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { createBigQueryHome, createDataset, DatasetError, dropDataset, openDatasetWriter, useBigQueryHome } from '../../src/core/datasets/index.js'
import { bigQueryDatasetOf } from '../../src/core/datasets/identifiers.js'
import type { TableSpec } from '../../src/core/datasets/types.js'
import { createEgressClient } from '../../src/core/http/egress.js'
import { backendNames, freshBackend, type TestBackend } from '../helpers/backends.js'
import { attachFakeBigQuery, fakeBigQueryConfig, startFakeBigQuery, UPSTREAM_DETAIL, type FakeBigQuery } from '../helpers/fake-bigquery.js'

const DAILY: TableSpec = {
  name: 'usage_daily',
  columns: [
    { name: 'date', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'cost', type: 'real' },
    { name: 'tokens', type: 'integer' },
    { name: 'note', type: 'text', nullable: true },
  ],
  naturalKey: ['date', 'model', 'cost'],
  dateColumn: 'date',
}
const SENTINEL = 'SENTINEL-5b1e0c'
const code = (c: string, extra?: (e: DatasetError) => boolean) => (e: unknown) => e instanceof DatasetError && e.code === c && !e.message.includes(UPSTREAM_DETAIL) && (extra ? extra(e) : true)
const day = (d: string) => [
  { date: d, model: 'gpt-a', cost: 1.5, tokens: 10 },
  { date: d, model: 'gpt-b', cost: 2, tokens: 20, note: SENTINEL },
]

for (const backend of backendNames()) {
  describe(`BigQuery dataset home (system store ${backend})`, () => {
    let b: TestBackend
    let db: Db
    let fake: FakeBigQuery
    let detach: () => Promise<void>
    const ids: Record<string, string> = {}
    before(async () => {
      b = await freshBackend(backend)
      db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 4 })
      await migrateToLatest(db)
      fake = await startFakeBigQuery()
      detach = attachFakeBigQuery(db, fake).close
      ids.a = await createDataset(db, b.dataDir, 'org-a')
      ids.b = await createDataset(db, b.dataDir, 'org-b')
    })
    after(async () => {
      await detach()
      await fake.close()
      await db.close()
      await b.cleanup()
    })
    const w = (org: 'a' | 'b', fence?: { signal: AbortSignal }) => openDatasetWriter(db, b.dataDir, { orgSlug: `org-${org}`, datasetId: ids[org]! }, fence ? { fence } : {})

    test('onboarding creates org_<slug>_<hex> in the configured location with labels naming the org', () => {
      const name = bigQueryDatasetOf(ids.a!)
      assert.match(name, /^org_org_a_[0-9a-f]{16}$/)
      assert.notEqual(name, bigQueryDatasetOf(ids.b!))
      const d = fake.dataset(name)!
      assert.equal(d.location, fake.location)
      assert.equal(d.labels.tenantflow_org, 'org-a')
    })

    test('tables are partitioned by day on the date column and clustered by the natural key (never FLOAT64)', async () => {
      await w('a').ensureTable(DAILY)
      const t = fake.dataset(bigQueryDatasetOf(ids.a!))!.tables.get('usage_daily')!
      assert.deepEqual(t.timePartitioning, { type: 'DAY', field: 'date' })
      assert.deepEqual(t.clustering, { fields: ['date', 'model'] })
      assert.deepEqual(t.schema.map((f) => `${f.name}:${f.type}:${f.mode}`), ['date:DATE:REQUIRED', 'model:STRING:REQUIRED', 'cost:FLOAT64:REQUIRED', 'tokens:INT64:REQUIRED', 'note:STRING:NULLABLE'])
    })

    test('loading the same day twice yields one set of rows: staging load + one MERGE, staging tables expire', async () => {
      const a = w('a')
      const jobsBefore = fake.jobs.length
      assert.equal(await a.upsertRows('usage_daily', day('2026-11-01')), 2)
      assert.equal(await a.upsertRows('usage_daily', day('2026-11-01')), 2)
      assert.equal(await a.upsertRows('usage_daily', [...day('2026-11-01'), { date: '2026-11-01', model: 'gpt-a', cost: 1.5, tokens: 99 }]), 2, 'last row wins inside a load')
      const rows = await a.readRows('usage_daily', { limit: 100, date: '2026-11-01' })
      assert.deepEqual(rows, [
        { date: '2026-11-01', model: 'gpt-a', cost: 1.5, tokens: 99, note: null },
        { date: '2026-11-01', model: 'gpt-b', cost: 2, tokens: 20, note: SENTINEL },
      ])
      assert.equal((await a.listTables()).find((t) => t.name === 'usage_daily')!.rowCount, 2)
      const ds = bigQueryDatasetOf(ids.a!)
      const jobs = fake.jobs.slice(jobsBefore)
      const merges = jobs.filter((j) => j.sql?.startsWith('MERGE'))
      assert.equal(merges.length, 3, 'one MERGE per load')
      assert.match(merges[0]!.sql!, new RegExp(
        `^MERGE \`${ds}\`\\.\`usage_daily\` AS T USING \`${ds}\`\\.\`tenantflow_stage_[0-9a-f]{16}\` AS S ON T\\.\`date\` = S\\.\`date\` AND T\\.\`model\` = S\\.\`model\` AND T\\.\`cost\` = S\\.\`cost\` ` +
        'WHEN MATCHED THEN UPDATE SET `tokens` = S.`tokens`, `note` = S.`note` WHEN NOT MATCHED THEN INSERT \\(`date`, `model`, `cost`, `tokens`, `note`\\) VALUES \\(S.`date`, S.`model`, S.`cost`, S.`tokens`, S.`note`\\)$',
      ))
      assert.equal(jobs.filter((j) => j.kind === 'load').length, 3)
      assert.ok(jobs.filter((j) => j.kind === 'load').every((j) => j.destination?.startsWith(`${ds}.tenantflow_stage_`)))
      assert.ok(fake.stagingTables.length >= 3 && fake.stagingTables.every((s) => s.expirationTime && Number(s.expirationTime) > Date.now()))
      assert.ok(![...fake.dataset(ds)!.tables.keys()].some((t) => t.startsWith('tenantflow_stage_')), 'staging tables are deleted after the merge')
    })

    test('replaceRows replaces the set (MERGE ... NOT MATCHED BY SOURCE THEN DELETE); an empty replace empties the table', async () => {
      const a = w('a')
      await a.ensureTable({ name: 'prices', columns: [{ name: 'model', type: 'text' }, { name: 'price', type: 'real' }], naturalKey: ['model'] })
      await a.replaceRows('prices', [{ model: 'x', price: 1 }, { model: 'y', price: 2 }])
      await a.replaceRows('prices', [{ model: 'y', price: 3 }, { model: 'z', price: 4 }])
      assert.deepEqual(await a.readRows('prices', { limit: 10 }), [{ model: 'y', price: 3 }, { model: 'z', price: 4 }])
      assert.ok(fake.jobs.some((j) => j.sql?.endsWith('WHEN NOT MATCHED BY SOURCE THEN DELETE')))
      await a.replaceRows('prices', [])
      assert.deepEqual(await a.readRows('prices', { limit: 10 }), [])
    })

    test('keyset paging over boolean, integer and timestamp keys', async () => {
      const a = w('a')
      await a.ensureTable({ name: 'flags', columns: [{ name: 'on', type: 'boolean' }, { name: 'n', type: 'integer' }, { name: 'at', type: 'timestamp' }], naturalKey: ['on', 'n', 'at'] })
      const rows = [true, false].flatMap((on) => [1, 2].map((n) => ({ on, n, at: `2026-11-0${n}T00:00:00.000Z` })))
      await a.upsertRows('flags', rows)
      const seen: unknown[] = []
      let cursor: string | undefined
      do {
        const p = await a.readPage('flags', { limit: 1, cursor })
        seen.push(...p.rows)
        cursor = p.nextCursor ?? undefined
      } while (cursor)
      assert.deepEqual(seen, [...rows.slice(2), ...rows.slice(0, 2)])
    })

    test('every user value reaches BigQuery as a typed NAMED parameter, never in SQL text; every job names the org dataset', async () => {
      const a = w('a')
      const from = fake.jobs.length
      const sel = await a.select('SELECT model, note FROM usage_daily WHERE note = :n AND "date" BETWEEN :d1 AND :d2 AND tokens >= :min', { n: SENTINEL, d1: '2026-10-01', d2: '2026-11-30', min: 1 }, 10)
      assert.deepEqual(sel, [{ model: 'gpt-b', note: SENTINEL }])
      const cursor = Buffer.from(JSON.stringify({ t: 'usage_daily', k: ['2026-11-01', SENTINEL, 1] })).toString('base64url')
      await a.readPage('usage_daily', { limit: 5, cursor, dateFrom: '2026-10-01' })
      const jobs = fake.jobs.slice(from).filter((j) => j.kind === 'query')
      assert.ok(jobs.length >= 2)
      const selectJob = jobs[0]!
      assert.deepEqual(selectJob.params, [
        { name: 'u_n', type: 'STRING', value: SENTINEL },
        { name: 'u_d1', type: 'DATE', value: '2026-10-01' },
        { name: 'u_d2', type: 'DATE', value: '2026-11-30' },
        { name: 'u_min', type: 'INT64', value: '1' },
        { name: 'tf_limit', type: 'INT64', value: '11' },
      ])
      assert.ok(jobs[1]!.params!.some((p) => p.name === 'tf_k1' && p.type === 'STRING' && p.value === SENTINEL))
      assert.ok(jobs[1]!.params!.some((p) => p.name === 'tf_date_from' && p.type === 'DATE'))
      for (const j of fake.jobs.filter((x) => x.kind === 'query')) {
        assert.ok(!j.sql!.includes(SENTINEL), 'a user value appeared in SQL text')
        assert.ok(!/'/.test(j.sql!), 'no literal at all in generated SQL')
        assert.ok(j.defaultDataset === bigQueryDatasetOf(ids.a!) || j.defaultDataset === bigQueryDatasetOf(ids.b!))
        assert.equal(j.maximumBytesBilled, String(1024 ** 3))
        assert.equal(j.jobTimeoutMs, '60000')
      }
    })

    test("isolation: another dataset, another project, INFORMATION_SCHEMA, wildcards are refused before any call is sent", async () => {
      const bw = w('b')
      await bw.ensureTable({ name: 'secrets', columns: [{ name: 'k', type: 'text' }, { name: 'v', type: 'text' }], naturalKey: ['k'] })
      await bw.upsertRows('secrets', [{ k: 'b', v: 'B-ONLY' }])
      const a = w('a')
      const other = bigQueryDatasetOf(ids.b!)
      const calls = fake.calls.length
      const refused = [
        'SELECT k, v FROM secrets',
        `SELECT k, v FROM ${other}.secrets`,
        `SELECT * FROM ${fake.project}.${other}.secrets`,
        'SELECT * FROM other_project.some_ds.usage_daily',
        `SELECT * FROM \`${other}.secrets\``,
        `SELECT * FROM \`${fake.project}\`.${other}.secrets`,
        'SELECT * FROM INFORMATION_SCHEMA.TABLES',
        'SELECT table_name FROM information_schema.tables',
        `SELECT * FROM ${other}.INFORMATION_SCHEMA.TABLES`,
        'SELECT * FROM usage_daily*',
        'SELECT model FROM usage_daily WHERE _TABLE_SUFFIX = :s',
        'SELECT _PARTITIONTIME FROM usage_daily',
        // Every BigQuery pseudo-column starts with "_" (_FILE_NAME, _CHANGE_TYPE, ...); dataset columns never do.
        'SELECT _FILE_NAME FROM usage_daily',
        'SELECT model, _change_type FROM usage_daily',
        'SELECT "_file_name" FROM usage_daily',
        'SELECT model AS "_x" FROM usage_daily',
        // BigQuery reads a-b (no spaces) in FROM as one dashed name (how it spells project ids): never past the catalogue check.
        'SELECT * FROM usage_daily-x',
        'SELECT * FROM usage_daily AS x, usage_daily-x.secrets',
        'SELECT * FROM usage_daily AS x JOIN usage_daily-2 AS y ON x.model = y.model',
        'SELECT u.model FROM usage_daily AS u JOIN secrets AS s ON s.k = u.model',
        'SELECT model FROM usage_daily WHERE tokens::text = :s',
        "SELECT model FROM usage_daily WHERE model = 'it''s'",
        'SELECT julianday(date) FROM usage_daily',
        'SELECT model FROM usage_daily; SELECT 1',
      ]
      for (const sqlText of refused) await assert.rejects(a.select(sqlText, { s: 'x' }, 10), code('SQL_REFUSED'), sqlText)
      for (const table of ['secrets', `${other}.secrets`, 'tenantflow_stage_0', 'INFORMATION_SCHEMA', 'usage_daily*']) {
        await assert.rejects(a.readPage(table, { limit: 1 }), code('TABLE_NOT_FOUND'), table)
        await assert.rejects(a.upsertRows(table, [{ k: 'a' }]), code('TABLE_NOT_FOUND'), table)
      }
      assert.equal(fake.calls.length, calls, 'nothing was sent to BigQuery')
      assert.deepEqual(await bw.readRows('secrets', { limit: 10 }), [{ k: 'b', v: 'B-ONLY' }])
    })

    test('template SQL: portable spellings are rewritten (quoted identifiers, CAST types)', async () => {
      const rows = await w('a').select('SELECT "model", CAST(tokens AS text) AS t, COUNT(*) AS n FROM usage_daily WHERE "date" = :d GROUP BY "model", tokens ORDER BY "model"', { d: '2026-11-01' }, 10)
      assert.deepEqual(rows, [{ model: 'gpt-a', t: '99', n: 1 }, { model: 'gpt-b', t: '20', n: 1 }])
      await assert.rejects(w('a').select('SELECT model FROM usage_daily', {}, 1), code('LIMIT_EXCEEDED'))
    })

    test('the SQL of every shipped generic.sql_transform step runs on BigQuery', async () => {
      const a = w('a')
      await a.ensureTable({
        name: 'orders',
        columns: [
          { name: 'order_id', type: 'text' }, { name: 'order_date', type: 'date' }, { name: 'status', type: 'text' }, { name: 'amount', type: 'real' },
          { name: 'currency', type: 'text' }, { name: 'customer', type: 'text', nullable: true }, { name: 'created_at', type: 'timestamp', nullable: true },
        ],
        naturalKey: ['order_id'],
        dateColumn: 'order_date',
      })
      await a.upsertRows('orders', [
        { order_id: 'o1', order_date: '2026-11-05', status: 'paid', amount: 10, currency: 'EUR', created_at: '2026-11-05T10:00:00Z' },
        { order_id: 'o2', order_date: '2026-11-05', status: 'paid', amount: 5.5, currency: 'EUR' },
        { order_id: 'o3', order_date: '2026-11-06', status: 'paid', amount: 1, currency: 'EUR' },
      ])
      const steps = shippedSqlSteps()
      assert.ok(steps.length >= 1)
      for (const { file, sql } of steps) {
        const rows = await a.select(sql, { date: '2026-11-05' }, 1000)
        assert.ok(rows.length > 0, file)
      }
      const [summary] = await a.select(steps[0]!.sql, { date: '2026-11-05' }, 1000)
      assert.deepEqual(summary, { order_date: '2026-11-05', status: 'paid', currency: 'EUR', orders: 2, amount: 15.5 })
    })

    test('specs only grow: a new nullable column is patched in; anything else is SCHEMA_CONFLICT before any call', async () => {
      const a = w('a')
      await a.ensureTable({ ...DAILY, columns: [...DAILY.columns, { name: 'region', type: 'text', nullable: true }] })
      assert.ok(fake.dataset(bigQueryDatasetOf(ids.a!))!.tables.get('usage_daily')!.schema.some((f) => f.name === 'region' && f.mode === 'NULLABLE'))
      await a.upsertRows('usage_daily', [{ date: '2026-11-02', model: 'gpt-a', cost: 1, tokens: 1, region: 'eu' }])
      assert.equal((await a.readRows('usage_daily', { limit: 5, date: '2026-11-02' }))[0]!.region, 'eu')
      const calls = fake.calls.length
      await assert.rejects(a.ensureTable({ ...DAILY, naturalKey: ['date'] }), code('SCHEMA_CONFLICT'))
      await assert.rejects(a.ensureTable({ ...DAILY, columns: [...DAILY.columns, { name: 'must', type: 'text' }] }), code('SCHEMA_CONFLICT'))
      assert.equal(fake.calls.length, calls)
    })

    test('429 / rateLimitExceeded / backendError are retried; persistent failures are DATASET_UNAVAILABLE without upstream text', async () => {
      const a = w('a')
      fake.fail(2, { status: 429, reason: 'rateLimitExceeded', match: '/jobs' })
      fake.fail(1, { status: 403, reason: 'rateLimitExceeded', match: '/queries/' })
      fake.fail(1, { status: 500, reason: 'backendError', match: '/tables' })
      assert.equal(await a.upsertRows('usage_daily', day('2026-11-03')), 2)
      assert.equal((await a.readRows('usage_daily', { limit: 10, date: '2026-11-03' })).length, 2)
      fake.fail(100, { status: 503, reason: 'backendError' })
      await assert.rejects(a.readRows('usage_daily', { limit: 10 }), code('DATASET_UNAVAILABLE'))
      fake.clearFailures()
      fake.fail(1, { status: 403, reason: 'accessDenied' })
      await assert.rejects(a.readRows('usage_daily', { limit: 10 }), code('DATASET_UNAVAILABLE'))
      await assert.rejects(a.select('SELECT no_such_column FROM usage_daily', {}, 10), code('QUERY_FAILED', (e) => e.message.includes('invalidQuery')))
      fake.bytesProcessed = 2 * 1024 ** 3
      await assert.rejects(a.select('SELECT model FROM usage_daily', {}, 10), code('LIMIT_EXCEEDED', (e) => e.message.includes('BIGQUERY_MAX_BYTES_BILLED')))
      fake.bytesProcessed = 0
    })

    test('a refused credential or an unreachable endpoint is DATASET_UNAVAILABLE', async () => {
      const egress = createEgressClient({ allowLoopback: true, production: false, allowedHosts: [], timeoutMs: 5_000, maxSockets: 2 })
      try {
        const other = await startFakeBigQuery({ project: fake.project })
        // The other fake's key: this fake's token endpoint cannot verify its signature.
        const wrongKey = createBigQueryHome(fakeBigQueryConfig(fake, { credentialsJson: other.serviceAccount.json.replace(other.url, fake.url) }), egress, { baseDelayMs: 1, maxAttempts: 2 })
        await other.close()
        const port = await freePort()
        const down = createBigQueryHome(fakeBigQueryConfig(fake, { apiEndpoint: `http://127.0.0.1:${port}` }), egress, { baseDelayMs: 1, maxAttempts: 2 })
        for (const home of [wrongKey, down]) {
          const db2 = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 1 })
          try {
            useBigQueryHome(db2, home)
            await assert.rejects(createDataset(db2, b.dataDir, 'org-z'), code('DATASET_UNAVAILABLE'))
          } finally {
            await db2.close()
          }
        }
      } finally {
        await egress.close()
      }
    })

    test('a retry backoff ends as soon as the step signal aborts', async () => {
      const egress = createEgressClient({ allowLoopback: true, production: false, allowedHosts: [], timeoutMs: 5_000, maxSockets: 2 })
      const db2 = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 1 })
      try {
        // A backoff of 30-60 s: only the abort can end this call in time.
        useBigQueryHome(db2, createBigQueryHome(fakeBigQueryConfig(fake), egress, { baseDelayMs: 60_000 }))
        fake.fail(1000, { status: 503, reason: 'backendError' })
        const ctl = new AbortController()
        const before = fake.calls.length
        const pending = openDatasetWriter(db2, b.dataDir, { orgSlug: 'org-a', datasetId: ids.a! }, { fence: { signal: ctl.signal } }).upsertRows('usage_daily', day('2026-11-10'))
        const apiCalls = () => fake.calls.slice(before).filter((c) => c !== 'POST /token').length
        for (let i = 0; i < 6000 && apiCalls() === 0; i++) await new Promise((r) => setTimeout(r, 5))
        ctl.abort()
        await assert.rejects(pending, code('WRITE_FENCED'))
        assert.equal(apiCalls(), 1, 'one attempt, then the backoff was cut short')
      } finally {
        fake.clearFailures()
        await db2.close()
        await egress.close()
      }
    })

    test('a closed fence writes nothing and sends nothing', async () => {
      const ctl = new AbortController()
      ctl.abort()
      const calls = fake.calls.length
      await assert.rejects(w('a', { signal: ctl.signal }).upsertRows('usage_daily', day('2026-11-09')), code('WRITE_FENCED'))
      await assert.rejects(w('a', { signal: ctl.signal }).ensureTable(DAILY), code('WRITE_FENCED'))
      assert.equal(fake.calls.length, calls)
    })

    test('offboarding deletes the dataset with its contents and counts its tables', async () => {
      const name = bigQueryDatasetOf(ids.b!)
      assert.ok(fake.dataset(name)!.tables.size > 0)
      assert.deepEqual(await dropDataset(db, b.dataDir, { orgSlug: 'org-b', datasetId: ids.b! }), { dropped: true, tables: 1 })
      assert.equal(fake.dataset(name), undefined)
      assert.ok(fake.calls.some((c) => c === `DELETE /bigquery/v2/projects/${fake.project}/datasets/${name}`))
      assert.deepEqual(await dropDataset(db, b.dataDir, { orgSlug: 'org-b', datasetId: ids.b! }), { dropped: false, tables: 0 })
      await assert.rejects(createDataset(db, b.dataDir, 'org-a', ids.a), code('DATASET_EXISTS'))
    })
  })
}

/** The `sql` of every generic.sql_transform step in configs/pipelines. */
function shippedSqlSteps(): { file: string; sql: string }[] {
  const root = join(import.meta.dirname, '..', '..', 'configs', 'pipelines')
  const files = (dir: string): string[] => readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : n.endsWith('.yml') ? [join(dir, n)] : []))
  return files(root).flatMap((file) => {
    const doc = parseYaml(readFileSync(file, 'utf8')) as { steps?: { processor?: string; config?: { sql?: string } }[] }
    return (doc.steps ?? []).filter((s) => s.processor === 'generic.sql_transform' && s.config?.sql).map((s) => ({ file, sql: s.config!.sql! }))
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}
