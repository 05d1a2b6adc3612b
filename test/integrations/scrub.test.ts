import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../../src/core/observability/logger.js'
import { pinSecret, registerSecret, scrubText, scrubValue, trackedSecretCount, withSecret } from '../../src/core/security/scrub.js'
import { captureStream } from './setup.js'

test('tracked values are scrubbed while in use and forgotten after', async () => {
  const secret = 'custom-vendor-token-7f3a9b'
  assert.equal(scrubText(`token=${secret}`), `token=${secret}`, 'untracked values are not known')
  await withSecret(secret, () => {
    assert.equal(scrubText(`token=${secret}!`), 'token=[REDACTED]!')
    assert.equal(scrubText(JSON.stringify({ m: `"${secret}"` })).includes(secret), false)
  })
  assert.equal(trackedSecretCount(), 0)
  const a = registerSecret(secret)
  const b = registerSecret(secret)
  a()
  assert.equal(scrubText(secret), '[REDACTED]', 'still in use by the second holder')
  b()
  b()
  assert.equal(scrubText(secret), secret)
  assert.equal(trackedSecretCount(), 0)
  await assert.rejects(withSecret(secret, async () => { throw new Error(`failed with ${secret}`) }))
  assert.equal(trackedSecretCount(), 0, 'released even when the use throws')
})

test('shape patterns: org keys, root keys, provider keys, PEM private keys, bearer/basic tokens, Google tokens, webhook signing secrets', () => {
  const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----'
  const text = [
    'tf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', 'tfroot_abcdefghijklmnopqrstuvwxyz012345', 'sk-proj-abc123def456ghi789',
    'sk-ant-api03-abcdefghijklmnop', pem, JSON.stringify(pem), 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig',
    'Basic dXNlcjpwYXNzd29yZDEyMw==', 'ya29.a0AfH6SMBx-abcdefghijkl', 'whsec_Zq3vR8mK2pLx7NwT4bYc9HdF1sGj6EuA0oWiVnQy5Xk',
  ].join(' | ')
  const out = scrubText(text)
  for (const leak of ['AbCdEfGhIj', 'abcdefghijklmnopqrstuvwxyz012345', 'abc123def456', 'api03-abcdefghijklmnop', 'MIIEvQIBADAN', 'eyJhbGci', 'dXNlcjpw', 'a0AfH6SMBx', 'Zq3vR8mK2pLx']) {
    assert.ok(!out.includes(leak), `${leak} survived: ${out}`)
  }
  assert.ok(out.includes('Bearer [REDACTED]'))
  assert.equal(scrubText('Basic auth failed; see sk- docs'), 'Basic auth failed; see sk- docs')
  assert.deepEqual(scrubValue({ a: ['x sk-proj-abc123def456ghi789'], n: 1 }), { a: ['x [REDACTED]'], n: 1 })
})

test('logger: header and credential fields redacted by path, values scrubbed in every line', async () => {
  const capture = captureStream()
  const logger = createLogger('info', capture.stream)
  const root = 'root-secret-for-logger-test-0123456789'
  pinSecret(root)
  const secret = 'vendor-secret-in-flight-42'
  logger.info({ req: { headers: { 'x-api-key': 'abc', 'x-ca-root-key': 'def', authorization: 'ghi', cookie: 'jkl', 'user-agent': 'node' } } }, 'request')
  logger.info({ body: { credential: 'cred-value-1', metadata: { base_url: 'https://api.example.com' } }, credential: 'cred-value-2', nested: { api_key: 'k-value', private_key: 'p-value' } }, 'setup')
  await withSecret(secret, () => logger.error({ err: new Error(`upstream said ${secret}`) }, `call failed ${secret}`))
  logger.warn(`config echo ${root}`)
  logger.info({ child: 'ok' }, 'plain line stays readable')
  await new Promise((r) => setImmediate(r))
  const out = capture.text()
  for (const leak of ['"abc"', '"def"', '"ghi"', '"jkl"', 'cred-value-1', 'cred-value-2', 'k-value', 'p-value', secret, root]) {
    assert.ok(!out.includes(leak), `${leak} leaked`)
  }
  assert.ok(out.includes('"user-agent":"node"'))
  assert.ok(out.includes('https://api.example.com'))
  assert.ok(out.includes('plain line stays readable'))
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines.length, 5, 'every line is still valid JSON')
  assert.equal(lines[0]!.level, 'info')
})
