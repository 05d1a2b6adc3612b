// Data API: the org's own tables with row counts; rows with a date filter, LIMIT and keyset paging.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { openDatasetWriter } from '../../src/core/datasets/index.js'

for (const backend of backendNames()) {
  describe(`data API (${backend})`, () => {
    let t: TestApp
    let keyA: string
    let keyB: string
    before(async () => {
      t = await buildTestApp(backend)
      keyA = await t.onboard('data-a')
      keyB = await t.onboard('data-b')
      const w = openDatasetWriter(t.ctx.db, t.ctx.config.dataDir, await t.datasetOf('data-a'))
      await w.ensureTable({
        name: 'events',
        columns: [
          { name: 'id', type: 'integer' },
          { name: 'day', type: 'date' },
          { name: 'label', type: 'text' },
        ],
        naturalKey: ['id'],
        dateColumn: 'day',
      })
      const rows = Array.from({ length: 25 }, (_, i) => ({ id: i + 1, day: `2026-11-${String(10 + (i % 5)).padStart(2, '0')}`, label: `e${i + 1}` }))
      assert.equal(await w.upsertRows('events', rows), 25)
    })
    after(async () => t.close())

    test('lists own tables with row counts (seeded price table included)', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/data/data-a/tables', headers: t.org(keyA) })
      assert.equal(res.statusCode, 200)
      const tables = res.json().tables as { name: string; row_count: number; date_column: string | null }[]
      const events = tables.find((x) => x.name === 'events')
      assert.deepEqual([events?.row_count, events?.date_column], [25, 'day'])
      assert.ok(tables.some((x) => x.name === 'model_prices' && x.row_count > 0))
      const other = await t.app.inject({ method: 'GET', url: '/api/v1/data/data-b/tables', headers: t.org(keyB) })
      assert.ok(!other.json().tables.some((x: { name: string }) => x.name === 'events'))
    })

    test('pages through rows with a cursor and filters on the date column', async () => {
      const seen: number[] = []
      let cursor: string | null = null
      do {
        const url: string = `/api/v1/data/data-a/tables/events/rows?limit=10${cursor ? `&cursor=${cursor}` : ''}`
        const res = await t.app.inject({ method: 'GET', url, headers: t.org(keyA) })
        assert.equal(res.statusCode, 200, res.body)
        seen.push(...res.json().rows.map((r: { id: number }) => r.id))
        cursor = res.json().next_cursor
      } while (cursor)
      assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => i + 1))
      const day = await t.app.inject({ method: 'GET', url: '/api/v1/data/data-a/tables/events/rows?date_from=2026-11-12&date_to=2026-11-12', headers: t.org(keyA) })
      assert.equal(day.json().rows.length, 5)
      assert.ok(day.json().rows.every((r: { day: string }) => r.day === '2026-11-12'))
    })

    test('unknown tables, system tables and other orgs are refused', async () => {
      for (const table of ['nope', 'org_profiles', 'org_api_keys', 'sqlite_master', 'tenantflow_migrations']) {
        const res = await t.app.inject({ method: 'GET', url: `/api/v1/data/data-a/tables/${table}/rows`, headers: t.org(keyA) })
        assert.equal(res.statusCode, 404, table)
        assert.equal(res.json().detail, 'Resource not found')
      }
      const bad = await t.app.inject({ method: 'GET', url: '/api/v1/data/data-a/tables/..%2Fx/rows', headers: t.org(keyA) })
      assert.equal(bad.statusCode, 400)
      const cross = await t.app.inject({ method: 'GET', url: '/api/v1/data/data-a/tables/events/rows', headers: t.org(keyB) })
      assert.equal(cross.statusCode, 403)
      const bEvents = await t.app.inject({ method: 'GET', url: '/api/v1/data/data-b/tables/events/rows', headers: t.org(keyB) })
      assert.equal(bEvents.statusCode, 404, "org B cannot read org A's table through its own path")
      for (const q of ['limit=1001', 'limit=0', 'cursor=!!', 'date_from=yesterday']) {
        const res = await t.app.inject({ method: 'GET', url: `/api/v1/data/data-a/tables/events/rows?${q}`, headers: t.org(keyA) })
        assert.equal(res.statusCode, 400, q)
      }
    })
  })
}
