// The plan catalogue (configs/plans.yaml, PLANS_FILE, GET /api/v1/plans) and schedule editing:
// pause/resume/edit, the per-plan minimum interval, refusal without a usable integration, and
// last_status carrying the run's outcome (and refusals with their code).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { backendNames, freshBackend, testEnv } from '../helpers/backends.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { loadConfig } from '../../src/app/config.js'
import { createRuntime } from '../../src/app/runtime.js'
import { parsePlanCatalog, PlanCatalogError, shippedPlansFile } from '../../src/core/orgs/plans.js'
import { shortestCronGapSeconds } from '../../src/core/pipelines/scheduler.js'
import { PRICE_SUMMARY_TEMPLATE, writeTemplates } from './fixtures.js'

const templateDir = writeTemplates({
  'sched/local/prices.yml': PRICE_SUMMARY_TEMPLATE,
  'sched/local/broken.yml': PRICE_SUMMARY_TEMPLATE.replace('FROM model_prices', 'FROM no_such_table'),
})
const DEADLINE_MS = 60_000

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>): Promise<T> {
  const end = Date.now() + DEADLINE_MS
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function plansFileWith(edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tf-plans-'))
  const file = join(dir, 'plans.yaml')
  writeFileSync(file, edit(readFileSync(shippedPlansFile(), 'utf8')))
  return file
}

test('plan catalogue: the shipped file parses; a bad file is refused naming the field', () => {
  const shipped = parsePlanCatalog(readFileSync(shippedPlansFile(), 'utf8'))
  assert.equal(shipped.STARTER.daily_limit, 6)
  assert.equal(shipped.STARTER.min_schedule_interval_seconds, 14400)
  assert.equal(shipped.ENTERPRISE.onboarding, false)
  const text = readFileSync(shippedPlansFile(), 'utf8')
  const bad = (t: string) => assert.throws(() => parsePlanCatalog(t), PlanCatalogError)
  bad(text.replace('daily_limit: 6', 'daily_limit: -1'))
  bad(text.replace('min_schedule_interval_seconds: 14400', 'min_schedule_interval_seconds: 5'))
  bad(text.replace('  ENTERPRISE:', '  GOLD:'))
  bad(text.replace('    onboarding: true\n    daily_limit: 6', '    onboarding: true\n    surprise: 1\n    daily_limit: 6'))
  try {
    parsePlanCatalog(text.replace('daily_limit: 6', 'daily_limit: "six"'))
  } catch (err) {
    assert.equal((err as PlanCatalogError).field, 'plans.STARTER.daily_limit')
  }
})

test('cron gaps: the shortest interval between fires', () => {
  const now = Date.parse('2026-12-01T00:00:00Z')
  assert.equal(shortestCronGapSeconds('* * * * *', 'UTC', now, 14400), 60)
  assert.equal(shortestCronGapSeconds('0 */4 * * *', 'UTC', now, 14400), 14400)
  assert.equal(shortestCronGapSeconds('0 9,10 * * *', 'UTC', now, 1), 3600)
  // Midnight in Paris: 24 h apart except across the spring DST change (23 h), which 400 fires include.
  assert.equal(shortestCronGapSeconds('@daily', 'Europe/Paris', now, 14400), 82800)
})

for (const backend of backendNames()) {
  describe(`plans and schedules (${backend})`, () => {
    test('GET /api/v1/plans for any valid key; PLANS_FILE overrides what new orgs get', async () => {
      const file = plansFileWith((t) => t.replace('daily_limit: 6', 'daily_limit: 3').replace('min_schedule_interval_seconds: 14400', 'min_schedule_interval_seconds: 7200'))
      const t = await buildTestApp(backend, { env: { PLANS_FILE: file } })
      try {
        const key = await t.onboard('alpha')
        const res = await t.app.inject({ method: 'GET', url: '/api/v1/plans', headers: t.org(key) })
        assert.equal(res.statusCode, 200)
        const starter = res.json().plans.find((p: { plan_name: string }) => p.plan_name === 'STARTER')
        assert.equal(starter.daily_limit, 3)
        assert.equal(starter.min_schedule_interval_seconds, 7200)
        assert.equal(starter.available_for_onboarding, true)
        assert.deepEqual(res.json().plans.map((p: { plan_name: string }) => p.plan_name), ['STARTER', 'PROFESSIONAL', 'SCALE', 'ENTERPRISE'])
        assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/plans', headers: t.root })).statusCode, 200)
        assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/plans' })).statusCode, 401)
        const sub = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/alpha/subscription', headers: t.org(key) })
        assert.equal(sub.json().daily_limit, 3, 'onboarding copies the configured plan limits')
        const row = await t.ctx.db.kysely.selectFrom('plans').selectAll().where('plan_name', '=', 'STARTER').executeTakeFirstOrThrow()
        assert.equal(row.min_schedule_interval_seconds, 7200, 'the plans table mirrors the catalogue')
      } finally {
        await t.close()
      }
      // A catalogue that does not parse stops startup, naming the field only.
      const b = await freshBackend(backend)
      try {
        const broken = plansFileWith((t) => t.replace('daily_limit: 6', 'daily_limit: 0'))
        await assert.rejects(createRuntime(loadConfig(testEnv(b, { PLANS_FILE: broken }))), (err: Error) => err instanceof PlanCatalogError && err.field === 'plans.STARTER.daily_limit')
      } finally {
        await b.cleanup()
      }
    })

    test('schedules: minimum interval, integration refusal, pause/resume/edit, isolation', async () => {
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir } })
      try {
        const alpha = t.org(await t.onboard('alpha'))
        const beta = t.org(await t.onboard('beta'))
        const url = '/api/v1/scheduler/alpha/schedules'
        const send = (method: 'POST' | 'PATCH' | 'GET', u: string, payload?: object, headers = alpha) =>
          t.app.inject({ method, url: u, headers, ...(payload ? { payload } : {}) })
        const count = async () => (await send('GET', url)).json().schedules.length

        const everyMinute = await send('POST', url, { pipeline_id: 'sched/local/prices', cron: '* * * * *' })
        assert.equal(everyMinute.statusCode, 400)
        assert.equal(everyMinute.json().code, 'SCHEDULE_INTERVAL_TOO_SHORT')
        assert.equal(everyMinute.json().errors[0].path, 'body/cron')
        assert.match(everyMinute.json().errors[0].message, /STARTER plan .* 14400 s/)
        assert.equal(await count(), 0, 'a refusal stores nothing')

        const noCred = await send('POST', url, { pipeline_id: 'openai/usage/daily', cron: '0 6 * * *' })
        assert.equal(noCred.statusCode, 400)
        assert.equal(noCred.json().code, 'INTEGRATION_NOT_CONFIGURED')
        assert.equal(await count(), 0)

        const created = await send('POST', url, { pipeline_id: 'sched/local/prices', cron: '0 */4 * * *', name: 'price summary', parameters: { n: 1 } })
        assert.equal(created.statusCode, 201, created.body)
        const s = created.json()
        assert.equal(s.name, 'price summary')
        assert.equal(s.is_active, true)
        const one = `${url}/${s.schedule_id}`

        const paused = await send('PATCH', one, { is_active: false })
        assert.equal(paused.statusCode, 200)
        assert.equal(paused.json().is_active, false)
        assert.equal(paused.json().next_run_at, null)
        const resumed = await send('PATCH', one, { is_active: true })
        assert.equal(resumed.json().is_active, true)
        assert.ok(Date.parse(resumed.json().next_run_at) > Date.now() - 60_000)

        const tooFast = await send('PATCH', one, { cron: '*/5 * * * *' })
        assert.equal(tooFast.statusCode, 400)
        assert.equal(tooFast.json().code, 'SCHEDULE_INTERVAL_TOO_SHORT')
        const edited = await send('PATCH', one, { cron: '30 6 * * *', timezone: 'Europe/Paris', parameters: { n: 2 }, name: 'morning' })
        assert.equal(edited.statusCode, 200, edited.body)
        assert.deepEqual([edited.json().cron, edited.json().timezone, edited.json().parameters, edited.json().name], ['30 6 * * *', 'Europe/Paris', { n: 2 }, 'morning'])
        assert.equal(new Date(edited.json().next_run_at).getUTCMinutes(), 30)
        const badZone = await send('PATCH', one, { timezone: 'Mars/Olympus' })
        assert.equal(badZone.statusCode, 400)
        const badParams = await send('PATCH', one, { parameters: { n: -1 } })
        assert.equal(badParams.json().code, 'INVALID_PARAMETERS')
        assert.equal((await send('PATCH', one, {})).statusCode, 400)
        assert.equal((await send('PATCH', one, { nope: 1 })).statusCode, 400)
        const after = (await send('GET', url)).json().schedules[0]
        assert.deepEqual([after.cron, after.timezone, after.name], ['30 6 * * *', 'Europe/Paris', 'morning'], 'refused edits change nothing')

        // Another org: its own path does not know the id; alpha's path is forbidden.
        assert.equal((await send('PATCH', `/api/v1/scheduler/beta/schedules/${s.schedule_id}`, { is_active: false }, beta)).statusCode, 404)
        assert.equal((await send('PATCH', one, { is_active: false }, beta)).statusCode, 403)
        assert.equal((await send('GET', url)).json().schedules[0].is_active, true)

        // A faster schedule fits a plan whose minimum is lower.
        const up = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/alpha/subscription', headers: t.root, payload: { plan_name: 'SCALE' } })
        assert.equal(up.statusCode, 200, up.body)
        assert.equal((await send('PATCH', one, { cron: '*/15 * * * *' })).statusCode, 200)
      } finally {
        await t.close()
      }
    })

    test('last_status: the run outcome, then refusals with their code', async () => {
      const t = await buildTestApp(backend, { env: { PIPELINE_CONFIG_DIRS: templateDir, WORKER_POLL_MS: '50' } })
      try {
        const alpha = t.org(await t.onboard('alpha'))
        t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
        const url = '/api/v1/scheduler/alpha/schedules'
        const make = async (pipeline: string) => {
          const r = await t.app.inject({ method: 'POST', url, headers: alpha, payload: { pipeline_id: pipeline, cron: '0 0 * * *', parameters: { n: 1 } } })
          assert.equal(r.statusCode, 201, r.body)
          return r.json().schedule_id as string
        }
        const ok = await make('sched/local/prices')
        const broken = await make('sched/local/broken')
        const due = () => t.ctx.db.kysely.updateTable('org_schedules').set({ next_run_at: Date.now() - 1000 }).where('org_slug', '=', 'alpha').execute()
        const statusOf = async (id: string) =>
          ((await t.app.inject({ method: 'GET', url, headers: alpha })).json().schedules as { schedule_id: string; last_status: string; last_error_code: string | null }[]).find((x) => x.schedule_id === id)!
        await due()
        const fired = await t.ctx.engine!.scheduler.tick()
        assert.deepEqual([fired[ok], fired[broken]], ['admitted', 'admitted'])
        const done = await until('both outcomes', async () => {
          const a = await statusOf(ok)
          const b = await statusOf(broken)
          return a.last_status !== 'ADMITTED' && b.last_status !== 'ADMITTED' ? [a, b] : null
        })
        assert.deepEqual([done[0]!.last_status, done[0]!.last_error_code], ['COMPLETED', null])
        assert.equal(done[1]!.last_status, 'FAILED')
        assert.ok(done[1]!.last_error_code, 'a failed run leaves its error code')

        // A refusal at the next fire is recorded with its code (daily quota of 2 runs used up).
        const cut = await t.app.inject({ method: 'PUT', url: '/api/v1/organizations/alpha/subscription', headers: t.root, payload: { daily_limit: 2 } })
        assert.equal(cut.statusCode, 200, cut.body)
        await due()
        await t.ctx.engine!.scheduler.tick()
        const refused = await statusOf(ok)
        assert.deepEqual([refused.last_status, refused.last_error_code], ['REFUSED', 'DAILY_QUOTA_EXCEEDED'])
      } finally {
        await t.close()
      }
    })
  })
}
