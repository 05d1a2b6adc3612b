import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { sql } from 'kysely'
import { openDatabase, type Db } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { createDataset, DatasetError, dropDataset, openDatasetReader, openDatasetWriter, pgSchemaName } from '../../src/core/datasets/index.js'
import { openEngine } from '../../src/core/datasets/engine.js'
import type { TableSpec } from '../../src/core/datasets/types.js'
import { backendNames, freshBackend, type TestBackend } from '../helpers/backends.js'
import { attachFakeBigQuery, startFakeBigQuery, type FakeBigQuery } from '../helpers/fake-bigquery.js'

const USAGE: TableSpec = {
  name: 'usage',
  columns: [
    { name: 'day', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'tokens', type: 'integer' },
    { name: 'cost', type: 'real', nullable: true },
    { name: 'ok', type: 'boolean', nullable: true },
    { name: 'meta', type: 'json', nullable: true },
    { name: 'seen_at', type: 'timestamp', nullable: true },
  ],
  naturalKey: ['day', 'model'],
  dateColumn: 'day',
}

const rowsFor = (n: number, tokens = 1) =>
  Array.from({ length: n }, (_, i) => ({
    day: `2026-11-${String((i % 28) + 1).padStart(2, '0')}`,
    model: `m${String(Math.floor(i / 28)).padStart(4, '0')}`,
    tokens: i * tokens,
    cost: i / 4,
    ok: i % 3 === 0,
    meta: { i, tags: ['a', 'b'] },
    seen_at: '2026-11-27T12:00:00+02:00',
  }))

const code = (c: string) => (e: unknown) => e instanceof DatasetError && e.code === c

