// Console flows in a real browser on every configured backend (the embedded store; PostgreSQL when
// TEST_DATABASE_URL is set): the sign-in → quota → trigger → live COMPLETED → sign-out smoke test,
// cancel and re-run, run filters and keyset paging, server-side field errors, and offboarding.
// Screenshots go to CONSOLE_SCREENSHOT_DIR (or a temp folder) with the backend in their name.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { needsChromium, OPENAI_ADMIN_KEY, signIn, startHarness, waitFor, type Harness } from './browser-harness.js'
import { backendNames } from '../helpers/backends.js'
import { TEST_ROOT_KEY } from '../helpers/app.js'

const skip = needsChromium()
const RUN_DATE = '2026-11-27'
const LONG = { timeout: 90_000 }

for (const backend of backendNames()) {
  describe(`console flows in a browser (${backend})`, { skip }, () => {
    let h: Harness
    let ctx: BrowserContext
    let page: Page
    const keys: Record<string, string> = {}
    // The OpenAI fake answers the usage call only once `release()` is called: a run is held in RUNNING.
    let release: () => void = () => undefined
    let held: Promise<void> = Promise.resolve()
    const hold = () => {
      held = new Promise<void>((r) => (release = r))
    }

    before(async () => {
      h = await startHarness(() => ['gpt-4o-mini', 'gpt-4o'], () => held, backend)
      keys.a = await h.t.onboard('org-a', 'STARTER')
      const setup = await h.t.app.inject({ method: 'POST', url: '/api/v1/integrations/org-a/openai/setup', headers: h.t.org(keys.a), payload: { credential: OPENAI_ADMIN_KEY } })
      assert.equal(setup.statusCode, 200, setup.body)
      ctx = await h.newContext()
      page = await ctx.newPage()
    })
    after(async () => {
      release()
      await h?.close()
    })

    const shot = async (name: string, p: Page = page) => {
      await p.screenshot({ path: join(h.shots, `${backend}-${name}.png`), fullPage: true })
    }
    const go = async (path: string, p: Page = page) => {
      await p.goto(`${h.base}/console/#${path}`)
    }
    const heading = (text: string | RegExp, p: Page = page) => p.getByRole('heading', { level: 1, name: text }).waitFor(LONG)
    const badge = (status: string, p: Page = page) => p.locator('[data-testid="run-status"] .badge', { hasText: status }).waitFor(LONG)
    const runIdOf = (p: Page = page) => p.url().split('/runs/')[1]!
    const runStatus = async (runId: string) =>
      (await h.t.ctx.db.kysely.selectFrom('org_pipeline_runs').select('status').where('run_id', '=', runId).executeTakeFirstOrThrow()).status

    test('smoke: sign in with an org key, the overview shows its quota, a run triggered from the form completes live, sign out', async () => {
      await signIn(page, h.base, keys.a!)
      await heading('Overview')
      const quota = (await h.t.app.inject({ url: '/api/v1/organizations/org-a/quota', headers: h.t.org(keys.a!) })).json()
      const daily = page.locator('[data-gauge="Runs today"]')
      await daily.waitFor(LONG)
      assert.match(await daily.innerText(), new RegExp(`of ${quota.daily.limit}`))
      assert.match(await page.locator('[data-gauge="Runs this month"]').innerText(), new RegExp(`of ${quota.monthly.limit}`))
      assert.match(await page.locator('[data-gauge="Running now"]').innerText(), new RegExp(`of ${quota.concurrent.limit}`))
      await shot('01-overview')

      await go('/pipelines/openai/usage/daily')
      await heading('Run openai/usage/daily')
      await page.getByLabel('date').fill(RUN_DATE)
      hold()
      await page.getByRole('button', { name: 'Start run' }).click()
      await page.waitForURL(/#\/runs\/run_/, LONG)
      const url = page.url()
      let loads = 0
      page.on('load', () => loads++)
      await badge('running')
      release()
      // No reload: the live update (event stream, or polling) flips the badge.
      await badge('completed')
      assert.equal(page.url(), url)
      assert.equal(loads, 0, 'the page was not reloaded')
      assert.equal(await runStatus(runIdOf()), 'COMPLETED')
      const steps = await page.locator('[data-testid="steps"] li').allInnerTexts()
      assert.equal(steps.length, 2, steps.join('\n'))
      assert.match(steps[0]!, /usage[\s\S]*2 rows/)
      await shot('02-run-completed')

      await page.getByRole('button', { name: 'Sign out' }).click()
      await page.getByRole('heading', { name: 'Sign in to tenantflow' }).waitFor(LONG)
      // The server ended the session: the cookie the browser may still hold opens nothing.
      const cookie = (await ctx.cookies(h.base)).find((c) => c.name === 'tf_session')
      const token = cookie ? cookie.value : 'none'
      const after = await h.t.app.inject({ url: '/console/api/session', headers: { cookie: `tf_session=${token}` } })
      assert.equal(after.statusCode, 401)
      const left = await h.t.ctx.db.kysely.selectFrom('console_sessions').select('session_hash').where('org_slug', '=', 'org-a').execute()
      assert.equal(left.length, 0, 'the session row is gone')
    })

    test('cancel a running run from its detail (it ends CANCELLED), then run it again: the new run completes', async () => {
      await signIn(page, h.base, keys.a!)
      await go('/pipelines/openai/usage/daily')
      await heading('Run openai/usage/daily')
      await page.getByLabel('date').fill(RUN_DATE)
      hold()
      await page.getByRole('button', { name: 'Start run' }).click()
      await page.waitForURL(/#\/runs\/run_/, LONG)
      const first = runIdOf()
      await badge('running')
      await page.getByRole('button', { name: 'Cancel run' }).click()
      // The usage call is still held: only the cancel can end this run.
      await badge('cancelled')
      assert.equal(await runStatus(first), 'CANCELLED')
      assert.equal(runIdOf(), first)
      await shot('03-run-cancelled')
      release()
      await page.getByRole('button', { name: 'Run again' }).click()
      await page.waitForURL((u) => /#\/runs\/run_/.test(u.hash) && !u.hash.endsWith(first), LONG)
      const second = runIdOf()
      assert.notEqual(second, first)
      await badge('completed')
      assert.equal(await runStatus(second), 'COMPLETED')
      assert.equal(await runStatus(first), 'CANCELLED', 'the cancelled run stays cancelled')
      assert.match(await page.locator('.facts').innerText(), new RegExp(`date=${RUN_DATE}`), 'the re-run has the same parameters')
      const runs = await h.t.ctx.db.kysely.selectFrom('org_pipeline_runs').select(['run_id', 'parameters']).where('run_id', 'in', [first, second]).execute()
      assert.equal(runs.length, 2)
      const params = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v)
      assert.deepEqual(params(runs[0]!.parameters), { date: RUN_DATE })
      assert.deepEqual(params(runs[1]!.parameters), { date: RUN_DATE })
      await shot('04-rerun-completed')
    })

    test('runs list: filters by status and by pipeline; keyset paging shows the older runs without repeats', async () => {
      const limits = await h.t.app.inject({ method: 'PUT', url: '/api/v1/organizations/org-a/subscription', headers: h.t.root, payload: { daily_limit: 999, monthly_limit: 999, triggers_per_minute: 1000, requests_per_minute: 100000 } })
      assert.equal(limits.statusCode, 200, limits.body)
      const PRICES = 22
      // Distinct parameters: an identical trigger while the first still runs would be deduplicated.
      for (let i = 0; i < PRICES; i++) {
        const res = await h.t.app.inject({ method: 'POST', url: '/api/v1/pipelines/run/org-a/console/local/prices', headers: h.t.org(keys.a!), payload: { parameters: { n: (i % 10) + 1, label: `r${i}` } } })
        assert.equal(res.statusCode, 202, res.body)
      }
      const all = await waitFor('every run to finish', async () => {
        const rows = await h.t.ctx.db.kysely.selectFrom('org_pipeline_runs').select(['run_id', 'status', 'pipeline_id']).where('org_slug', '=', 'org-a').execute()
        return rows.every((r) => ['COMPLETED', 'CANCELLED', 'FAILED'].includes(r.status)) && rows.length >= PRICES + 3 ? rows : null
      }, 120_000)
      const ids = (pred: (r: (typeof all)[number]) => boolean) => all.filter(pred).map((r) => r.run_id).sort()
      assert.ok(all.length > 20, 'more runs than one page')

      await go('/runs')
      await heading('Runs')
      const rows = page.locator('tbody tr')
      const shown = async () => (await page.locator('tbody tr td:first-child a').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).hash.split('/runs/')[1]!))).map(decodeURIComponent)
      const settle = (n: number) => waitFor(`${n} rows`, async () => (await rows.count()) === n)
      await settle(20)
      const page1 = await shown()
      await shot('05-runs-page-1')
      await page.getByRole('button', { name: 'Older →' }).click()
      await settle(all.length - 20)
      const page2 = await shown()
      assert.deepEqual(page2.filter((id) => page1.includes(id)), [], 'no run is on both pages')
      assert.deepEqual([...page1, ...page2].sort(), ids(() => true), 'the two pages are every run')
      // Newest first across the page boundary.
      const created = new Map((await h.t.ctx.db.kysely.selectFrom('org_pipeline_runs').select(['run_id', 'created_at']).where('org_slug', '=', 'org-a').execute()).map((r) => [r.run_id, Number(r.created_at)]))
      assert.ok(Math.min(...page1.map((id) => created.get(id)!)) >= Math.max(...page2.map((id) => created.get(id)!)), 'the next page holds the older runs')
      assert.equal(await page.getByRole('button', { name: 'Older →' }).isDisabled(), true, 'no page after the last')
      await shot('06-runs-page-2')
      await page.getByRole('button', { name: '← Newer' }).click()
      await settle(20)
      assert.deepEqual(await shown(), page1)

      await page.getByLabel('Status').selectOption('CANCELLED')
      await waitFor('cancelled runs only', async () => JSON.stringify((await shown()).sort()) === JSON.stringify(ids((r) => r.status === 'CANCELLED')))
      assert.equal(await page.getByRole('button', { name: 'Older →' }).count(), 0, 'one page: no pager')
      await shot('07-runs-cancelled')
      await page.getByLabel('Status').selectOption('')
      await page.getByLabel('Pipeline').selectOption('openai/usage/daily')
      await waitFor('openai runs only', async () => JSON.stringify((await shown()).sort()) === JSON.stringify(ids((r) => r.pipeline_id === 'openai/usage/daily')))
      assert.ok(ids((r) => r.pipeline_id === 'openai/usage/daily').length >= 3)
      await page.getByLabel('Status').selectOption('COMPLETED')
      await waitFor('completed openai runs', async () => JSON.stringify((await shown()).sort()) === JSON.stringify(ids((r) => r.pipeline_id === 'openai/usage/daily' && r.status === 'COMPLETED')))
      await page.getByLabel('Pipeline').selectOption('console/local/prices')
      await page.getByLabel('Status').selectOption('CANCELLED')
      await page.getByText('No run matches these filters').waitFor(LONG)
      assert.equal(await rows.count(), 0)
    })

    test('a value the client lets through but the server refuses: the server error is shown next to its field', async () => {
      // The page is told n may go up to 100 (as if the template changed after the catalogue was read);
      // the server still allows at most 10.
      await page.route('**/api/v1/pipelines', async (route) => {
        const res = await route.fetch()
        const body = await res.json()
        for (const t of body.pipelines) if (t.id === 'console/local/prices') t.parameters.n.max = 100
        await route.fulfill({ response: res, json: body })
      })
      try {
        await go('/pipelines/console/local/prices')
        await heading('Run console/local/prices')
        const before = await h.t.ctx.db.kysely.selectFrom('org_pipeline_runs').select('run_id').where('org_slug', '=', 'org-a').execute()
        await page.locator('#param-n').fill('42')
        const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/pipelines/run/org-a/console/local/prices'), LONG)
        await page.getByRole('button', { name: 'Start run' }).click()
        const res = await answer
        assert.equal(res.status(), 400, 'the client check let 42 through; the server refused it')
        assert.equal((await res.json()).code, 'INVALID_PARAMETERS')
        const fieldError = page.locator('#param-n-err')
        await fieldError.waitFor(LONG)
        assert.match(await fieldError.innerText(), /must be an integer between 1 and 10/)
        assert.equal(await page.locator('#param-n').getAttribute('aria-invalid'), 'true')
        assert.match(String(await page.locator('#param-n').getAttribute('aria-describedby')), /param-n-err/)
        assert.equal(await page.locator('#param-label-err').count(), 0, 'only the field the server named')
        assert.match(page.url(), /#\/pipelines\/console\/local\/prices$/, 'the form stays open')
        const afterRows = await h.t.ctx.db.kysely.selectFrom('org_pipeline_runs').select('run_id').where('org_slug', '=', 'org-a').execute()
        assert.equal(afterRows.length, before.length, 'no run was created')
        await shot('08-trigger-server-field-error')
      } finally {
        await page.unroute('**/api/v1/pipelines')
      }
    })

    test('operator offboarding: the button enables only on the exact slug; once confirmed the org is gone from the list', async () => {
      const goneKey = await h.t.onboard('org-gone')
      const cA = await h.newContext()
      const pA = await cA.newPage()
      try {
        await signIn(pA, h.base, TEST_ROOT_KEY)
        await heading('Organizations', pA)
        await waitFor('both orgs listed', async () => {
          const text = await pA.locator('tbody').innerText()
          return text.includes('org-gone') && text.includes('org-a')
        })
        await pA.getByRole('link', { name: 'org-gone' }).click()
        await heading('org-gone', pA)
        const button = pA.getByRole('button', { name: 'Offboard org-gone' })
        const field = pA.getByLabel('Type org-gone to confirm')
        assert.equal(await button.isDisabled(), true, 'disabled before anything is typed')
        for (const wrong of ['org-gon', 'ORG-GONE', 'org-gone ', ' org-gone', 'org-a']) {
          await field.fill(wrong)
          assert.equal(await field.inputValue(), wrong)
          assert.equal(await button.isDisabled(), true, `disabled for ${JSON.stringify(wrong)}`)
        }
        await field.fill('org-gone')
        await waitFor('the button enables', async () => !(await button.isDisabled()))
        await shot('09-offboard-confirmed', pA)
        await button.click()
        await heading('Organizations', pA)
        await waitFor('org-gone left the list', async () => {
          const text = await pA.locator('tbody').innerText()
          return text.includes('org-a') && !text.includes('org-gone')
        })
        assert.equal(await pA.getByRole('link', { name: 'org-gone' }).count(), 0)
        await shot('10-offboarded-list', pA)
        assert.equal((await h.t.app.inject({ url: '/api/v1/organizations/org-gone/subscription', headers: h.t.root })).statusCode, 404)
        assert.equal((await h.t.app.inject({ url: '/api/v1/organizations/org-gone/quota', headers: h.t.org(goneKey) })).statusCode, 401, 'its key is gone too')
        assert.equal((await h.t.app.inject({ url: '/api/v1/organizations/org-a/quota', headers: h.t.org(keys.a!) })).statusCode, 200, 'the other org is untouched')
      } finally {
        await cA.close()
      }
    })
  })
}
