import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig, type Config } from '../../src/app/config.js'
import { createEgressClient, egressOptionsFromConfig } from '../../src/core/http/egress.js'
import { CredentialFormatError, gcpAccessToken, parseServiceAccount, PROVIDERS, ProviderCallError } from '../../src/core/integrations/providers/index.js'
import { TEST_ROOT_KEY } from '../helpers/backends.js'
import { anthropicFake, googleFake, hang, json, makeServiceAccount, openaiFake, startUpstream, type GoogleFakeState, type ServiceAccountFixture, type Upstream } from './fakes.js'

const OPENAI_KEY = 'sk-proj-Valid0penAIKeyForTests1234567890'
const ANTHROPIC_KEY = 'sk-ant-api03-ValidAnthropicKeyForTests-0123456789'
let openai: Upstream, anthropic: Upstream, google: Upstream, hanging: Upstream, redirecting: Upstream, elsewhere: Upstream
let sa: ServiceAccountFixture
const gstate: GoogleFakeState = { token: 'ya29.c.test-access-token-0123456789' }

function config(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    CA_ROOT_API_KEY: TEST_ROOT_KEY,
    KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'),
    EGRESS_ALLOW_LOOPBACK: 'true',
    EGRESS_TIMEOUT_MS: '300',
    OPENAI_BASE_URL: openai.url,
    ANTHROPIC_BASE_URL: anthropic.url,
    GCP_API_BASE_URL: google.url,
    ...overrides,
  })
}

before(async () => {
  openai = await startUpstream(openaiFake(OPENAI_KEY))
  anthropic = await startUpstream(anthropicFake(ANTHROPIC_KEY))
  google = await startUpstream(googleFake(() => sa, () => `${google.url}/token`, gstate))
  sa = makeServiceAccount(`${google.url}/token`)
  hanging = await startUpstream(hang)
  elsewhere = await startUpstream((_req, res) => json(res, 200, { data: [] }))
  redirecting = await startUpstream((req, res) => {
    res.writeHead(307, { location: `${elsewhere.url}${req.path}` })
    res.end()
  })
})
after(async () => {
  for (const u of [openai, anthropic, google, hanging, redirecting, elsewhere]) await u.close()
})

function client(cfg: Config) {
  return createEgressClient(egressOptionsFromConfig(cfg))
}

async function validate(provider: keyof typeof PROVIDERS, credential: string, metadata: Record<string, unknown>, cfg: Config) {
  const http = client(cfg)
  try {
    const meta = PROVIDERS[provider].checkFormat(credential, metadata, cfg)
    return await PROVIDERS[provider].validate(credential, meta, http, cfg)
  } finally {
    await http.close()
  }
}

test('openai: valid key → VALID via GET /v1/models with a Bearer header', async () => {
  const before = openai.requests.length
  assert.deepEqual(await validate('openai', OPENAI_KEY, {}, config()), { status: 'VALID' })
  const seen = openai.requests.slice(before)
  assert.equal(seen.length, 1)
  assert.equal(seen[0]!.method, 'GET')
  assert.equal(seen[0]!.path, '/v1/models')
  assert.equal(seen[0]!.headers.authorization, `Bearer ${OPENAI_KEY}`)
})

test('openai: 401 → INVALID UNAUTHORIZED, upstream text not propagated', async () => {
  const bad = 'sk-proj-WrongKeyWrongKeyWrongKey0000'
  const r = await validate('openai', bad, {}, config())
  assert.deepEqual(r, { status: 'INVALID', error_code: 'UNAUTHORIZED' })
  assert.ok(!JSON.stringify(r).includes('Incorrect'))
})

test('openai admin keys are checked against the admin users list', async () => {
  const admin = 'sk-admin-AdminKeyForTests0123456789'
  const fake = await startUpstream(openaiFake(admin))
  try {
    assert.deepEqual(await validate('openai', admin, {}, config({ OPENAI_BASE_URL: fake.url })), { status: 'VALID' })
    assert.equal(fake.requests[0]!.path, '/v1/organization/users?limit=1')
  } finally {
    await fake.close()
  }
})

test('anthropic: valid key → VALID with x-api-key and anthropic-version; 401 → UNAUTHORIZED', async () => {
  const before = anthropic.requests.length
  assert.deepEqual(await validate('anthropic', ANTHROPIC_KEY, {}, config()), { status: 'VALID' })
  const seen = anthropic.requests[before]!
  assert.equal(seen.path, '/v1/models')
  assert.equal(seen.headers['x-api-key'], ANTHROPIC_KEY)
  assert.equal(seen.headers['anthropic-version'], '2023-06-01')
  assert.equal(seen.headers.authorization, undefined)
  assert.deepEqual(await validate('anthropic', 'sk-ant-api03-NotTheRightKey-000000000', {}, config()), { status: 'INVALID', error_code: 'UNAUTHORIZED' })
})

