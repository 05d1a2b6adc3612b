import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createSqlTransformProcessor } from '../../src/core/processors/generic/index.js'
import { registerBuiltinProcessors } from '../../src/core/processors/builtin.js'
import { ProcessorRegistry } from '../../src/core/processors/registry.js'
import { ProcessorConfigError } from '../../src/core/processors/types.js'
import { parseTemplate, TemplateError } from '../../src/core/pipelines/templates.js'
import { backendNames } from '../helpers/backends.js'
import { allRows, expectProcessorError, makeCtx, setupEnv, type Env } from './helpers.js'

const DEST = {
  name: 'daily_totals',
  columns: [
    { name: 'day', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'tokens', type: 'integer' },
    { name: 'events', type: 'integer' },
  ],
  natural_key: ['day', 'model'],
  date_column: 'day',
}
const GOOD_SQL = 'SELECT day, model, SUM(tokens) AS tokens, COUNT(*) AS events FROM events WHERE day = :date GROUP BY day, model'

const ATTACKS: Record<string, string> = {
  'system table': 'SELECT org_slug AS model FROM org_profiles',
  'another schema': 'SELECT * FROM org_other.events',
  'another schema (quoted)': 'SELECT * FROM "org_other"."events"',
  attach: "ATTACH DATABASE '/tmp/other.db' AS other",
  'multiple statements': 'SELECT day FROM events; DELETE FROM events',
  'write statement': 'DELETE FROM events WHERE day = :date',
  'write in a CTE': 'WITH gone AS (DELETE FROM events RETURNING *) SELECT * FROM gone',
  'comment hiding a second statement': 'SELECT day FROM events /* ; */ ; DROP TABLE events',
  'line comment hiding a second statement': 'SELECT day FROM events --\n; DROP TABLE events',
  'file read': "SELECT pg_read_file('/etc/passwd') AS model",
  'catalogue read': 'SELECT name AS model FROM sqlite_master',
}

describe('generic.sql_transform load-time refusals', () => {
  const p = createSqlTransformProcessor()
  for (const [label, sqlText] of Object.entries(ATTACKS)) {
    test(`refuses ${label}`, () => {
      assert.throws(() => p.validateConfig({ sql: sqlText, destination: DEST }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'sql')
    })
  }
  test('a template carrying such SQL does not load (TemplateError naming the step config)', () => {
    const reg = registerBuiltinProcessors(new ProcessorRegistry(), { openaiBaseUrl: 'https://api.openai.com', anthropicBaseUrl: 'https://api.anthropic.com' })
    const yaml = (sqlText: string) =>
      `description: t\nsteps:\n  - id: t\n    processor: generic.sql_transform\n    config:\n      sql: ${JSON.stringify(sqlText)}\n      destination:\n        name: out\n        columns: [{ name: k, type: text }]\n        natural_key: [k]\n`
    parseTemplate('ok.yml', yaml('SELECT model AS k FROM events'), { provider: 'generic', domain: 'sql', pipeline: 'ok' }, reg)
    for (const sqlText of Object.values(ATTACKS)) {
      assert.throws(() => parseTemplate('bad.yml', yaml(sqlText), { provider: 'generic', domain: 'sql', pipeline: 'bad' }, reg), (e: unknown) => e instanceof TemplateError && e.field === 'steps[0].config')
    }
  })
  test('destination must be a valid, non-reserved table', () => {
    assert.throws(() => p.validateConfig({ sql: GOOD_SQL, destination: { ...DEST, name: 'org_profiles' } }), ProcessorConfigError)
    assert.throws(() => p.validateConfig({ sql: GOOD_SQL, destination: { ...DEST, natural_key: ['nope'] } }), ProcessorConfigError)
    assert.throws(() => p.validateConfig({ sql: GOOD_SQL, destination: DEST, extra: 1 }), ProcessorConfigError)
  })
})

for (const backend of backendNames()) {
  describe(`generic.sql_transform on ${backend}`, () => {
    let env: Env
    before(async () => {
      env = await setupEnv(backend, ['acme', 'other'])
      const w = env.writer('acme')
      await w.ensureTable({
        name: 'events',
        columns: [{ name: 'id', type: 'integer' }, { name: 'day', type: 'date' }, { name: 'model', type: 'text' }, { name: 'tokens', type: 'integer' }],
        naturalKey: ['id'],
        dateColumn: 'day',
      })
      await w.upsertRows('events', Array.from({ length: 300 }, (_, i) => ({ id: i, day: i % 2 ? '2026-11-27' : '2026-11-26', model: `m${i % 5}`, tokens: i })))
      const o = env.writer('other')
      await o.ensureTable({ name: 'private_rows', columns: [{ name: 'k', type: 'text' }], naturalKey: ['k'] })
      await o.upsertRows('private_rows', [{ k: 'OTHER-ORG-SECRET' }])
    })
    after(() => env.close())

    test('runs the checked SELECT with the date bound and writes the destination idempotently', async () => {
      const p = createSqlTransformProcessor()
      const config = p.validateConfig({ sql: GOOD_SQL, destination: DEST })
      const ctx = () => makeCtx(env, { parameters: { date: '2026-11-27' } })
      const r = await p.run(ctx(), config)
      assert.equal(r.rows_processed, 5)
      const rows = await allRows(env.writer('acme'), 'daily_totals')
      assert.equal(rows.length, 5)
      assert.equal(rows.reduce((n, x) => n + (x.events as number), 0), 150)
      await p.run(ctx(), config)
      assert.deepEqual(await allRows(env.writer('acme'), 'daily_totals'), rows)
    })

    test("another org's table passes the load-time check but is refused at run time", async () => {
      const p = createSqlTransformProcessor()
      const config = p.validateConfig({ sql: 'SELECT k AS model FROM private_rows', destination: { ...DEST, columns: [{ name: 'model', type: 'text' }], natural_key: ['model'], date_column: undefined } })
      const err = await expectProcessorError(p.run(makeCtx(env, {}), config), 'INVALID_DATA', ['OTHER-ORG-SECRET'])
      assert.match(err.message, /not in this dataset/)
    })

    test('a missing run parameter and a result that does not fit the destination fail', async () => {
      const p = createSqlTransformProcessor()
      await expectProcessorError(p.run(makeCtx(env, {}), p.validateConfig({ sql: GOOD_SQL, destination: DEST })), 'INVALID_DATA')
      const wrong = p.validateConfig({ sql: 'SELECT day, model, tokens, id AS events, 1 AS extra FROM events', destination: DEST })
      await expectProcessorError(p.run(makeCtx(env, {}), wrong), 'INVALID_DATA')
      const capped = p.validateConfig({ sql: 'SELECT day, model, tokens, id AS events FROM events', destination: DEST, max_rows: 10 })
      await expectProcessorError(p.run(makeCtx(env, {}), capped), 'LIMIT_EXCEEDED')
    })
  })
}
