import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { openWebhook, putWebhook } from '../../src/core/webhooks/store.js'
import { loadConfig, ConfigError } from '../../src/app/config.js'
import { rewrapAll } from '../../src/cli/kms-rewrap.js'
import { newId } from '../../src/core/ids.js'
import { setupCredential, decryptActiveCredential } from '../../src/core/integrations/credentials.js'
import { createKms, decryptSecret, DecryptionError, encryptSecret, LocalKms, rewrapSecret, type SealedSecret } from '../../src/core/security/kms-encryption.js'
import { backendNames, TEST_ROOT_KEY } from '../helpers/backends.js'
import { harness } from './setup.js'

const v1 = { version: 'v1', key: randomBytes(32) }
const v2 = { version: 'v2', key: randomBytes(32) }
const ctx = { org_slug: 'acme', purpose: 'integration' as const, provider: 'openai', resource_id: 'cred_0000000001abc' }

test('envelope: AAD binds org, provider and row; each secret gets its own data key', async () => {
  const kms = new LocalKms(v1)
  const a = await encryptSecret(kms, 'sk-proj-one-secret-000000', ctx)
  const b = await encryptSecret(kms, 'sk-proj-one-secret-000000', ctx)
  assert.notEqual(a.wrapped_key, b.wrapped_key)
  assert.notEqual(a.ciphertext, b.ciphertext)
  for (const other of [{ ...ctx, org_slug: 'globex' }, { ...ctx, provider: 'anthropic' }, { ...ctx, resource_id: 'cred_0000000002abc' }, { ...ctx, purpose: 'api_key' as const }]) {
    await assert.rejects(decryptSecret(kms, a, other), DecryptionError)
  }
  await assert.rejects(decryptSecret(kms, { ...a, ciphertext: b.ciphertext }, ctx), DecryptionError)
  assert.equal(await decryptSecret(kms, a, ctx), 'sk-proj-one-secret-000000')
})

test('rewrapSecret: same ciphertext, new key version; old version can be retired', async () => {
  const old = new LocalKms(v1)
  const sealed = await encryptSecret(old, 'sk-proj-rotate-000000000', ctx)
  const rotating = new LocalKms(v2, [v1])
  const next = await rewrapSecret(rotating, sealed, ctx)
  assert.equal(next.ciphertext, sealed.ciphertext)
  assert.equal(next.kms_key_version, 'v2')
  const retired = new LocalKms(v2)
  assert.equal(await decryptSecret(retired, next, ctx), 'sk-proj-rotate-000000000')
  await assert.rejects(decryptSecret(retired, sealed, ctx), DecryptionError)
  await assert.rejects(rewrapSecret(rotating, sealed, { ...ctx, org_slug: 'globex' }), DecryptionError)
})

