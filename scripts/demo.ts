// `npm run demo`: a first run for a new user, with nothing but Node.js. Starts tenantflow on the
// embedded store (temporary data dir), serves a small local orders API, onboards a demo org, stores
// an `http` credential for that API, runs the generic HTTP pipeline, and prints the run, its steps and
// the loaded rows. Everything happens over real HTTP on 127.0.0.1.
import { createServer, type Server } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadConfig } from '../src/app/config.js'
import { createRuntime } from '../src/app/runtime.js'
import { buildApp } from '../src/app/server.js'

const started = Date.now()
const out = (s: string) => process.stdout.write(s)
let stepNo = 0
const TOTAL_STEPS = 7

async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  stepNo++
  const t0 = Date.now()
  out(`[${stepNo}/${TOTAL_STEPS}] ${label} ... `)
  const r = await fn()
  out(`done (${Date.now() - t0} ms)\n`)
  return r
}

/** A small orders API: bearer auth, cursor pagination, deterministic data for the requested day. */
function demoApi(token: string): Server {
  const statuses = ['paid', 'refunded', 'pending']
  const currencies = ['USD', 'EUR']
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}')
      return
    }
    if (url.pathname === '/v1/ping') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
      return
    }
    if (url.pathname !== '/v1/orders') {
      res.writeHead(404).end()
      return
    }
    const date = url.searchParams.get('date') ?? '1970-01-01'
    const offset = Number(url.searchParams.get('cursor') ?? '0')
    const total = 120
    const page = Array.from({ length: Math.min(50, total - offset) }, (_, i) => {
      const n = offset + i
      return {
        id: `ord_${date.replace(/-/g, '')}_${String(n).padStart(4, '0')}`,
        status: statuses[n % 3],
        amount: Math.round(((n * 37) % 500) * 100 + 99) / 100,
        currency: currencies[n % 2],
        created_at: `${date}T${String(n % 24).padStart(2, '0')}:00:00Z`,
        customer: { name: `Customer ${n % 17}` },
      }
    })
    const next = offset + page.length < total ? String(offset + page.length) : null
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: page, next_cursor: next }))
  })
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

async function main(): Promise<void> {
  out('tenantflow demo: one org, one credential, one pipeline run, on the embedded store\n\n')
  const dataDir = mkdtempSync(join(tmpdir(), 'tenantflow-demo-'))
  const rootKey = `demo-root-${randomBytes(24).toString('base64url')}`
  const apiToken = `demo-token-${randomBytes(16).toString('hex')}`

  const { runtime, base } = await step('starting tenantflow (embedded SQLite, workers on)', async () => {
    const config = loadConfig({
      ...process.env,
      ENVIRONMENT: 'development',
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      CA_ROOT_API_KEY: rootKey,
      KMS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'),
      EGRESS_ALLOW_LOOPBACK: 'true', // the demo API runs on this machine
      LOG_LEVEL: 'warn',
      WORKER_POLL_MS: '100',
    })
    const runtime = await createRuntime(config)
    const app = await buildApp(runtime.ctx)
    await app.listen({ port: 0, host: '127.0.0.1' })
    runtime.ctx.engine?.start({ workers: true, scheduler: false })
    const port = (app.server.address() as { port: number }).port
    return { runtime: { ...runtime, app }, base: `http://127.0.0.1:${port}` }
  })

  const api = demoApi(apiToken)
  const apiBase = await step('starting the local demo orders API', async () => `http://127.0.0.1:${await listen(api)}`)

  const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const json = (await res.json()) as Record<string, any>
    if (res.status >= 400) throw new Error(`${method} ${path} → ${res.status} ${json.code ?? ''}`)
    return json
  }

  const org = 'demo-shop'
  const apiKey = await step(`onboarding organization "${org}"`, async () => {
    const r = await call('POST', '/api/v1/organizations/onboard', { 'x-ca-root-key': rootKey }, {
      org_slug: org,
      company_name: 'Demo Shop',
      admin_email: 'ops@demo-shop.example.com',
      subscription_plan: 'STARTER',
    })
    return r.api_key as string
  })
  const auth = { 'x-api-key': apiKey }

  const cred = await step('storing an encrypted http credential for the demo API (validated live)', async () =>
    call('POST', `/api/v1/integrations/${org}/http/setup`, auth, {
      credential: apiToken,
      credential_name: 'demo orders API',
      metadata: { auth_type: 'bearer', base_url: apiBase, validation_url: `${apiBase}/v1/ping` },
    }),
  )

  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
  const run = await step(`triggering generic/http/example for ${yesterday}`, async () =>
    call('POST', `/api/v1/pipelines/run/${org}/generic/http/example`, auth, { parameters: { date: yesterday } }),
  )

  const final = await step('waiting for the run to finish', async () => {
    const deadline = Date.now() + 50_000
    for (;;) {
      const r = await call('GET', `/api/v1/pipelines/${org}/runs/${run.run_id}`, auth)
      if (!['PENDING', 'RUNNING'].includes(r.status)) return r
      if (Date.now() > deadline) throw new Error('run did not finish in time')
      await new Promise((res) => setTimeout(res, 100))
    }
  })

  const [steps, tables, rows] = await step('reading the run record and the loaded rows', async () =>
    Promise.all([
      call('GET', `/api/v1/pipelines/${org}/runs/${run.run_id}/steps`, auth),
      call('GET', `/api/v1/data/${org}/tables`, auth),
      call('GET', `/api/v1/data/${org}/tables/orders_daily_summary/rows?limit=20`, auth),
    ]),
  )

  out(`\ncredential: provider=${cred.provider} status=${cred.status} fingerprint=…${cred.fingerprint}\n`)
  out(`run ${final.run_id}: ${final.status}${final.error_code ? ` (${final.error_code})` : ''}\n`)
  out('steps:\n')
  for (const s of steps.steps as Record<string, any>[]) {
    out(`  - ${String(s.step_id).padEnd(10)} ${String(s.processor).padEnd(22)} ${String(s.status).padEnd(10)} rows=${s.rows_processed} ${s.duration_ms ?? '-'} ms\n`)
  }
  out('tables in the org dataset:\n')
  for (const t of tables.tables as Record<string, any>[]) out(`  - ${String(t.name).padEnd(22)} ${t.row_count} rows\n`)
  out('loaded rows (orders_daily_summary):\n')
  out('  order_date  status    currency  orders  amount\n')
  for (const r of rows.rows as Record<string, any>[]) {
    out(`  ${r.order_date}  ${String(r.status).padEnd(8)}  ${String(r.currency).padEnd(8)}  ${String(r.orders).padStart(6)}  ${Number(r.amount).toFixed(2).padStart(9)}\n`)
  }
  out(`\nfinished in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)

  await runtime.app.close()
  await runtime.ctx.engine?.stop(1000)
  await runtime.close()
  await new Promise((r) => api.close(() => r(undefined)))
  rmSync(dataDir, { recursive: true, force: true })
  if (final.status !== 'COMPLETED') process.exit(1)
}

main().catch((err) => {
  process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : 'unknown error'}\n`)
  process.exit(1)
})
