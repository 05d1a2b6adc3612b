// utcCalendar(): one cached computation per UTC day, right at every edge and when time moves back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { utcCalendar } from '../../src/core/clock.js'

test('utcCalendar gives the UTC day, month and next roll-overs for any instant, across day, month and year edges', () => {
  const at = (iso: string) => utcCalendar(Date.parse(iso))
  const cases: [string, string, string, string, string][] = [
    ['2026-12-04T03:16:00.000Z', '2026-12-04', '2026-12', '2026-12-05T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    ['2026-12-04T23:59:59.999Z', '2026-12-04', '2026-12', '2026-12-05T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    ['2026-12-31T23:59:59.999Z', '2026-12-31', '2026-12', '2027-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    ['2027-01-01T00:00:00.000Z', '2027-01-01', '2027-01', '2027-01-02T00:00:00.000Z', '2027-02-01T00:00:00.000Z'],
    // Back in time (a test clock): the cached day is not reused.
    ['2026-02-28T12:00:00.000Z', '2026-02-28', '2026-02', '2026-03-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
    ['2028-02-28T12:00:00.000Z', '2028-02-28', '2028-02', '2028-02-29T00:00:00.000Z', '2028-03-01T00:00:00.000Z'],
  ]
  for (const [iso, day, month, midnight, monthStart] of cases) {
    const c = at(iso)
    assert.deepEqual([c.day, c.month, c.nextMidnightIso, c.nextMonthStartIso], [day, month, midnight, monthStart], iso)
    assert.ok(c.start <= Date.parse(iso) && Date.parse(iso) < c.end)
  }
})
