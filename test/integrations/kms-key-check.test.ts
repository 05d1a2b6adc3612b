// One key set across processes: the database's KMS key-check value refuses a process with another KMS
// key at startup; a run that cannot decrypt (KMS outage, or a key version this process lacks) fails
// retryably and never touches the credential.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { ConfigError, loadConfig } from '../../src/app/config.js'
import { createRuntime } from '../../src/app/runtime.js'
import { buildApp } from '../../src/app/server.js'
import { checkKmsKey } from '../../src/core/security/key-check.js'
import { KmsUnavailableError, LocalKms, type KmsProvider } from '../../src/core/security/kms-encryption.js'
import type { Processor } from '../../src/core/processors/types.js'
import { backendNames, freshBackend, needsPostgres, testEnv, TEST_ROOT_KEY, type TestBackend } from '../helpers/backends.js'
import { writeTemplates } from '../engine/fixtures.js'
import { openaiFake, startUpstream } from './fakes.js'

const KEY_A = Buffer.alloc(32, 7).toString('base64') // the key testEnv uses
const KEY_B = Buffer.alloc(32, 9).toString('base64')
const OPENAI_KEY = 'sk-proj-KeyCheckOpenAIKey000000000001'

const USE_TEMPLATE = {
  'kmscheck/cred/use.yml': `
description: reads the org's credential once
integration: openai
steps:
  - id: use
    processor: test.use_credential
    retries: 1
`,
}
const useCredential: Processor<Record<string, never>> = {
  name: 'test.use_credential',
  description: 'decrypts the credential and does nothing with it',
  validateConfig: () => ({}),
  async run(ctx) {
    await ctx.getCredential()
    return { rows_processed: 0 }
  },
}

type App = Awaited<ReturnType<typeof buildApp>>
type Headers = Record<string, string>