test('never-answering provider → TIMEOUT within the configured bound', async () => {
  const cfg = config({ OPENAI_BASE_URL: hanging.url, ANTHROPIC_BASE_URL: hanging.url, GCP_TOKEN_URI: `${hanging.url}/token` })
  for (const [p, cred] of [['openai', OPENAI_KEY], ['anthropic', ANTHROPIC_KEY], ['gcp', sa.json]] as const) {
    const t0 = Date.now()
    assert.deepEqual(await validate(p, cred, {}, cfg), { status: 'INVALID', error_code: 'TIMEOUT' }, p)
    const took = Date.now() - t0
    assert.ok(took < 1500, `${p} took ${took} ms`)
  }
})

test('redirect to another host → refused, the other host gets nothing', async () => {
  const cfg = config({ OPENAI_BASE_URL: redirecting.url, ANTHROPIC_BASE_URL: redirecting.url })
  assert.deepEqual(await validate('openai', OPENAI_KEY, {}, cfg), { status: 'INVALID', error_code: 'UPSTREAM_ERROR' })
  assert.deepEqual(await validate('anthropic', ANTHROPIC_KEY, {}, cfg), { status: 'INVALID', error_code: 'UPSTREAM_ERROR' })
  assert.equal(elsewhere.requests.length, 0)
})

test('unreachable and malformed upstreams', async () => {
  assert.deepEqual(await validate('openai', OPENAI_KEY, {}, config({ OPENAI_BASE_URL: 'http://127.0.0.1:1' })), { status: 'INVALID', error_code: 'UNREACHABLE' })
  const weird = await startUpstream((req, res) => (req.path === '/v1/models' ? json(res, 200, { object: 'list' }) : json(res, 500, {})))
  try {
    assert.deepEqual(await validate('openai', OPENAI_KEY, {}, config({ OPENAI_BASE_URL: weird.url })), { status: 'INVALID', error_code: 'UPSTREAM_ERROR' })
  } finally {
    await weird.close()
  }
  // Loopback refused when not allowed: blocked counts as unreachable.
  const strict = config({ EGRESS_ALLOW_LOOPBACK: 'false' })
  assert.deepEqual(await validate('openai', OPENAI_KEY, {}, strict), { status: 'INVALID', error_code: 'UNREACHABLE' })
})

test('gcp: JWT-bearer exchange at token_uri, then an authorized project GET → VALID', async () => {
  const before = google.requests.length
  assert.deepEqual(await validate('gcp', sa.json, {}, config()), { status: 'VALID' })
  const seen = google.requests.slice(before)
  assert.deepEqual(seen.map((r) => `${r.method} ${r.path}`), ['POST /token', `GET /v1/projects/${sa.projectId}`])
  assert.equal(seen[0]!.headers['content-type'], 'application/x-www-form-urlencoded')
  assert.equal(seen[1]!.headers.authorization, `Bearer ${gstate.token}`)
  assert.equal(gstate.claims?.iss, sa.clientEmail)
})

test('gcp: a key Google does not know → INVALID UNAUTHORIZED', async () => {
  const other = makeServiceAccount(`${google.url}/token`) // same identity, different key pair
  assert.deepEqual(await validate('gcp', other.json, {}, config()), { status: 'INVALID', error_code: 'UNAUTHORIZED' })
})

test('gcp: GCP_TOKEN_URI overrides the key token_uri; gcpAccessToken returns the token', async () => {
  const away = makeServiceAccount('https://oauth2.googleapis.com/token')
  const saved = sa
  sa = away
  try {
    const cfg = config({ GCP_TOKEN_URI: `${google.url}/token` })
    const http = client(cfg)
    try {
      assert.equal(await gcpAccessToken(parseServiceAccount(away.json), http, cfg), gstate.token)
    } finally {
      await http.close()
    }
  } finally {
    sa = saved
  }
  const http = client(config())
  try {
    await assert.rejects(gcpAccessToken(parseServiceAccount(makeServiceAccount(`${google.url}/token`).json), http, config()), (e: unknown) => e instanceof ProviderCallError && e.code === 'UNAUTHORIZED')
  } finally {
    await http.close()
  }
})

