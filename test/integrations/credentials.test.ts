import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../../src/core/observability/logger.js'
import { CredentialError } from '../../src/core/integrations/errors.js'
import {
  decryptActiveCredential,
  deleteCredential,
  destroyOrgCredentials,
  ensureUsableCredential,
  getCredentialStatus,
  listCredentials,
  requireValidCredential,
  revalidateCredential,
  setupCredential,
  withDecryptedCredential,
} from '../../src/core/integrations/credentials.js'
import { trackedSecretCount } from '../../src/core/security/scrub.js'
import { backendNames } from '../helpers/backends.js'
import { anthropicFake, googleFake, makeServiceAccount, openaiFake, startUpstream, type GoogleFakeState, type ServiceAccountFixture, type Upstream } from './fakes.js'
import { captureStream, dumpAllTables, harness, type Harness } from './setup.js'

const KEYS = {
  acme: { openai: 'sk-proj-AcmeOpenAIKey000000000001', anthropic: 'sk-ant-api03-AcmeAnthropicKey00000001' },
  globex: { openai: 'sk-proj-GlobexOpenAIKey00000000002', anthropic: 'sk-ant-api03-GlobexAnthropicKey0000002' },
}
const HTTP_TOKEN = 'globex-generic-token-99887766'
let acceptedOpenai = new Set<string>([KEYS.acme.openai, KEYS.globex.openai])
let openai: Upstream, anthropic: Upstream, google: Upstream, api: Upstream
let sa: ServiceAccountFixture
const gstate: GoogleFakeState = { token: 'ya29.c.credential-test-token-0001' }

before(async () => {
  openai = await startUpstream((req, res) => {
    const key = (req.headers.authorization ?? '').slice(7)
    openaiFake(acceptedOpenai.has(key) ? key : '\u0000')(req, res)
  })
  anthropic = await startUpstream((req, res) => {
    const key = String(req.headers['x-api-key'])
    anthropicFake(key === KEYS.acme.anthropic || key === KEYS.globex.anthropic ? key : '\u0000')(req, res)
  })
  google = await startUpstream(googleFake(() => sa, () => `${google.url}/token`, gstate))
  sa = makeServiceAccount(`${google.url}/token`)
  api = await startUpstream((req, res) => {
    res.writeHead(req.headers.authorization === `Bearer ${HTTP_TOKEN}` ? 200 : 401, { 'content-type': 'application/json' })
    res.end('{}')
  })
})
after(async () => {
  for (const u of [openai, anthropic, google, api]) await u.close()
})

const env = () => ({ OPENAI_BASE_URL: openai.url, ANTHROPIC_BASE_URL: anthropic.url, GCP_API_BASE_URL: google.url })
const actor = 'key:key_test'

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'OK'
  } catch (err) {
    assert.ok(err instanceof CredentialError, String(err))
    return err.code
  }
}

