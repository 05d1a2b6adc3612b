// Browser-test harness: a real tenantflow server on 127.0.0.1 (port 0) with its workers, local
// provider fakes, an "attacker" origin, and Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser). Builds the console first when dist/console is missing or stale.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import type { BackendName } from '../helpers/backends.js'
import { buildConsole, consoleIsCurrent } from '../../scripts/build-console.js'
import { json, startUpstream, type Upstream } from '../integrations/fakes.js'
import { writeTemplates } from '../engine/fixtures.js'

export const CHROMIUM = '/usr/bin/chromium'

/** node:test skip reason, or false when the browser tests can run. */
export function needsChromium(): string | false {
  return existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed (apt-get install chromium; .ci/run does it)`
}

export const OPENAI_ADMIN_KEY = 'sk-admin-console-test-0123456789abcdef'
export const ANTHROPIC_KEY = 'sk-ant-api03-console-test-0123456789abcdef'

/** A template with every parameter kind, needing no integration (summarizes the seeded price table). */
const FORM_TEMPLATE = `
description: Summarizes the org's price table (a template with every parameter kind).
parameters:
  n: { type: integer, min: 1, max: 10, required: true, description: A number from 1 to 10. }
  mode: { type: enum, values: [full, delta], default: full }
  label: { type: string, max_length: 5, description: Up to 5 characters. }
steps:
  - id: summarize
    processor: generic.sql_transform
    config:
      sql: SELECT provider, COUNT(*) AS models FROM model_prices GROUP BY provider
      destination:
        name: price_summary
        columns:
          - { name: provider, type: text }
          - { name: models, type: integer }
        natural_key: [provider]
      max_rows: 100
`

export interface Harness {
  t: TestApp
  base: string
  openai: Upstream
  anthropic: Upstream
  attacker: Upstream
  shots: string
  newContext(): Promise<BrowserContext>
  close(): Promise<void>
}

/** OpenAI: the admin key validates (users list) and the usage API answers one page of `results` for the day asked. */
function openaiHandler(models: () => string[], gate: () => Promise<void>) {
  return async (req: { path: string; headers: Record<string, unknown> }, res: import('node:http').ServerResponse) => {
    if (req.headers.authorization !== `Bearer ${OPENAI_ADMIN_KEY}`) return json(res, 401, { error: { message: 'bad key' } })
    const url = new URL(req.path, 'http://x')
    if (url.pathname === '/v1/organization/users') return json(res, 200, { object: 'list', data: [], has_more: false })
    if (url.pathname === '/v1/organization/usage/completions') {
      await gate()
      const start = Number(url.searchParams.get('start_time'))
      const results = models().map((model, i) => ({
        object: 'organization.usage.completions.result', input_tokens: 1000 * (i + 1), output_tokens: 100, input_cached_tokens: 0,
        num_model_requests: 3, project_id: 'proj_console', user_id: null, api_key_id: null, model, batch: null,
      }))
      return json(res, 200, { object: 'page', data: [{ object: 'bucket', start_time: start, end_time: start + 86_400, results }], has_more: false, next_page: null })
    }
    json(res, 404, { error: { message: 'not found' } })
  }
}

/** Anthropic: the key validates on /v1/models, but the usage report refuses it (a failing run). */
function anthropicHandler(req: { path: string; headers: Record<string, unknown> }, res: import('node:http').ServerResponse) {
  if (req.headers['x-api-key'] !== ANTHROPIC_KEY) return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'bad' } })
  if (req.path.startsWith('/v1/models')) return json(res, 200, { data: [{ type: 'model', id: 'claude-x', display_name: 'x', created_at: '2025-01-01T00:00:00Z' }], has_more: false, first_id: 'claude-x', last_id: 'claude-x' })
  json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'admin key required' } })
}

/**
 * The OpenAI usage answer waits while `gate()` is pending (a test holds a run in RUNNING). The server
 * runs on `backend`: the embedded store, or a fresh PostgreSQL database when TEST_DATABASE_URL is set.
 */
export async function startHarness(models: () => string[], gate: () => Promise<void> = async () => undefined, backend: BackendName = 'sqlite'): Promise<Harness> {
  if (!consoleIsCurrent()) await buildConsole()
  const openai = await startUpstream(openaiHandler(models, gate) as never)
  const anthropic = await startUpstream(anthropicHandler as never)
  const attacker = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<!doctype html><title>elsewhere</title>')
  })
  const templates = writeTemplates({ 'console/local/prices.yml': FORM_TEMPLATE })
  const t = await buildTestApp(backend, {
    env: { OPENAI_BASE_URL: openai.url, ANTHROPIC_BASE_URL: anthropic.url, WORKER_POLL_MS: '50', LOG_LEVEL: 'warn', PIPELINE_CONFIG_DIRS: templates },
  })
  t.ctx.engine!.start({ workers: true, scheduler: false, maintenance: false })
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
  const shots = process.env.CONSOLE_SCREENSHOT_DIR || mkdtempSync(join(tmpdir(), 'tf-console-shots-'))
  mkdirSync(shots, { recursive: true })
  const profiles: string[] = []
  const contexts: BrowserContext[] = []
  return {
    t,
    base,
    openai,
    anthropic,
    attacker,
    shots,
    async newContext() {
      const dir = mkdtempSync(join(tmpdir(), 'tf-chromium-'))
      profiles.push(dir)
      const ctx = await chromium.launchPersistentContext(dir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
        viewport: { width: 1280, height: 860 },
      })
      contexts.push(ctx)
      return ctx
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined)
      for (const d of profiles) rmSync(d, { recursive: true, force: true })
      await t.close()
      await openai.close()
      await anthropic.close()
      await attacker.close()
      rmSync(templates, { recursive: true, force: true })
    },
  }
}

/** Signs in through the form; the page ends on the first view. */
export async function signIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/console/`)
  await page.getByLabel('Organization API key or root key').fill(key)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('button', { name: 'Sign out' }).waitFor()
}

const require = createRequire(import.meta.url)
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

export interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: { target: string[] }[]
}

/** axe-core injected through the DevTools protocol (not an inline script, which the CSP refuses). */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE)
  const result = (await page.evaluate('axe.run()')) as { violations: AxeViolation[]; passes: unknown[] }
  // Not vacuous: axe really checked the page.
  if (result.passes.length < 5) throw new Error(`axe-core checked almost nothing (${result.passes.length} passing rules)`)
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
}

/** Waits for a condition with a generous bound (the machine is shared; no timing assumptions). */
export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