test('config: KMS_LOCAL_PREVIOUS_KEYS is parsed and validated; createKms keeps the old versions for unwrap', async () => {
  const base = { CA_ROOT_API_KEY: TEST_ROOT_KEY, KMS_LOCAL_MASTER_KEY: v2.key.toString('base64'), KMS_LOCAL_KEY_VERSION: 'v2' }
  const cfg = loadConfig({ ...base, KMS_LOCAL_PREVIOUS_KEYS: `v1:${v1.key.toString('base64')}` })
  assert.deepEqual(cfg.kms.localPreviousKeys?.map((p) => p.version), ['v1'])
  const kms = await createKms(cfg)
  assert.equal(kms.currentKeyVersion(), 'v2')
  const sealed = await encryptSecret(new LocalKms(v1), 'sk-proj-previous-00000000', ctx)
  assert.equal(await decryptSecret(kms, sealed, ctx), 'sk-proj-previous-00000000')
  for (const bad of ['v1', `v2:${v1.key.toString('base64')}`, `v1:${Buffer.alloc(16).toString('base64')}`, `v1:${v1.key.toString('base64')},v1:${v1.key.toString('base64')}`]) {
    assert.throws(() => loadConfig({ ...base, KMS_LOCAL_PREVIOUS_KEYS: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'KMS_LOCAL_PREVIOUS_KEYS' && !e.message.includes(v1.key.toString('base64')))
  }
})

for (const backend of backendNames()) {
  test(`kms rewrap on ${backend}: every data key moves to the current version, plaintexts intact`, async (t) => {
    const h = await harness(backend, { KMS_LOCAL_MASTER_KEY: v1.key.toString('base64'), KMS_LOCAL_KEY_VERSION: 'v1' })
    t.after(() => h.close())
    const k = h.db.kysely
    const secrets = new Map<string, string>()
    for (const org of ['acme', 'globex', 'initech']) {
      for (const [provider, cred] of [['openai', `sk-proj-${org}-openai-key-000000`], ['anthropic', `sk-ant-api03-${org}-anthropic-0000`]] as const) {
        await setupCredential(h.deps, { org_slug: org, provider, credential: cred, skip_validation: true, actor: 'root' })
        secrets.set(`${org}/${provider}`, cred)
      }
      const key_id = newId('key')
      const sealed = await encryptSecret(h.deps.kms, `tf_${org}ApiKeyPlaintext0000000000000000`, { org_slug: org, purpose: 'api_key', resource_id: key_id })
      await k.insertInto('org_api_keys').values({
        key_id, org_slug: org, key_hash: randomBytes(32).toString('hex'), encrypted_key: JSON.stringify(sealed), fingerprint: '0000',
        created_at: Date.now(), expires_at: null, revoked_at: null, last_used_at: null,
      }).execute()
    }
    const hookSecret = (await putWebhook(k, h.deps.kms, { org_slug: 'acme', url: 'https://hooks.acme.example/x', now: Date.now() })).signing_secret!
    // A replaced credential (shredded) is skipped; a corrupted row is reported, not fatal.
    await setupCredential(h.deps, { org_slug: 'acme', provider: 'openai', credential: 'sk-proj-acme-openai-key-000000', skip_validation: true, actor: 'root' })
    const bad = await k.selectFrom('org_integration_credentials').select(['credential_id']).where('org_slug', '=', 'initech').where('provider', '=', 'anthropic').where('is_active', '=', 1).executeTakeFirstOrThrow()
    const donor = await k.selectFrom('org_integration_credentials').select(['wrapped_key']).where('org_slug', '=', 'globex').where('provider', '=', 'anthropic').where('is_active', '=', 1).executeTakeFirstOrThrow()
    await k.updateTable('org_integration_credentials').set({ wrapped_key: donor.wrapped_key }).where('credential_id', '=', bad.credential_id).execute()

    const before = await k.selectFrom('org_integration_credentials').select(['credential_id', 'ciphertext']).where('ciphertext', 'is not', null).limit(100).execute()
    const rotating = new LocalKms(v2, [v1])
    // Writes are batched: one UPDATE per batch of 2 rows read, never one per row.
    let updates = 0
    const counting = k.withPlugin({
      transformQuery(args) {
        const node = args.node as { kind: string; sqlFragments?: readonly string[] }
        if (node.kind === 'UpdateQueryNode' || (node.kind === 'RawNode' && /^\s*update\b/i.test(node.sqlFragments?.[0] ?? ''))) updates++
        return args.node
      },
      async transformResult(args) {
        return args.result
      },
    })
    const result = await rewrapAll({ db: { ...h.db, kysely: counting }, kms: rotating, batchSize: 2 })
    assert.ok(updates <= 3 + 2 + 1, `expected at most one UPDATE per batch, saw ${updates}`)
    assert.deepEqual(result.webhooks, { rewrapped: 1, current: 0, failed: 0, failed_ids: [] })
    assert.equal(result.key_version, 'v2')
    assert.deepEqual({ ...result.credentials, failed_ids: result.credentials.failed_ids }, { rewrapped: 5, current: 0, failed: 1, failed_ids: [bad.credential_id] })
    assert.deepEqual(result.api_keys, { rewrapped: 3, current: 0, failed: 0, failed_ids: [] })

    const afterRows = await k.selectFrom('org_integration_credentials').select(['credential_id', 'ciphertext', 'kms_key_version']).where('ciphertext', 'is not', null).limit(100).execute()
    for (const row of before) assert.equal(afterRows.find((r) => r.credential_id === row.credential_id)!.ciphertext, row.ciphertext, 'ciphertext untouched')

    // v1 retired: everything still decrypts under v2 alone.
    const retired = new LocalKms(v2)
    const deps = { ...h.deps, kms: retired }
    for (const [key, secret] of secrets) {
      const [org, provider] = key.split('/') as [string, 'openai' | 'anthropic']
      if (org === 'initech' && provider === 'anthropic') continue
      assert.equal((await decryptActiveCredential(deps, { org_slug: org, provider, reason: 'test', actor: 'root' })).secret, secret)
    }
    const keys = await k.selectFrom('org_api_keys').selectAll().limit(10).execute()
    for (const row of keys) {
      const sealed = JSON.parse(row.encrypted_key) as SealedSecret
      assert.equal(sealed.kms_key_version, 'v2')
      assert.equal(await decryptSecret(retired, sealed, { org_slug: row.org_slug, purpose: 'api_key', resource_id: row.key_id }), `tf_${row.org_slug}ApiKeyPlaintext0000000000000000`)
    }
    const hook = await k.selectFrom('org_run_webhooks').select('webhook_id').where('org_slug', '=', 'acme').executeTakeFirstOrThrow()
    assert.equal((await openWebhook(k, retired, 'acme', hook.webhook_id))!.secret, hookSecret, 'the webhook secret opens under v2 alone')
    const again = await rewrapAll({ db: h.db, kms: rotating })
    assert.deepEqual([again.credentials.rewrapped, again.credentials.current, again.api_keys.current], [0, 5, 3])
  })
}