// Every system store, with org datasets next to it (native) and on BigQuery (a local fake of its REST API).
for (const [backend, home] of backendNames().flatMap((x) => [[x, 'native'], [x, 'bigquery']] as const)) {
  describe(`datasets on ${backend}${home === 'bigquery' ? ', org datasets on BigQuery' : ''}`, () => {
    let b: TestBackend
    let db: Db
    let fake: FakeBigQuery | null = null
    let detach: (() => Promise<void>) | null = null
    const ids: Record<string, string> = {}
    before(async () => {
      b = await freshBackend(backend)
      db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 4 })
      await migrateToLatest(db)
      if (home === 'bigquery') {
        fake = await startFakeBigQuery()
        detach = attachFakeBigQuery(db, fake).close
      }
      ids['org-a'] = await createDataset(db, b.dataDir, 'org-a')
      ids['org_b'] = await createDataset(db, b.dataDir, 'org_b')
    })
    after(async () => {
      await detach?.()
      await fake?.close()
      await db.close()
      await b.cleanup()
    })
    const ds = (org: string) => ({ orgSlug: org, datasetId: ids[org]! })
    const w = (org: string) => openDatasetWriter(db, b.dataDir, ds(org))

    test('batched upsert across several statements is idempotent and round-trips every type', async () => {
      const a = w('org-a')
      await a.ensureTable(USAGE)
      await a.ensureTable(USAGE)
      const rows = rowsFor(2600)
      assert.equal(await a.upsertRows('usage', rows), 2600)
      assert.equal(await a.upsertRows('usage', rows), 2600)
      assert.equal(await a.upsertRows('usage', rowsFor(2600, 2)), 2600, 'a re-run with new values merges')
      const t = (await a.listTables()).find((x) => x.name === 'usage')!
      assert.equal(t.rowCount, 2600)
      assert.equal(t.dateColumn, 'day')
      const one = (await a.readRows('usage', { limit: 10, date: '2026-11-02' })).find((r) => r.model === 'm0000')!
      assert.deepEqual(one, { day: '2026-11-02', model: 'm0000', tokens: 2, cost: 0.25, ok: false, meta: { i: 1, tags: ['a', 'b'] }, seen_at: '2026-11-27T10:00:00.000Z' })
    })

    test('a repeated natural key inside one load keeps the last row', async () => {
      const a = w('org-a')
      await a.ensureTable({ name: 'dups', columns: [{ name: 'k', type: 'text' }, { name: 'v', type: 'integer' }], naturalKey: ['k'] })
      assert.equal(await a.upsertRows('dups', [{ k: 'x', v: 1 }, { k: 'x', v: 2 }]), 1)
      assert.deepEqual(await a.readRows('dups', { limit: 10 }), [{ k: 'x', v: 2 }])
    })

    test('keyset pagination visits every row exactly once, with date filters; bad cursors are refused', async () => {
      const r = openDatasetReader(db, b.dataDir, ds('org-a'))
      const seen = new Set<string>()
      let cursor: string | undefined
      let pages = 0
      do {
        const p = await r.readPage('usage', { limit: 333, cursor })
        for (const row of p.rows) {
          const k = `${row.day}|${row.model}`
          assert.ok(!seen.has(k))
          seen.add(k)
        }
        cursor = p.nextCursor ?? undefined
        pages++
      } while (cursor)
      assert.equal(seen.size, 2600)
      assert.equal(pages, 8)
      const f = await r.readPage('usage', { limit: 1000, dateFrom: '2026-11-03', dateTo: '2026-11-04' })
      assert.ok(f.rows.length > 0 && f.rows.every((x) => x.day === '2026-11-03' || x.day === '2026-11-04'))
      await assert.rejects(r.readPage('usage', { limit: 10, cursor: 'not-a-cursor!' }), code('INVALID_CURSOR'))
      const forged = Buffer.from(JSON.stringify({ t: 'usage', k: ["x' OR 1=1 --", 5] })).toString('base64url')
      await assert.rejects(r.readPage('usage', { limit: 10, cursor: forged }), code('INVALID_CURSOR'))
      const otherTable = Buffer.from(JSON.stringify({ t: 'dups', k: ['x'] })).toString('base64url')
      await assert.rejects(r.readPage('usage', { limit: 10, cursor: otherTable }), code('INVALID_CURSOR'))
      await assert.rejects(r.readPage('usage', { limit: 1001 }), code('INVALID_FILTER'))
      await assert.rejects(r.readPage('dups', { limit: 10, dateFrom: '2026-11-01' }), code('INVALID_FILTER'))
    })

    test('values are validated against column types; messages never echo values', async () => {
      const a = w('org-a')
      const bad = [
        { day: '2026-13-01', model: 'x', tokens: 1 },
        { day: '2026-11-01', model: 'x', tokens: 1.5 },
        { day: '2026-11-01', model: 'x', tokens: 'SECRET-VALUE' },
        { day: '2026-11-01', tokens: 1 },
        { day: '2026-11-01', model: 'x', tokens: 1, extra: 'SECRET-VALUE' },
        { day: '2026-11-01', model: 'x', tokens: 1, seen_at: 'yesterday' },
      ]
      for (const row of bad) {
        await assert.rejects(a.upsertRows('usage', [row]), (e: unknown) => e instanceof DatasetError && e.code === 'INVALID_VALUE' && !e.message.includes('SECRET-VALUE'))
      }
    })

    test('specs may only grow additively', async () => {
      const a = w('org-a')
      await a.ensureTable({ ...USAGE, columns: [...USAGE.columns, { name: 'note', type: 'text', nullable: true }] })
      await a.upsertRows('usage', [{ day: '2026-11-01', model: 'm0000', tokens: 1, note: 'hello' }])
      assert.equal((await a.readRows('usage', { limit: 1, date: '2026-11-01' }))[0]!.note, 'hello')
      await assert.rejects(a.ensureTable({ ...USAGE, naturalKey: ['day'] }), code('SCHEMA_CONFLICT'))
      await assert.rejects(a.ensureTable({ ...USAGE, columns: USAGE.columns.map((c) => (c.name === 'tokens' ? { ...c, type: 'text' } : c)) }), code('SCHEMA_CONFLICT'))
    })

    test('identifiers: reserved, system and malformed table names are refused everywhere', async () => {
      const a = w('org-a')
      const names = ['org_profiles', 'org_api_keys', 'sqlite_master', 'pg_class', 'tenantflow_migrations', 'information_schema', 'plans', 'main', 'Usage', 'usage"; DROP TABLE usage; --', 'a.b', '1abc', '', 'x'.repeat(64)]
      for (const name of names) {
        await assert.rejects(a.ensureTable({ ...USAGE, name }), code('INVALID_IDENTIFIER'), name)
        await assert.rejects(a.upsertRows(name, [{ x: 1 }]), code('TABLE_NOT_FOUND'), name)
        await assert.rejects(a.readPage(name, { limit: 1 }), code('TABLE_NOT_FOUND'), name)
      }
      await assert.rejects(a.ensureTable({ ...USAGE, columns: [...USAGE.columns, { name: 'bad col', type: 'text' }] }), code('INVALID_IDENTIFIER'))
      await assert.rejects(a.readPage('never_created', { limit: 1 }), code('TABLE_NOT_FOUND'))
    })

    test("isolation: org A can neither read nor write org B's tables, nor any system table", async () => {
      const bw = w('org_b')
      await bw.ensureTable({ name: 'secrets', columns: [{ name: 'k', type: 'text' }, { name: 'v', type: 'text' }], naturalKey: ['k'] })
      await bw.upsertRows('secrets', [{ k: 'b', v: 'B-ONLY' }])
      const a = w('org-a')
      await assert.rejects(a.readPage('secrets', { limit: 10 }), code('TABLE_NOT_FOUND'))
      await assert.rejects(a.readRows('secrets', { limit: 10 }), code('TABLE_NOT_FOUND'))
      await assert.rejects(a.upsertRows('secrets', [{ k: 'a', v: 'A' }]), code('TABLE_NOT_FOUND'))
      await assert.rejects(a.select('SELECT k, v FROM secrets', {}, 10), code('SQL_REFUSED'))
      assert.ok(!(await a.listTables()).some((t) => t.name === 'secrets'))
      // A table of the same name in A is A's own: B's row stays untouched and invisible.
      await a.ensureTable({ name: 'secrets', columns: [{ name: 'k', type: 'text' }, { name: 'v', type: 'text' }], naturalKey: ['k'] })
      await a.upsertRows('secrets', [{ k: 'b', v: 'FROM-A' }])
      assert.deepEqual(await a.readRows('secrets', { limit: 10 }), [{ k: 'b', v: 'FROM-A' }])
      assert.deepEqual(await bw.readRows('secrets', { limit: 10 }), [{ k: 'b', v: 'B-ONLY' }])
      // The system database is untouched: no dataset table appeared next to the system tables.
      const systemTables = await systemTableNames(db)
      assert.ok(!systemTables.includes('secrets') && !systemTables.includes('usage'))
      if (backend === 'sqlite' && home === 'native') assert.ok(existsSync(join(b.dataDir, 'datasets', `${ids['org-a']}.db`)))
    })

    test('template SQL runs read-only: a write statement fails at the engine even without the checker', { skip: home === 'bigquery' ? 'no engine handle on BigQuery: every template statement is wrapped in SELECT * FROM (...)' : false }, async () => {
      const engine = openEngine(db, b.dataDir, ids['org-a']!)
      const ref = engine.tableRef('secrets')
      await assert.rejects(engine.readOnly({ text: `INSERT INTO ${ref} (k, v) VALUES ('z', 'z')`, params: [] }, { timeoutMs: 5000, maxRows: 10 }))
      await assert.rejects(engine.readOnly({ text: `DELETE FROM ${ref}`, params: [] }, { timeoutMs: 5000, maxRows: 10 }))
      assert.equal((await w('org-a').readRows('secrets', { limit: 10 })).length, 1)
    })

    test('select binds parameters, caps results and only sees catalogue tables', async () => {
      const a = w('org-a')
      const rows = await a.select('SELECT model, tokens FROM usage WHERE day = :day AND tokens >= :min ORDER BY model', { day: '2026-11-05', min: 0 }, 1000)
      assert.ok(rows.length > 10)
      await assert.rejects(a.select('SELECT model FROM usage', {}, 5), code('LIMIT_EXCEEDED'))
      await assert.rejects(a.select('SELECT model FROM usage WHERE day = :day', {}, 5), code('SQL_PARAM_MISSING'))
      const inj = await a.select('SELECT model FROM usage WHERE model = :m', { m: "x' OR '1'='1" }, 10)
      assert.equal(inj.length, 0)
    })

    test('drop removes the dataset and its catalogue; create refuses an existing dataset', async () => {
      ids['org-c'] = await createDataset(db, b.dataDir, 'org-c')
      await assert.rejects(createDataset(db, b.dataDir, 'org-c', ids['org-c']), code('DATASET_EXISTS'))
      await assert.rejects(createDataset(db, b.dataDir, 'org-a', ids['org-a']), code('DATASET_EXISTS'))
      assert.ok((await w('org-a').listTables()).some((t) => t.name === 'usage'), 'a refused create leaves the existing catalogue alone')
      const c = w('org-c')
      await c.ensureTable(USAGE)
      await c.upsertRows('usage', rowsFor(5))
      assert.deepEqual(await dropDataset(db, b.dataDir, ds('org-c')), { dropped: true, tables: 1 })
      await assert.rejects(w('org-c').ensureTable(USAGE), code('DATASET_NOT_FOUND'))
      await assert.rejects(w('org-c').readPage('usage', { limit: 1 }), code('TABLE_NOT_FOUND'))
      assert.deepEqual(await dropDataset(db, b.dataDir, ds('org-c')), { dropped: false, tables: 0 })
      await createDataset(db, b.dataDir, 'org-c', ids['org-c'])
      assert.deepEqual(await w('org-c').listTables(), [])
    })
  })
}

