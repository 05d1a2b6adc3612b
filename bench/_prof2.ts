import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import pino from 'pino'
import { loadConfig } from '../src/app/config.js'
import { createRuntime } from '../src/app/runtime.js'
import { buildApp } from '../src/app/server.js'
const ROOT = 'bench-root-key-0123456789abcdefghijklmnopqrstuvwxyz'
const dataDir = mkdtempSync(join(tmpdir(), 'tf-prof-'))
const runtime = await createRuntime(loadConfig({ DATA_DIR: dataDir, CA_ROOT_API_KEY: ROOT, KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 5).toString('base64'), LOG_LEVEL: 'info', RATE_LIMIT_GLOBAL_PER_MINUTE: '100000000', RATE_LIMIT_IP_PER_MINUTE: '10000000' }), { logDestination: pino.destination({ dest: join(dataDir, 'server.log'), sync: false }) })
const app = await buildApp(runtime.ctx)
const slug = 'prof'
const on = await app.inject({ method: 'POST', url: '/api/v1/organizations/onboard', headers: { 'x-ca-root-key': ROOT }, payload: { org_slug: slug, company_name: 'Bench Inc', admin_email: 'b@bench.example.com', subscription_plan: 'SCALE' } })
const key = on.json().api_key
await app.inject({ method: 'PUT', url: `/api/v1/organizations/${slug}/subscription`, headers: { 'x-ca-root-key': ROOT }, payload: { requests_per_minute: 1000000 } })
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as { port: number }).port
const path = process.env.P ?? '/api/v1/pipelines'
const { spawn } = await import('node:child_process')
const c = spawn('npx', ['autocannon', '-c', '32', '-d', process.env.D ?? '6', '-H', `x-api-key=${key}`, `http://127.0.0.1:${port}${path.replace('ORG', slug)}`], { stdio: ['ignore', 'pipe', 'pipe'] })
let out = ''; c.stdout.on('data', (d) => (out += d)); c.stderr.on('data', (d) => (out += d))
await new Promise((r) => c.on('exit', r))
console.log(out.split('\n').filter((l) => /Req\/Sec|Latency|requests in|2xx|non/.test(l)).join('\n'))
await app.close(); await runtime.close()
