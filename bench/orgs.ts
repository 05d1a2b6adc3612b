// Tenants part of `npm run bench` (issue 12 item 6): the authenticated GET quota with requests spread
// over every org's key, at 10 / 10,000 / 50,000 orgs, so the auth cache holds (or thrashes on) all
// of them. Prints req/s and CPU per request (server and client share this process, so compare the
// column, not the absolute value). Embedded store. Numbers, not assertions.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { logDestination } from '../src/core/observability/logger.js'
import { loadConfig } from '../src/app/config.js'
import { createRuntime } from '../src/app/runtime.js'
import { buildApp } from '../src/app/server.js'
import { generateApiKey, hashApiKey, fingerprintOf } from '../src/core/security/api-keys.js'
import { benchEnv } from './keys.js'

const SIZES = (process.env.BENCH_ORGS ?? '10,10000,50000').split(',').map(Number)

export async function runOrgsBench(opts: { duration: number; connections: number }): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tf-bench-orgs-'))
  const env = benchEnv(dataDir, null)
  const runtime = await createRuntime(loadConfig(env), { logDestination: logDestination(join(dataDir, 'server.log')) })
  const app = await buildApp(runtime.ctx)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const orgs: { slug: string; key: string }[] = []
  const rows: { orgs: number; rps: number; cpuUs: number; lookups: number }[] = []
  try {
    for (const size of SIZES) {
      // Orgs are written straight to the tables (onboarding 50,000 over HTTP would take the whole run).
      const now = Date.now()
      const fresh: { slug: string; key: string }[] = []
      for (let i = orgs.length; i < size; i++) fresh.push({ slug: `bench-o-${i}`, key: generateApiKey() })
      for (let i = 0; i < fresh.length; i += 500) {
        const chunk = fresh.slice(i, i + 500)
        await runtime.ctx.db.kysely.transaction().execute(async (trx) => {
          await trx.insertInto('org_profiles').values(chunk.map((o) => ({ org_slug: o.slug, company_name: 'Bench', admin_email: 'b@bench.example.com', status: 'ACTIVE', dataset_id: `ds_${o.slug.replace(/-/g, '_')}`, created_at: now, updated_at: now }))).execute()
          await trx.insertInto('org_subscriptions').values(chunk.map((o) => ({
            org_slug: o.slug, subscription_id: `sub_${o.slug}`, plan_name: 'SCALE', status: 'ACTIVE', daily_limit: 1000, monthly_limit: 10000,
            concurrent_limit: 10, requests_per_minute: 1_000_000, triggers_per_minute: 1000, trial_end_at: null, created_at: now, updated_at: now,
          }))).execute()
          await trx.insertInto('org_api_keys').values(chunk.map((o) => ({
            key_id: `key_${o.slug}`, org_slug: o.slug, key_hash: hashApiKey(o.key), encrypted_key: '[bench]', fingerprint: fingerprintOf(o.key),
            created_at: now, expires_at: null, revoked_at: null, last_used_at: null,
          }))).execute()
        })
      }
      orgs.push(...fresh)
      let n = 0
      const request: autocannon.Request = {
        method: 'GET',
        setupRequest: (req) => {
          const o = orgs[n++ % orgs.length]!
          return { ...req, path: `/api/v1/organizations/${o.slug}/quota`, headers: { 'x-api-key': o.key } }
        },
      }
      // A warm-up pass over every key, then the measured run.
      await autocannon({ url: `http://127.0.0.1:${port}`, connections: opts.connections, amount: Math.max(orgs.length, 2000), requests: [request] })
      const lookups0 = runtime.ctx.auth.lookups
      const cpu0 = process.cpuUsage()
      const r = await autocannon({ url: `http://127.0.0.1:${port}`, connections: opts.connections, duration: opts.duration, requests: [request] })
      const cpu = process.cpuUsage(cpu0)
      if (r.non2xx > 0) throw new Error(`${r.non2xx} non-2xx answers at ${size} orgs`)
      rows.push({ orgs: size, rps: r.requests.average, cpuUs: (cpu.user + cpu.system) / Math.max(1, r.requests.total), lookups: runtime.ctx.auth.lookups - lookups0 })
    }
  } finally {
    await app.close()
    await runtime.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
  console.log('\n| orgs (requests spread over every org key) | GET quota req/s | CPU µs per request (server + client) | key lookups in the database while measured |')
  console.log('|---:|---:|---:|---:|')
  for (const x of rows) console.log(`| ${x.orgs.toLocaleString('en')} | ${x.rps.toFixed(0)} | ${x.cpuUs.toFixed(0)} | ${x.lookups} |`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runOrgsBench({ duration: Number(process.env.BENCH_SECONDS ?? 5), connections: Number(process.env.BENCH_CONNECTIONS ?? 32) }).then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
}
