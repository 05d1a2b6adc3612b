// Three real `tenantflow serve` processes on one PostgreSQL database, 200 parallel triggers for one
// org with concurrent limit 3 spread over them: exactly 3 admitted, 197 refused with Retry-After.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { freshBackend, needsPostgres, testEnv } from '../helpers/backends.js'
import { TEST_ROOT_KEY } from '../helpers/app.js'
import { PRICE_SUMMARY_TEMPLATE, writeTemplates } from './fixtures.js'

const templateDir = writeTemplates({ 'race/local/hold.yml': PRICE_SUMMARY_TEMPLATE })

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

async function waitReady(base: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error('server exited during startup')
    try {
      if ((await fetch(`${base}/health/ready`)).status === 200) return
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('server did not become ready')
}

describe('admission across server processes (postgres)', { skip: needsPostgres() }, () => {
  test('3 servers, 200 parallel triggers, concurrent limit 3 → exactly 3 admitted', async () => {
    const backend = await freshBackend('postgres')
    const children: ChildProcess[] = []
    try {
      const ports = [await freePort(), await freePort(), await freePort()]
      for (const port of ports) {
        const env = {
          ...process.env,
          ...testEnv(backend, { LOG_LEVEL: 'warn', PORT: String(port), PIPELINE_CONFIG_DIRS: templateDir, WORKER_CONCURRENCY: '0', SCHEDULER_ENABLED: 'false' }),
        }
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] })
        children.push(child)
      }
      const bases = ports.map((p) => `http://127.0.0.1:${p}`)
      await Promise.all(bases.map((b, i) => waitReady(b, children[i]!)))

      const root = { 'x-ca-root-key': TEST_ROOT_KEY, 'content-type': 'application/json' }
      const onboard = await fetch(`${bases[0]}/api/v1/organizations/onboard`, {
        method: 'POST',
        headers: root,
        body: JSON.stringify({ org_slug: 'race-co', company_name: 'Race Co', admin_email: 'ops@race.example.com', subscription_plan: 'SCALE' }),
      })
      assert.equal(onboard.status, 201)
      const key = ((await onboard.json()) as { api_key: string }).api_key
      const put = await fetch(`${bases[1]}/api/v1/organizations/race-co/subscription`, {
        method: 'PUT',
        headers: root,
        body: JSON.stringify({ concurrent_limit: 3, daily_limit: 1000, monthly_limit: 10000, requests_per_minute: 10000, triggers_per_minute: 10000 }),
      })
      assert.equal(put.status, 200)

      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const res = await fetch(`${bases[i % 3]}/api/v1/pipelines/run/race-co/race/local/hold`, {
            method: 'POST',
            headers: { 'x-api-key': key, 'content-type': 'application/json' },
            body: JSON.stringify({ parameters: { n: i } }),
          })
          const body = (await res.json()) as { code?: string }
          return { status: res.status, code: body.code, retryAfter: res.headers.get('retry-after') }
        }),
      )
      const admitted = results.filter((r) => r.status === 202)
      const refused = results.filter((r) => r.status === 429)
      assert.equal(admitted.length, 3, JSON.stringify(results.filter((r) => r.status !== 429).slice(0, 5)))
      assert.equal(refused.length, 197)
      for (const r of refused) {
        assert.equal(r.code, 'CONCURRENT_LIMIT_EXCEEDED')
        assert.ok(Number(r.retryAfter) >= 1)
      }
      const quota = await fetch(`${bases[2]}/api/v1/organizations/race-co/quota`, { headers: { 'x-api-key': key } })
      const q = (await quota.json()) as { concurrent: { running: number }; daily: { used: number } }
      assert.deepEqual([q.concurrent.running, q.daily.used], [3, 3])
    } finally {
      for (const c of children) c.kill('SIGTERM')
      await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))))
      await backend.cleanup()
    }
  })
})