for (const backend of backendNames()) {
  test(`credentials on ${backend}`, async (t) => {
    const h: Harness = await harness(backend, env())
    const { deps, db } = h
    t.after(() => h.close())
    const k = db.kysely
    acceptedOpenai = new Set([KEYS.acme.openai, KEYS.globex.openai])

    await t.test('setup validates live, encrypts and returns only a fingerprint', async () => {
      const r = await setupCredential(deps, { org_slug: 'acme', provider: 'openai', credential: KEYS.acme.openai, credential_name: 'prod', actor })
      assert.equal(r.status, 'VALID')
      assert.equal(r.fingerprint, KEYS.acme.openai.slice(-4))
      assert.match(r.credential_id, /^cred_/)
      const row = await k.selectFrom('org_integration_credentials').selectAll().where('credential_id', '=', r.credential_id).executeTakeFirstOrThrow()
      assert.equal(row.is_active, 1)
      assert.equal(row.kms_provider, 'local')
      assert.ok(row.ciphertext && !row.ciphertext.includes(KEYS.acme.openai))
      assert.equal(row.last_error_code, null)
      assert.ok(row.last_validated_at)
    })

    await t.test('a refused key is not stored (CREDENTIAL_REJECTED + reason) unless store_invalid; skip_validation gives PENDING', async () => {
      const bad = 'sk-ant-api03-NotAcceptedAnywhere000'
      const err = await setupCredential(deps, { org_slug: 'acme', provider: 'anthropic', credential: bad, actor, request_id: 'req-rejected' }).catch((e: unknown) => e)
      assert.ok(err instanceof CredentialError, String(err))
      assert.deepEqual([err.code, err.reason], ['CREDENTIAL_REJECTED', 'UNAUTHORIZED'])
      assert.equal((await getCredentialStatus(db, 'acme', 'anthropic')).status, 'NOT_CONFIGURED', 'nothing stored')
      const audit = await k.selectFrom('org_audit_logs').selectAll().where('org_slug', '=', 'acme').where('action', '=', 'credential.rejected').limit(10).execute()
      assert.equal(audit.length, 1)
      assert.deepEqual([audit[0]!.actor, audit[0]!.request_id], [actor, 'req-rejected'])
      assert.deepEqual(JSON.parse(audit[0]!.details), { provider: 'anthropic', fingerprint: bad.slice(-4), error_code: 'UNAUTHORIZED', kept_previous: true })
      assert.ok(!audit[0]!.details.includes(bad.slice(0, -4)))
      const r = await setupCredential(deps, { org_slug: 'acme', provider: 'anthropic', credential: bad, store_invalid: true, actor })
      assert.deepEqual([r.status], ['INVALID'])
      const v = await getCredentialStatus(db, 'acme', 'anthropic')
      assert.equal(v.last_error_code, 'UNAUTHORIZED')
      const before = anthropic.requests.length
      const p = await setupCredential(deps, { org_slug: 'acme', provider: 'anthropic', credential: KEYS.acme.anthropic, skip_validation: true, actor })
      assert.equal(p.status, 'PENDING')
      assert.equal(anthropic.requests.length, before, 'skipped validation makes no call')
    })

    await t.test('replacing keeps one active row and shreds the previous one', async () => {
      const first = await getCredentialStatus(db, 'acme', 'anthropic')
      const r = await setupCredential(deps, { org_slug: 'acme', provider: 'anthropic', credential: KEYS.acme.anthropic, actor })
      assert.equal(r.status, 'VALID')
      const rows = await k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'acme').where('provider', '=', 'anthropic').limit(10).execute()
      assert.equal(rows.filter((x) => x.is_active === 1).length, 1)
      const old = rows.find((x) => x.credential_id === first.credential_id)!
      assert.equal(old.is_active, 0)
      assert.equal(old.ciphertext, null)
      assert.equal(old.wrapped_key, null)
      assert.ok(old.destroyed_at)
    })

    await t.test('a refused key over a VALID credential leaves the VALID one active and usable', async () => {
      const good = await getCredentialStatus(db, 'acme', 'anthropic')
      assert.equal(good.status, 'VALID')
      const err = await setupCredential(deps, { org_slug: 'acme', provider: 'anthropic', credential: 'sk-ant-api03-TypoedKeyNotAccepted00', actor }).catch((e: unknown) => e)
      assert.ok(err instanceof CredentialError && err.code === 'CREDENTIAL_REJECTED' && err.reason === 'UNAUTHORIZED', String(err))
      const after = await getCredentialStatus(db, 'acme', 'anthropic')
      assert.deepEqual([after.status, after.credential_id, after.fingerprint], ['VALID', good.credential_id, good.fingerprint])
      assert.equal((await decryptActiveCredential(deps, { org_slug: 'acme', provider: 'anthropic', reason: 'test', actor })).secret, KEYS.acme.anthropic)
      assert.ok((await requireValidCredential(db, 'acme', 'anthropic')).credential_id)
      const row = await k.selectFrom('org_integration_credentials').select(['ciphertext', 'is_active']).where('credential_id', '=', good.credential_id!).executeTakeFirstOrThrow()
      assert.deepEqual([row.is_active, row.ciphertext !== null], [1, true], 'not shredded')
    })

    await t.test('concurrent setups for one provider leave exactly one active credential', async () => {
      const results = await Promise.all(
        [0, 1, 2, 3].map(() => setupCredential(deps, { org_slug: 'globex', provider: 'openai', credential: KEYS.globex.openai, skip_validation: true, actor })),
      )
      const active = await k.selectFrom('org_integration_credentials').select('credential_id').where('org_slug', '=', 'globex').where('provider', '=', 'openai').where('is_active', '=', 1).limit(10).execute()
      assert.equal(active.length, 1)
      assert.ok(results.some((r) => r.credential_id === active[0]!.credential_id))
    })

    await t.test('revalidate: PENDING → VALID, INVALID → VALID once the provider accepts the key', async () => {
      assert.equal((await revalidateCredential(deps, { org_slug: 'globex', provider: 'openai', actor })).status, 'VALID')
      acceptedOpenai = new Set([KEYS.acme.openai])
      const v = await revalidateCredential(deps, { org_slug: 'globex', provider: 'openai', actor })
      assert.deepEqual([v.status, v.last_error_code], ['INVALID', 'UNAUTHORIZED'])
      await assert.rejects(requireValidCredential(db, 'globex', 'openai'), (e: unknown) => e instanceof CredentialError && e.code === 'CREDENTIAL_INVALID')
      acceptedOpenai = new Set([KEYS.acme.openai, KEYS.globex.openai])
      const again = await revalidateCredential(deps, { org_slug: 'globex', provider: 'openai', actor })
      assert.deepEqual([again.status, again.last_error_code], ['VALID', null])
      assert.ok((await requireValidCredential(db, 'globex', 'openai')).credential_id)
    })

    await t.test('gcp and http credentials', async () => {
      const g = await setupCredential(deps, { org_slug: 'globex', provider: 'gcp', credential: sa.json, actor })
      assert.equal(g.status, 'VALID')
      assert.equal(g.fingerprint, '5678')
      const hres = await setupCredential(deps, {
        org_slug: 'globex', provider: 'http', credential: HTTP_TOKEN, actor,
        metadata: { auth_type: 'bearer', base_url: `${api.url}/v1`, validation_url: `${api.url}/v1/me` },
      })
      assert.equal(hres.status, 'VALID')
      await setupCredential(deps, { org_slug: 'globex', provider: 'anthropic', credential: KEYS.globex.anthropic, actor })
    })

    await t.test('a PENDING credential is validated at its first use (one live check for concurrent uses)', async () => {
      const initech = KEYS.acme.openai.replace('Acme', 'Init')
      acceptedOpenai = new Set([...acceptedOpenai, initech])
      await setupCredential(deps, { org_slug: 'initech', provider: 'openai', credential: initech, skip_validation: true, actor })
      const before = openai.requests.length
      const uses = await Promise.all([0, 1, 2, 3].map(() => ensureUsableCredential(deps, { org_slug: 'initech', provider: 'openai', actor: 'engine' })))
      assert.deepEqual(uses.map((u) => u.status), ['VALID', 'VALID', 'VALID', 'VALID'])
      assert.equal(openai.requests.length - before, 1, 'one live check')
      assert.equal((await getCredentialStatus(db, 'initech', 'openai')).status, 'VALID')
      assert.equal((await ensureUsableCredential(deps, { org_slug: 'initech', provider: 'openai', actor })).status, 'VALID')
      assert.equal(openai.requests.length - before, 1, 'VALID is used without a call')

      // A PENDING credential the provider refuses: CREDENTIAL_REJECTED with the reason, then INVALID.
      await setupCredential(deps, { org_slug: 'initech', provider: 'openai', credential: 'sk-proj-InitechRefused000000000000', skip_validation: true, actor })
      const first = await ensureUsableCredential(deps, { org_slug: 'initech', provider: 'openai', actor }).catch((e: unknown) => e)
      assert.ok(first instanceof CredentialError)
      assert.deepEqual([first.code, first.reason], ['CREDENTIAL_REJECTED', 'UNAUTHORIZED'])
      const v = await getCredentialStatus(db, 'initech', 'openai')
      assert.deepEqual([v.status, v.last_error_code], ['INVALID', 'UNAUTHORIZED'])
      const again = await ensureUsableCredential(deps, { org_slug: 'initech', provider: 'openai', actor }).catch((e: unknown) => e)
      assert.ok(again instanceof CredentialError)
      assert.deepEqual([again.code, again.reason], ['CREDENTIAL_INVALID', 'UNAUTHORIZED'])
      assert.equal(await codeOf(ensureUsableCredential(deps, { org_slug: 'initech', provider: 'gcp', actor })), 'INTEGRATION_NOT_CONFIGURED')
      const validated = await k.selectFrom('org_audit_logs').select(['actor', 'details']).where('org_slug', '=', 'initech').where('action', '=', 'credential.validated').limit(10).execute()
      assert.deepEqual(validated.map((a) => [a.actor, JSON.parse(a.details).status]).sort(), [['engine', 'VALID'], [actor, 'INVALID']].sort())

      // An http credential without validation_url cannot be checked: it stays PENDING and is usable.
      await setupCredential(deps, { org_slug: 'initech', provider: 'http', credential: HTTP_TOKEN, actor, metadata: { auth_type: 'bearer', base_url: `${api.url}/v1` } })
      assert.deepEqual(await ensureUsableCredential(deps, { org_slug: 'initech', provider: 'http', actor }).then((u) => u.status), 'PENDING')
    })

    await t.test('format errors name the field; secret-named metadata is refused', async () => {
      const err = await setupCredential(deps, { org_slug: 'acme', provider: 'openai', credential: 'bad-key-0000000000', actor }).catch((e: unknown) => e)
      assert.ok(err instanceof CredentialError)
      assert.deepEqual([err.code, err.field], ['INVALID_CREDENTIAL_FORMAT', 'credential'])
      const meta = await setupCredential(deps, { org_slug: 'acme', provider: 'openai', credential: KEYS.acme.openai, metadata: { client_secret: 'x' }, actor }).catch((e: unknown) => e)
      assert.ok(meta instanceof CredentialError)
      assert.equal(meta.field, 'metadata.client_secret')
      assert.equal(await codeOf(setupCredential(deps, { org_slug: 'acme', provider: 'gemini', credential: KEYS.acme.openai, actor })), 'UNSUPPORTED_PROVIDER')
    })

    await t.test('list shows every provider, NOT_CONFIGURED when absent', async () => {
      const list = await listCredentials(db, 'acme')
      assert.deepEqual(list.map((v) => [v.provider, v.status]), [['openai', 'VALID'], ['anthropic', 'VALID'], ['gcp', 'NOT_CONFIGURED'], ['http', 'NOT_CONFIGURED']])
      assert.ok(!JSON.stringify(list).includes(KEYS.acme.openai))
    })

    await t.test('decrypt returns the secret for one use and audits who, which and why', async () => {
      const cred = await decryptActiveCredential(deps, { org_slug: 'acme', provider: 'openai', reason: 'pipeline_step', actor: 'worker', run_id: 'run_0000000001abcd' })
      assert.equal(cred.secret, KEYS.acme.openai)
      const audit = (await k.selectFrom('org_audit_logs').selectAll().where('org_slug', '=', 'acme').where('action', '=', 'credential.decrypted').limit(10).execute())
        .filter((a) => JSON.parse(a.details).reason === 'pipeline_step')
      assert.equal(audit.length, 1)
      assert.equal(audit[0]!.resource_id, cred.credential_id)
      assert.equal(audit[0]!.actor, 'worker')
      assert.deepEqual(JSON.parse(audit[0]!.details), { provider: 'openai', reason: 'pipeline_step', run_id: 'run_0000000001abcd', step_id: null })
      assert.equal(await codeOf(decryptActiveCredential(deps, { org_slug: 'acme', provider: 'gcp', reason: 'x', actor })), 'INTEGRATION_NOT_CONFIGURED')
    })

    await t.test('ciphertext swapped between two orgs → CREDENTIAL_UNUSABLE, never the other org secret', async () => {
      const acme = await getCredentialStatus(db, 'acme', 'openai')
      const globex = await k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'globex').where('provider', '=', 'openai').where('is_active', '=', 1).executeTakeFirstOrThrow()
      await k.updateTable('org_integration_credentials')
        .set({ ciphertext: globex.ciphertext, wrapped_key: globex.wrapped_key, kms_key_version: globex.kms_key_version })
        .where('credential_id', '=', acme.credential_id!).execute()
      assert.equal(await codeOf(decryptActiveCredential(deps, { org_slug: 'acme', provider: 'openai', reason: 'test', actor })), 'CREDENTIAL_UNUSABLE')
      const after = await getCredentialStatus(db, 'acme', 'openai')
      // Only a provider's verdict changes the status: a decrypt failure (here or a wrong key) is audited, not recorded on the row.
      assert.deepEqual([after.status, after.last_error_code], [acme.status, acme.last_error_code])
      const failed = await k.selectFrom('org_audit_logs').select('action').where('org_slug', '=', 'acme').where('action', '=', 'credential.decrypt_failed').limit(10).execute()
      assert.equal(failed.length, 1)
      assert.equal(await codeOf(revalidateCredential(deps, { org_slug: 'acme', provider: 'openai', actor })), 'CREDENTIAL_UNUSABLE')
    })

    await t.test('ciphertext swapped between two providers of one org → CREDENTIAL_UNUSABLE', async () => {
      const [oa, an] = await Promise.all(['openai', 'anthropic'].map((p) =>
        k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'globex').where('provider', '=', p).where('is_active', '=', 1).executeTakeFirstOrThrow()))
      await k.updateTable('org_integration_credentials').set({ ciphertext: an!.ciphertext, wrapped_key: an!.wrapped_key }).where('credential_id', '=', oa!.credential_id).execute()
      await k.updateTable('org_integration_credentials').set({ ciphertext: oa!.ciphertext, wrapped_key: oa!.wrapped_key }).where('credential_id', '=', an!.credential_id).execute()
      for (const p of ['openai', 'anthropic'] as const) {
        assert.equal(await codeOf(decryptActiveCredential(deps, { org_slug: 'globex', provider: p, reason: 'test', actor })), 'CREDENTIAL_UNUSABLE', p)
      }
      // Only the ciphertext moved (the data key stays): still refused.
      const g = await k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'globex').where('provider', '=', 'gcp').where('is_active', '=', 1).executeTakeFirstOrThrow()
      const hrow = await k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'globex').where('provider', '=', 'http').where('is_active', '=', 1).executeTakeFirstOrThrow()
      await k.updateTable('org_integration_credentials').set({ ciphertext: g.ciphertext }).where('credential_id', '=', hrow.credential_id).execute()
      assert.equal(await codeOf(decryptActiveCredential(deps, { org_slug: 'globex', provider: 'http', reason: 'test', actor })), 'CREDENTIAL_UNUSABLE')
      assert.equal((await decryptActiveCredential(deps, { org_slug: 'globex', provider: 'gcp', reason: 'test', actor })).secret, sa.json)
    })

    await t.test('no plaintext in any table or in any log line', async () => {
      const capture = captureStream()
      const logger = createLogger('debug', capture.stream)
      const input = { org_slug: 'acme', provider: 'anthropic', credential: KEYS.acme.anthropic, actor }
      logger.info({ body: input, req: { headers: { 'x-api-key': 'tf_' + 'A'.repeat(36), authorization: `Bearer ${KEYS.acme.openai}` } } }, 'setup request')
      await setupCredential(deps, input)
      await withDecryptedCredential(deps, { org_slug: 'globex', provider: 'gcp', reason: 'test', actor }, async (cred) => {
        assert.ok(trackedSecretCount() > 0)
        logger.error({ err: new Error(`upstream echoed ${cred.secret}`) }, `failed with ${JSON.parse(cred.secret).private_key}`)
      })
      await withDecryptedCredential(deps, { org_slug: 'globex', provider: 'anthropic', reason: 'test', actor }, async () => {}).catch(() => undefined)
      assert.equal(trackedSecretCount(), 0, 'nothing stays tracked after use')
      const dump = await dumpAllTables(db)
      const logs = capture.text()
      assert.ok(logs.includes('[REDACTED]'))
      assert.ok(dump.includes('org_integration_credentials'))
      const secrets = [KEYS.acme.openai, KEYS.acme.anthropic, KEYS.globex.openai, KEYS.globex.anthropic, HTTP_TOKEN, sa.json, JSON.parse(sa.json).private_key as string]
      for (const s of secrets) {
        for (const needle of [s, JSON.stringify(s).slice(1, -1), s.slice(4, -4)]) {
          assert.ok(!dump.includes(needle), `table dump leaks ${s.slice(0, 12)}`)
          assert.ok(!logs.includes(needle), `logs leak ${s.slice(0, 12)}`)
        }
      }
      assert.ok(!logs.includes('A'.repeat(36)))
      assert.ok(!logs.includes('BEGIN PRIVATE KEY'))
    })

    await t.test('delete crypto-shreds; offboarding shreds every row of one org only', async () => {
      const n = await deleteCredential(deps, { org_slug: 'acme', provider: 'openai', actor })
      assert.ok(n >= 1)
      assert.equal((await getCredentialStatus(db, 'acme', 'openai')).status, 'NOT_CONFIGURED')
      const rows = await k.selectFrom('org_integration_credentials').selectAll().where('org_slug', '=', 'acme').where('provider', '=', 'openai').limit(100).execute()
      assert.ok(rows.every((r) => r.ciphertext === null && r.wrapped_key === null && r.is_active === 0 && r.destroyed_at !== null))
      assert.equal(await codeOf(deleteCredential(deps, { org_slug: 'acme', provider: 'openai', actor })), 'INTEGRATION_NOT_CONFIGURED')
      assert.equal(await codeOf(decryptActiveCredential(deps, { org_slug: 'acme', provider: 'openai', reason: 'x', actor })), 'INTEGRATION_NOT_CONFIGURED')
      const actions = await k.selectFrom('org_audit_logs').select('action').where('org_slug', '=', 'acme').where('action', '=', 'credential.deleted').limit(10).execute()
      assert.equal(actions.length, 1)

      const destroyed = await k.transaction().execute((trx) => destroyOrgCredentials(trx, 'globex'))
      assert.ok(destroyed >= 4)
      const left = await k.selectFrom('org_integration_credentials').select(['ciphertext']).where('org_slug', '=', 'globex').where('ciphertext', 'is not', null).limit(10).execute()
      assert.equal(left.length, 0)
      assert.equal((await getCredentialStatus(db, 'acme', 'anthropic')).status, 'VALID', 'the other org is untouched')
      assert.equal(await destroyOrgCredentials(k, 'globex'), 0)
    })
  })
}