/** Triggers kmscheck/cred/use for the org and waits (bounded generously) until the run has ended. */
async function runOnce(app: App, org: Headers, slug: string) {
  const trig = await app.inject({ method: 'POST', url: `/api/v1/pipelines/run/${slug}/kmscheck/cred/use`, headers: org, payload: {} })
  assert.equal(trig.statusCode, 202, trig.body)
  const runId = trig.json().run_id as string
  const deadline = Date.now() + 60_000
  for (;;) {
    const run = (await app.inject({ method: 'GET', url: `/api/v1/pipelines/${slug}/runs/${runId}`, headers: org })).json()
    if (!['PENDING', 'RUNNING'].includes(run.status)) return { run, runId }
    if (Date.now() > deadline) throw new Error(`run still ${run.status}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Step attempts of a run that failed with `code`. */
async function attemptsWith(app: App, org: Headers, slug: string, runId: string, code: string): Promise<number> {
  const steps = (await app.inject({ method: 'GET', url: `/api/v1/pipelines/${slug}/runs/${runId}/steps`, headers: org })).json()
  return (steps.steps as { error_code: string | null }[]).filter((s) => s.error_code === code).length
}

async function credentialStatus(app: App, org: Headers, slug: string): Promise<[string, string | null]> {
  const status = (await app.inject({ method: 'GET', url: `/api/v1/integrations/${slug}/openai`, headers: org })).json()
  return [status.status, status.last_error_code]
}

async function onboardWithCredential(app: App, slug: string): Promise<Headers> {
  const onboard = await app.inject({
    method: 'POST', url: '/api/v1/organizations/onboard', headers: { 'x-ca-root-key': TEST_ROOT_KEY },
    payload: { org_slug: slug, company_name: 'KMS Co', admin_email: `admin@${slug}.example.com`, subscription_plan: 'PROFESSIONAL' },
  })
  assert.equal(onboard.statusCode, 201, onboard.body)
  const org = { 'x-api-key': onboard.json().api_key as string }
  const setup = await app.inject({ method: 'POST', url: `/api/v1/integrations/${slug}/openai/setup`, headers: org, payload: { credential: OPENAI_KEY } })
  assert.equal(setup.json().status, 'VALID', setup.body)
  return org
}

/** A runtime + app on the backend whose logs are captured; close() stops the engine and closes both. */
async function startProcess(b: TestBackend, env: Record<string, string>, kms?: KmsProvider) {
  const logs: string[] = []
  const sink = new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) })
  const runtime = await createRuntime(loadConfig(testEnv(b, { WORKER_POLL_MS: '50', LOG_LEVEL: 'info', ...env })), {
    ...(kms ? { kms } : {}),
    processors: [(reg) => void reg.register(useCredential)],
    logDestination: sink,
  })
  let app: App
  try {
    app = await buildApp(runtime.ctx)
  } catch (err) {
    await runtime.close()
    throw err
  }
  runtime.ctx.engine!.start({ workers: true, scheduler: false })
  return {
    runtime,
    app,
    logs,
    close: async () => {
      await app.close()
      await runtime.ctx.engine?.stop(0)
      await runtime.close()
    },
  }
}

async function mismatchRefused(backend: TestBackend) {
  const first = await createRuntime(loadConfig(testEnv(backend)))
  try {
    const other = loadConfig(testEnv(backend, { KMS_LOCAL_MASTER_KEY: KEY_B }))
    await assert.rejects(createRuntime(other), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.equal(err.variable, 'KMS_LOCAL_MASTER_KEY')
      assert.match(err.message, /KMS key mismatch/)
      assert.match(err.message, /every process on one database needs the same KMS key/i)
      for (const secret of [KEY_A, KEY_B]) assert.ok(!err.message.includes(secret), 'no key in the message')
      return true
    })
    // The process with the right key still starts.
    const again = await createRuntime(loadConfig(testEnv(backend)))
    await again.close()
  } finally {
    await first.close()
  }
}

for (const backend of backendNames()) {
  describe(`KMS key check (${backend})`, () => {
    test('a second process with another KMS key on the same database refuses to start, naming the mismatch', async () => {
      const b = await freshBackend(backend)
      try {
        await mismatchRefused(b)
      } finally {
        await b.cleanup()
      }
    })

    test('rotating the local key (new version, old one kept as previous) moves the check to the new version', async () => {
      const b = await freshBackend(backend)
      try {
        await (await createRuntime(loadConfig(testEnv(b)))).close()
        const rotated = { KMS_LOCAL_MASTER_KEY: KEY_B, KMS_LOCAL_KEY_VERSION: 'v2', KMS_LOCAL_PREVIOUS_KEYS: `v1:${KEY_A}` }
        const r = await createRuntime(loadConfig(testEnv(b, rotated)))
        try {
          const now = Date.now()
          assert.equal((await checkKmsKey(r.ctx.db, r.ctx.kms, now)).status, 'verified', 'rewrapped under v2 on startup')
          // Only the new key: still verified (the check no longer needs v1).
          const onlyNew = new LocalKms({ version: 'v2', key: Buffer.from(KEY_B, 'base64') })
          assert.equal((await checkKmsKey(r.ctx.db, onlyNew, now)).status, 'verified')
          const old = new LocalKms({ version: 'v1', key: Buffer.from(KEY_A, 'base64') })
          assert.equal((await checkKmsKey(r.ctx.db, old, now)).status, 'mismatch')
        } finally {
          await r.close()
        }
      } finally {
        await b.cleanup()
      }
    })

    test('a KMS outage during a run fails it retryably (KMS_UNAVAILABLE) and the credential stays VALID', async () => {
      const b = await freshBackend(backend)
      const openai = await startUpstream(openaiFake(OPENAI_KEY))
      const templateDir = writeTemplates(USE_TEMPLATE)
      const real = new LocalKms({ version: 'v1', key: Buffer.from(KEY_A, 'base64') })
      const state = { down: false }
      const flaky: KmsProvider = {
        name: 'local',
        currentKeyVersion: () => real.currentKeyVersion(),
        wrap: (dek, aad) => real.wrap(dek, aad),
        unwrap: async (w, aad, v) => {
          if (state.down) throw new KmsUnavailableError('UNAVAILABLE')
          return real.unwrap(w, aad, v)
        },
      }
      let p: Awaited<ReturnType<typeof startProcess>> | null = null
      try {
        p = await startProcess(b, { OPENAI_BASE_URL: openai.url, PIPELINE_CONFIG_DIRS: templateDir }, flaky)
        const org = await onboardWithCredential(p.app, 'kms-co')

        state.down = true
        const { run, runId } = await runOnce(p.app, org, 'kms-co')
        assert.equal(run.status, 'FAILED')
        assert.equal(run.error_code, 'KMS_UNAVAILABLE')
        assert.equal(await attemptsWith(p.app, org, 'kms-co', runId, 'KMS_UNAVAILABLE'), 2, 'the step was retried: the failure is retryable')
        assert.deepEqual(await credentialStatus(p.app, org, 'kms-co'), ['VALID', null], 'the credential is untouched')

        state.down = false
        const healed = await runOnce(p.app, org, 'kms-co')
        assert.equal(healed.run.status, 'COMPLETED', 'once the KMS is back, the next run succeeds without any re-validation')
        assert.ok(p.logs.some((l) => l.includes('credential decrypt failed in this process')))
        assert.ok(!p.logs.join('').includes(OPENAI_KEY))
      } finally {
        await p?.close()
        await openai.close()
        await b.cleanup()
      }
    })

    test('a wrong key (old version dropped after rotation) fails the run retryably, the credential stays VALID, the right keys run it', async () => {
      const b = await freshBackend(backend)
      const openai = await startUpstream(openaiFake(OPENAI_KEY))
      const common = { OPENAI_BASE_URL: openai.url, PIPELINE_CONFIG_DIRS: writeTemplates(USE_TEMPLATE) }
      const rotated = { ...common, KMS_LOCAL_MASTER_KEY: KEY_B, KMS_LOCAL_KEY_VERSION: 'v2', KMS_LOCAL_PREVIOUS_KEYS: `v1:${KEY_A}` }
      // v2 only: passes the key check (rewrapped under v2 by the rotated process) but cannot open v1 envelopes.
      const dropped = { ...common, KMS_LOCAL_MASTER_KEY: KEY_B, KMS_LOCAL_KEY_VERSION: 'v2' }
      let p: Awaited<ReturnType<typeof startProcess>> | null = null
      try {
        // The credential is wrapped under v1; the rotated process moves only the key check to v2.
        p = await startProcess(b, common)
        const org = await onboardWithCredential(p.app, 'rot-co')
        await p.close()
        p = null
        p = await startProcess(b, rotated)
        await p.close()
        p = null

        p = await startProcess(b, dropped)
        const { run, runId } = await runOnce(p.app, org, 'rot-co')
        assert.equal(run.status, 'FAILED')
        assert.equal(run.error_code, 'KMS_UNAVAILABLE', 'an infrastructure error of this process, not a credential verdict')
        assert.equal(await attemptsWith(p.app, org, 'rot-co', runId, 'KMS_UNAVAILABLE'), 2, 'the step was retried: the failure is retryable')
        assert.deepEqual(await credentialStatus(p.app, org, 'rot-co'), ['VALID', null], 'the credential is never marked INVALID')
        assert.ok(p.logs.some((l) => l.includes('credential decrypt failed in this process') && l.includes('CREDENTIAL_UNUSABLE')))
        for (const secret of [OPENAI_KEY, KEY_A, KEY_B]) assert.ok(!p.logs.join('').includes(secret), 'no secret in the logs')
        await p.close()
        p = null

        // A process that still has v1 (as a previous key) runs it, with no re-validation.
        p = await startProcess(b, rotated)
        assert.deepEqual(await credentialStatus(p.app, org, 'rot-co'), ['VALID', null])
        const healed = await runOnce(p.app, org, 'rot-co')
        assert.equal(healed.run.status, 'COMPLETED', healed.run.error_code)
      } finally {
        await p?.close()
        await openai.close()
        await b.cleanup()
      }
    })
  })
}

describe('KMS key check across real processes', () => {
  test('tenantflow serve with another KMS key on the same PostgreSQL database exits naming the mismatch', { skip: needsPostgres() }, async () => {
    const b = await freshBackend('postgres')
    try {
      await (await createRuntime(loadConfig(testEnv(b)))).close()
      const env = { ...process.env, ...testEnv(b, { KMS_LOCAL_MASTER_KEY: KEY_B, PORT: '0', LOG_LEVEL: 'warn' }) }
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.stdout.resume()
      const [code] = await once(child, 'exit')
      assert.notEqual(code, 0)
      assert.match(stderr, /KMS_LOCAL_MASTER_KEY/)
      assert.match(stderr, /KMS key mismatch/)
      assert.ok(!stderr.includes(KEY_B) && !stderr.includes(KEY_A))
    } finally {
      await b.cleanup()
    }
  })
})

describe('shared database requires explicit keys', () => {
  test('with DATABASE_URL, development does not generate a root key or KMS key per DATA_DIR', async () => {
    const b = await freshBackend('sqlite')
    try {
      const base = { ENVIRONMENT: 'development', DATA_DIR: b.dataDir, DATABASE_URL: 'postgres://u@127.0.0.1:1/x' }
      assert.throws(() => loadConfig({ ...base, KMS_LOCAL_MASTER_KEY: KEY_A }, { persistDevSecrets: true }), (e: unknown) => e instanceof ConfigError && e.variable === 'CA_ROOT_API_KEY')
      assert.throws(() => loadConfig({ ...base, CA_ROOT_API_KEY: TEST_ROOT_KEY }, { persistDevSecrets: true }), (e: unknown) => e instanceof ConfigError && e.variable === 'KMS_LOCAL_MASTER_KEY')
      assert.ok(loadConfig({ ENVIRONMENT: 'development', DATA_DIR: b.dataDir }, { persistDevSecrets: true }).rootKeyGenerated, 'without DATABASE_URL development still generates')
    } finally {
      await b.cleanup()
    }
  })
})
