// Builds a real app (real storage, real KMS envelope, real guards) on a fresh backend, for inject().
import { Writable } from 'node:stream'
import { loadConfig } from '../../src/app/config.js'
import { createRuntime, type Runtime } from '../../src/app/runtime.js'
import { buildApp, type App } from '../../src/app/server.js'
import type { AppContext } from '../../src/app/context.js'
import type { Clock } from '../../src/core/clock.js'
import { flushAccessLines } from '../../src/core/observability/logger.js'
import { freshBackend, testEnv, TEST_ROOT_KEY, type BackendName, type TestBackend } from './backends.js'

export { TEST_ROOT_KEY }

export interface TestApp {
  app: App
  ctx: AppContext
  runtime: Runtime
  backend: TestBackend
  /** Every log line the app wrote (level debug and up). */
  logs: string[]
  close(): Promise<void>
  /** Onboards an org through the API and returns its key. */
  onboard(slug: string, plan?: 'STARTER' | 'PROFESSIONAL' | 'SCALE', extra?: Record<string, unknown>): Promise<string>
  root: Record<string, string>
  org(key: string): Record<string, string>
  /** The dataset binding of the org's current incarnation. */
  datasetOf(slug: string): Promise<{ orgSlug: string; datasetId: string }>
}

export interface TestAppOptions {
  env?: Record<string, string>
  clock?: Clock
  /** Reuse an existing backend (second instance on the same database). */
  backend?: TestBackend
}

export async function buildTestApp(name: BackendName, opts: TestAppOptions = {}): Promise<TestApp> {
  const backend = opts.backend ?? (await freshBackend(name))
  const logs: string[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      // One entry per line: access lines arrive joined in chunks.
      for (const line of String(chunk).split(/(?<=\n)/)) if (line) logs.push(line)
      cb()
    },
  })
  const config = loadConfig(
    testEnv(backend, { LOG_LEVEL: 'debug', FAILED_AUTH_PER_MINUTE: '100000', RATE_LIMIT_IP_PER_MINUTE: '1000000', ...opts.env }),
  )
  const runtime = await createRuntime(config, { clock: opts.clock, logDestination: sink })
  const app = await buildApp(runtime.ctx)
  const root = { 'x-ca-root-key': TEST_ROOT_KEY }
  const t: TestApp = {
    app,
    ctx: runtime.ctx,
    runtime,
    backend,
    // Access lines wait in a batch (logger.ts): whoever reads the log sees them all.
    get logs() {
      flushAccessLines()
      return logs
    },
    root,
    org: (key) => ({ 'x-api-key': key }),
    async datasetOf(slug) {
      const row = await runtime.ctx.db.kysely.selectFrom('org_profiles').select('dataset_id').where('org_slug', '=', slug).executeTakeFirstOrThrow()
      return { orgSlug: slug, datasetId: row.dataset_id }
    },
    async close() {
      await app.close()
      await runtime.ctx.engine?.stop(0)
      await runtime.close()
      if (!opts.backend) await backend.cleanup()
    },
    async onboard(slug, plan = 'STARTER', extra = {}) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/organizations/onboard',
        headers: root,
        payload: { org_slug: slug, company_name: `${slug} Inc`, admin_email: `admin@${slug}.example.com`, subscription_plan: plan, ...extra },
      })
      if (res.statusCode !== 201) throw new Error(`onboard ${slug} failed: ${res.statusCode} ${res.body}`)
      return res.json().api_key as string
    },
  }
  return t
}
