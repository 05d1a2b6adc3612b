import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
// Transitive dependency of @google-cloud/kms; used only to hand the client a fixed token, so no Google call is made.
import { OAuth2Client } from 'google-auth-library'
import { GcpKms } from '../../src/core/security/gcp-kms.js'
import { decryptSecret, DecryptionError, encryptSecret, KmsUnavailableError, rewrapSecret } from '../../src/core/security/kms-encryption.js'
import { hang, json, startUpstream, type Upstream } from './fakes.js'

const KEY = 'projects/acme-sec/locations/global/keyRings/tenantflow/cryptoKeys/credentials'
const TOKEN = 'ya29.kms-test-token-0123456789'

/**
 * A Cloud KMS REST stand-in: POST /v1/{name}:encrypt {plaintext, additionalAuthenticatedData} → {name, ciphertext};
 * POST /v1/{name}:decrypt {ciphertext, additionalAuthenticatedData} → {plaintext}. Ciphertexts are real AES-GCM
 * under a per-version key, with the AAD bound, and carry their version (as real KMS ciphertexts do).
 */
function kmsFake(state: { primary: number; keys: Map<number, Buffer> }) {
  return startUpstream((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'no' } })
    const path = req.path.split('?')[0]!
    const body = JSON.parse(req.body) as Record<string, string>
    const aad = Buffer.from(body.additionalAuthenticatedData ?? '', 'base64')
    if (path === `/v1/${KEY}:encrypt`) {
      const iv = randomBytes(12)
      const c = createCipheriv('aes-256-gcm', state.keys.get(state.primary)!, iv)
      c.setAAD(aad)
      const ct = Buffer.concat([c.update(Buffer.from(body.plaintext!, 'base64')), c.final()])
      const blob = Buffer.concat([Buffer.from([state.primary]), iv, c.getAuthTag(), ct])
      return json(res, 200, { name: `${KEY}/cryptoKeyVersions/${state.primary}`, ciphertext: blob.toString('base64'), protectionLevel: 'SOFTWARE' })
    }
    if (path === `/v1/${KEY}:decrypt`) {
      const blob = Buffer.from(body.ciphertext!, 'base64')
      const key = state.keys.get(blob[0]!)
      try {
        const d = createDecipheriv('aes-256-gcm', key!, blob.subarray(1, 13))
        d.setAAD(aad)
        d.setAuthTag(blob.subarray(13, 29))
        const pt = Buffer.concat([d.update(blob.subarray(29)), d.final()])
        return json(res, 200, { plaintext: pt.toString('base64'), usedPrimary: blob[0] === state.primary, protectionLevel: 'SOFTWARE' })
      } catch {
        return json(res, 400, { error: { code: 400, message: 'Decryption failed: the ciphertext is invalid.', status: 'INVALID_ARGUMENT' } })
      }
    }
    json(res, 404, { error: { code: 404, status: 'NOT_FOUND', message: 'not found' } })
  })
}

const state = { primary: 1, keys: new Map([[1, randomBytes(32)], [2, randomBytes(32)]]) }
let server: Upstream
let hanging: Upstream
const kmsList: GcpKms[] = []

function auth() {
  const c = new OAuth2Client()
  c.setCredentials({ access_token: TOKEN, expiry_date: Date.now() + 3_600_000 })
  return c
}
function kms(endpoint: string, timeoutMs = 2000) {
  const k = new GcpKms({ keyName: KEY, endpoint, timeoutMs, authClient: auth() })
  kmsList.push(k)
  return k
}

before(async () => {
  server = await kmsFake(state)
  hanging = await startUpstream(hang)
})
after(async () => {
  for (const k of kmsList) await k.close()
  await server.close()
  await hanging.close()
})

const ctx = { org_slug: 'acme', purpose: 'integration' as const, provider: 'openai', resource_id: 'cred_0000000001abc' }

test('wraps and unwraps through the Cloud KMS REST encrypt/decrypt shape, AAD included', async () => {
  const k = kms(server.url)
  const sealed = await encryptSecret(k, 'sk-proj-secret-for-gcp-kms-1234', ctx)
  assert.equal(sealed.kms_provider, 'gcp')
  assert.equal(sealed.kms_key_version, `${KEY}/cryptoKeyVersions/1`)
  assert.equal(k.currentKeyVersion(), `${KEY}/cryptoKeyVersions/1`)
  assert.equal(await decryptSecret(k, sealed, ctx), 'sk-proj-secret-for-gcp-kms-1234')
  const enc = server.requests.find((r) => r.path.split('?')[0]!.endsWith(':encrypt'))!
  const body = JSON.parse(enc.body) as Record<string, string>
  assert.equal(Buffer.from(body.plaintext!, 'base64').length, 32, 'only the data key goes to KMS')
  assert.match(Buffer.from(body.additionalAuthenticatedData!, 'base64').toString(), /org=acme\|purpose=integration\|provider=openai/)
  assert.equal(enc.headers.authorization, `Bearer ${TOKEN}`)
})

test('KMS refuses a wrapped key presented with another org context → DecryptionError', async () => {
  const k = kms(server.url)
  const sealed = await encryptSecret(k, 'sk-proj-secret-for-gcp-kms-1234', ctx)
  await assert.rejects(decryptSecret(k, sealed, { ...ctx, org_slug: 'other' }), DecryptionError)
  await assert.rejects(decryptSecret(k, { ...sealed, kms_key_version: 'projects/x/locations/y/keyRings/z/cryptoKeys/w/cryptoKeyVersions/1' }, ctx), DecryptionError)
})

test('rewrap moves the data key to the new primary version without touching the ciphertext', async () => {
  const k = kms(server.url)
  const sealed = await encryptSecret(k, 'sk-proj-rotate-me-1234567890', ctx)
  state.primary = 2
  try {
    const next = await rewrapSecret(k, sealed, ctx)
    assert.equal(next.ciphertext, sealed.ciphertext)
    assert.equal(next.kms_key_version, `${KEY}/cryptoKeyVersions/2`)
    state.keys.delete(1) // version 1 destroyed
    assert.equal(await decryptSecret(k, next, ctx), 'sk-proj-rotate-me-1234567890')
    await assert.rejects(decryptSecret(k, sealed, ctx), DecryptionError)
  } finally {
    state.keys.set(1, randomBytes(32))
    state.primary = 1
  }
})

test('a KMS that never answers fails with a timeout within the configured bound', async () => {
  const k = kms(hanging.url, 300)
  const t0 = Date.now()
  await assert.rejects(k.wrap(randomBytes(32), Buffer.from('aad')), (e: unknown) => e instanceof KmsUnavailableError && e.code === 'TIMEOUT')
  const took = Date.now() - t0
  assert.ok(took >= 250 && took < 2000, `took ${took} ms`)
  const t1 = Date.now()
  await assert.rejects(k.unwrap('AAAA', Buffer.from('aad'), `${KEY}/cryptoKeyVersions/1`), (e: unknown) => e instanceof KmsUnavailableError && e.code === 'TIMEOUT')
  assert.ok(Date.now() - t1 < 2000)
})

test('an unreachable KMS is unavailable, not a decryption failure', async () => {
  const k = kms('http://127.0.0.1:1', 1000)
  await assert.rejects(k.wrap(randomBytes(32), Buffer.from('aad')), (e: unknown) => e instanceof KmsUnavailableError && e.code === 'UNAVAILABLE')
})