test('http provider: bearer, header and basic auth against validation_url; PENDING without one', async () => {
  const token = 'generic-token-0123456789'
  const api = await startUpstream((req, res) => {
    const ok =
      req.headers.authorization === `Bearer ${token}` ||
      req.headers['x-service-key'] === token ||
      req.headers.authorization === `Basic ${Buffer.from(`svc:${token}`).toString('base64')}`
    json(res, ok ? 200 : 403, { ok })
  })
  try {
    const cfg = config()
    const base = { base_url: `${api.url}/api`, validation_url: `${api.url}/api/me` }
    assert.deepEqual(await validate('http', token, { ...base, auth_type: 'bearer' }, cfg), { status: 'VALID' })
    assert.deepEqual(await validate('http', token, { ...base, auth_type: 'header', header_name: 'X-Service-Key' }, cfg), { status: 'VALID' })
    assert.deepEqual(await validate('http', `svc:${token}`, { ...base, auth_type: 'basic' }, cfg), { status: 'VALID' })
    assert.deepEqual(await validate('http', 'wrong-token-0000000000', { ...base, auth_type: 'bearer' }, cfg), { status: 'INVALID', error_code: 'UNAUTHORIZED' })
    const before = api.requests.length
    assert.deepEqual(await validate('http', token, { base_url: `${api.url}/api`, auth_type: 'bearer' }, cfg), { status: 'PENDING' })
    assert.equal(api.requests.length, before)
  } finally {
    await api.close()
  }
})

test('format checks name the failing field, never the value', () => {
  const cfg = config()
  const field = (p: keyof typeof PROVIDERS, cred: string, meta: Record<string, unknown> = {}) => {
    try {
      PROVIDERS[p].checkFormat(cred, meta, cfg)
      return 'OK'
    } catch (err) {
      assert.ok(err instanceof CredentialFormatError)
      assert.ok(!err.message.includes(cred), 'message must not contain the credential')
      return err.field
    }
  }
  assert.equal(field('openai', 'pk-notanopenaikey-1234567890'), 'credential')
  assert.equal(field('openai', ANTHROPIC_KEY), 'credential')
  assert.equal(field('openai', OPENAI_KEY), 'OK')
  assert.equal(field('anthropic', OPENAI_KEY), 'credential')
  assert.equal(field('anthropic', ANTHROPIC_KEY), 'OK')
  assert.equal(field('gcp', 'not json at all'), 'credential')
  const saObj = JSON.parse(sa.json) as Record<string, unknown>
  assert.equal(field('gcp', JSON.stringify({ ...saObj, type: 'authorized_user' })), 'credential.type')
  assert.equal(field('gcp', JSON.stringify({ ...saObj, project_id: undefined })), 'credential.project_id')
  assert.equal(field('gcp', JSON.stringify({ ...saObj, private_key: 'abc' })), 'credential.private_key')
  assert.equal(field('gcp', JSON.stringify({ ...saObj, client_email: 'nope' })), 'credential.client_email')
  assert.equal(field('gcp', JSON.stringify({ ...saObj, token_uri: 'nope' })), 'credential.token_uri')
  assert.equal(field('gcp', sa.json), 'OK')
  assert.deepEqual(PROVIDERS.gcp.checkFormat(sa.json, {}, cfg), { project_id: sa.projectId, client_email: sa.clientEmail })
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'oauth', base_url: 'https://api.example.com' }), 'metadata.auth_type')
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'bearer', base_url: 'ftp://api.example.com' }), 'metadata.base_url')
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'bearer', base_url: 'http://169.254.169.254/' }), 'metadata.base_url')
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'header', base_url: 'https://api.example.com' }), 'metadata.header_name')
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'header', header_name: 'Host', base_url: 'https://api.example.com' }), 'metadata.header_name')
  assert.equal(field('http', 'no-colon-here-123', { auth_type: 'basic', base_url: 'https://api.example.com' }), 'credential')
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'bearer', base_url: 'https://api.example.com', validation_url: 'https://other.example.com/me' }), 'metadata.validation_url')
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'bearer', base_url: 'https://api.example.com/v2' }), 'OK')
  const prod = config({ ENVIRONMENT: 'production', EGRESS_ALLOW_LOOPBACK: 'false', RATE_LIMIT_ENABLED: 'true', CA_ROOT_API_KEY: TEST_ROOT_KEY })
  assert.equal(field('http', 'tok-0123456789', { auth_type: 'bearer', base_url: 'http://api.example.com' }), 'OK')
  assert.throws(() => PROVIDERS.http.checkFormat('tok-0123456789', { auth_type: 'bearer', base_url: 'http://api.example.com' }, prod), CredentialFormatError)
})
