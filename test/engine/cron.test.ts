// Cron expressions parse once and deterministically: `H` (resolved randomly by the library) is
// refused with the rule, an impossible date is a 400 (never a 500), the same request always gets
// the same answer, and the stored next_run_at is the validated parse's own next time.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { writeTemplates } from './fixtures.js'
import { CRON_RULE, isValidCron, nextCronTime, parseCronNext } from '../../src/core/pipelines/scheduler.js'

const templateDir = writeTemplates({
  'tests/local/cron.yml': `
description: cron test template
steps:
  - id: summarize
    processor: generic.sql_transform
    config:
      sql: SELECT 1 AS n
      destination:
        name: cron_out
        columns:
          - { name: n, type: integer }
        natural_key: [n]
      max_rows: 10
`,
})

const HASHED = ['H * * * *', 'H/15 * * * *', 'H(0-29) * * * *', '0 H * * *', '0 0 * * h']

test('H is refused; weekday and month names still parse; the next time is a pure function of its inputs', () => {
  for (const c of HASHED) assert.equal(isValidCron(c), false, c)
  for (const c of ['0 9 * * THU', '0 0 1 MAR *', '*/5 * * * *', '@daily']) assert.equal(isValidCron(c), true, c)
  assert.equal(parseCronNext('0 0 30 2 *', 'UTC', Date.now()), null, 'February 30th never comes')
  const at = Date.UTC(2026, 0, 1, 10, 30)
  assert.equal(parseCronNext('0 9 * * THU', 'UTC', at), Date.UTC(2026, 0, 8, 9, 0))
  assert.equal(parseCronNext('0 9 * * *', 'Europe/Paris', at), Date.UTC(2026, 0, 2, 8, 0))
  assert.equal(nextCronTime('0 9 * * THU', 'UTC', at), parseCronNext('0 9 * * THU', 'UTC', at))
  assert.throws(() => nextCronTime('H * * * *', 'UTC', at))
})

for (const backend of backendNames()) {
  describe(`schedule cron validation (${backend})`, () => {
    test('the same H request gets the same 400 every time; an impossible date is a 400; a valid one is stored as parsed', async () => {
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
      try {
        const org = t.org(await t.onboard('cron-org'))
        const create = (cron: string, timezone = 'UTC') =>
          t.app.inject({ method: 'POST', url: '/api/v1/scheduler/cron-org/schedules', headers: org, payload: { pipeline_id: 'tests/local/cron', cron, timezone } })
        for (const cron of HASHED) {
          for (let i = 0; i < 5; i++) {
            const res = await create(cron)
            assert.equal(res.statusCode, 400, `${cron}: ${res.body}`)
            assert.equal(res.json().code, 'VALIDATION_FAILED')
            assert.deepEqual(res.json().errors, [{ path: 'body/cron', message: CRON_RULE }])
          }
        }
        const feb30 = await create('0 0 30 2 *')
        assert.equal(feb30.statusCode, 400, feb30.body)
        const both = await create('H * * * *', 'Mars/Olympus')
        assert.deepEqual(both.json().errors.map((e: { path: string }) => e.path), ['body/cron', 'body/timezone'])
        const before = Date.now()
        const ok = await create('0 9 * * THU', 'Europe/Paris')
        assert.equal(ok.statusCode, 201, ok.body)
        const next = Date.parse(ok.json().next_run_at)
        const expected = parseCronNext('0 9 * * THU', 'Europe/Paris', before)!
        // Created between `before` and now: the stored time is that parse's next Thursday 09:00 Paris.
        assert.ok(next === expected || next === parseCronNext('0 9 * * THU', 'Europe/Paris', Date.now()), ok.body)
        const list = await t.app.inject({ method: 'GET', url: '/api/v1/scheduler/cron-org/schedules', headers: org })
        assert.equal(list.json().schedules.length, 1, 'refused requests stored nothing')
      } finally {
        await t.close()
      }
    })
  })
}