async function systemTableNames(db: Db): Promise<string[]> {
  if (db.dialect === 'postgres') {
    const r = await sql<{ n: string }>`SELECT tablename AS n FROM pg_tables WHERE schemaname = 'public' LIMIT 500`.execute(db.kysely)
    return r.rows.map((x) => x.n)
  }
  const r = await sql<{ n: string }>`SELECT name AS n FROM sqlite_master WHERE type = 'table' LIMIT 500`.execute(db.kysely)
  return r.rows.map((x) => x.n)
}

describe('postgres schema names', () => {
  test('hyphen and underscore slugs never share a schema; long slugs fit 63 bytes', () => {
    assert.equal(pgSchemaName('acme'), 'org_acme')
    assert.equal(pgSchemaName('a_b'), 'org_a_b')
    assert.notEqual(pgSchemaName('a-b'), pgSchemaName('a_b'))
    assert.notEqual(pgSchemaName('a-b-c'), pgSchemaName('a_b-c'))
    const long = pgSchemaName('x'.repeat(64))
    assert.ok(Buffer.byteLength(long) <= 63)
    assert.notEqual(long, pgSchemaName(`${'x'.repeat(63)}y`))
    assert.throws(() => pgSchemaName('../etc'), code('INVALID_IDENTIFIER'))
  })
})
