import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { checkUrl, classifyAddress, createEgressClient, type EgressOptions } from '../../src/core/http/egress.js'
import { EgressError } from '../../src/core/http/types.js'
import { hang, json, startUpstream } from './fakes.js'

const dev: EgressOptions = { allowLoopback: true, production: false, allowedHosts: [], timeoutMs: 2000, maxSockets: 4 }
const strict: EgressOptions = { ...dev, allowLoopback: false }
const clients = [createEgressClient(dev), createEgressClient(strict)]
const [loose, noLoop] = clients as [ReturnType<typeof createEgressClient>, ReturnType<typeof createEgressClient>]
after(() => Promise.all(clients.map((c) => c.close())))

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof EgressError, `expected EgressError, got ${String(err)}`)
    return err.code
  }
  return 'OK'
}

/** Records every outgoing socket the process opens while fn runs. */
async function socketsOpenedDuring(fn: () => Promise<void>): Promise<string[]> {
  const opened: string[] = []
  const origNet = net.connect
  const origTls = tls.connect
  const record = (args: unknown[]) => {
    const o = args[0] as { host?: string; port?: number } | undefined
    opened.push(`${o?.host}:${o?.port}`)
  }
  ;(net as { connect: unknown }).connect = (...args: unknown[]) => (record(args), (origNet as (...a: unknown[]) => net.Socket)(...args))
  ;(tls as { connect: unknown }).connect = (...args: unknown[]) => (record(args), (origTls as (...a: unknown[]) => tls.TLSSocket)(...args))
  try {
    await fn()
  } finally {
    ;(net as { connect: unknown }).connect = origNet
    ;(tls as { connect: unknown }).connect = origTls
  }
  return opened
}

test('address classification: private, link-local, CGNAT, metadata, multicast and mapped IPv6 are blocked', () => {
  const cases: [string, string][] = [
    ['8.8.8.8', 'allowed'], ['2606:4700:4700::1111', 'allowed'], ['::ffff:8.8.8.8', 'allowed'],
    ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
    ['10.0.0.1', 'blocked'], ['172.16.0.1', 'blocked'], ['172.31.255.255', 'blocked'], ['192.168.1.1', 'blocked'],
    ['169.254.169.254', 'blocked'], ['100.64.0.1', 'blocked'], ['0.0.0.0', 'blocked'], ['224.0.0.251', 'blocked'],
    ['255.255.255.255', 'blocked'], ['fc00::1', 'blocked'], ['fd00:ec2::254', 'blocked'], ['fe80::1%eth0', 'blocked'],
    ['ff02::1', 'blocked'], ['::', 'blocked'], ['::ffff:10.0.0.1', 'blocked'], ['::ffff:a9fe:a9fe', 'blocked'],
    ['64:ff9b::a9fe:a9fe', 'blocked'], ['2002:a00:1::1', 'blocked'], ['not-an-ip', 'blocked'],
  ]
  for (const [addr, want] of cases) assert.equal(classifyAddress(addr), want, addr)
  assert.equal(classifyAddress('172.15.255.255'), 'allowed')
})

test('refusals happen before any socket is opened', async () => {
  const targets = [
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.1/',
    'http://[::ffff:169.254.169.254]/',
    'http://[fd00:ec2::254]/',
    'http://100.64.1.1/',
    'http://metadata.google.internal/computeMetadata/v1/',
    'http://0.0.0.0:80/',
  ]
  const opened = await socketsOpenedDuring(async () => {
    for (const url of targets) assert.equal(await code(loose.request(url)), 'BLOCKED_DESTINATION', url)
  })
  assert.deepEqual(opened, [])
})

test('non-http schemes and URLs with credentials are invalid', async () => {
  for (const url of ['file:///etc/passwd', 'ftp://example.com/x', 'gopher://127.0.0.1/', 'javascript:alert(1)', 'not a url', 'http://user:pw@127.0.0.1/']) {
    assert.equal(await code(loose.request(url)), 'INVALID_URL', url)
  }
})

test('a host name resolving to loopback is refused at connect time unless loopback is allowed', async () => {
  const up = await startUpstream((_req, res) => json(res, 200, { ok: true }))
  try {
    const port = new URL(up.url).port
    assert.equal(await code(noLoop.request(`http://localhost:${port}/`)), 'BLOCKED_DESTINATION')
    assert.equal(await code(noLoop.request(`http://127.0.0.1:${port}/`)), 'BLOCKED_DESTINATION')
    assert.equal(await code(noLoop.request(`http://[::ffff:7f00:1]:${port}/`)), 'BLOCKED_DESTINATION')
    assert.equal(up.connections, 0, 'the refused requests never reached the server')
    const ok = await loose.request(`http://localhost:${port}/`)
    assert.equal(ok.status, 200)
    assert.deepEqual(ok.json(), { ok: true })
  } finally {
    await up.close()
  }
})

test('production: https only, and only allow-listed hosts', () => {
  const prod = { allowLoopback: false, production: true, allowedHosts: ['api.openai.com', '*.googleapis.com'] }
  const refused = (url: string) => {
    try {
      checkUrl(url, prod)
      return 'OK'
    } catch (err) {
      return (err as EgressError).code
    }
  }
  assert.equal(refused('http://api.openai.com/v1/models'), 'BLOCKED_DESTINATION')
  assert.equal(refused('https://evil.example.com/'), 'BLOCKED_DESTINATION')
  assert.equal(refused('https://googleapis.com.evil.example/'), 'BLOCKED_DESTINATION')
  assert.equal(refused('https://api.openai.com/v1/models'), 'OK')
  assert.equal(refused('https://cloudbilling.googleapis.com/v1/billingAccounts'), 'OK')
})

test("an org's extra hosts widen the production host rule only: metadata names and blocked addresses stay refused", () => {
  const prod = { allowLoopback: false, production: true, allowedHosts: ['api.openai.com'] }
  const verdict = (url: string, extra: string[]) => {
    try {
      checkUrl(url, prod, extra)
      return 'OK'
    } catch (err) {
      return (err as EgressError).code
    }
  }
  assert.equal(verdict('https://api.partner.example/v1', []), 'BLOCKED_DESTINATION')
  assert.equal(verdict('https://api.partner.example/v1', ['api.partner.example']), 'OK')
  assert.equal(verdict('https://eu.partner.example/v1', ['*.partner.example']), 'OK')
  assert.equal(verdict('https://other.example/v1', ['api.partner.example']), 'BLOCKED_DESTINATION')
  assert.equal(verdict('http://api.partner.example/v1', ['api.partner.example']), 'BLOCKED_DESTINATION', 'still https only')
  for (const [url, listed] of [
    ['https://metadata.google.internal/', 'metadata.google.internal'],
    ['https://169.254.169.254/', '169.254.169.254'],
    ['https://10.0.0.1/', '10.0.0.1'],
    ['https://127.0.0.1/', '127.0.0.1'],
    ['https://[::1]/', '::1'],
  ] as const) {
    assert.equal(verdict(url, [listed]), 'BLOCKED_DESTINATION', url)
  }
})

test('production client refuses http before connecting', async () => {
  const up = await startUpstream((_req, res) => json(res, 200, {}))
  const prod = createEgressClient({ allowLoopback: false, production: true, allowedHosts: ['127.0.0.1'], timeoutMs: 1000, maxSockets: 2 })
  try {
    assert.equal(await code(prod.request(`${up.url}/`)), 'BLOCKED_DESTINATION')
    assert.equal(up.connections, 0)
  } finally {
    await prod.close()
    await up.close()
  }
})

test('redirects are not followed', async () => {
  const other = await startUpstream((_req, res) => json(res, 200, { reached: true }))
  const up = await startUpstream((_req, res) => {
    res.writeHead(302, { location: `${other.url}/steal` })
    res.end()
  })
  try {
    assert.equal(await code(loose.request(`${up.url}/start`)), 'REDIRECT_REFUSED')
    assert.equal(other.requests.length, 0)
  } finally {
    await up.close()
    await other.close()
  }
})

test('timeouts: total bound, per-request lower bound, caller abort', async () => {
  const up = await startUpstream(hang)
  const quick = createEgressClient({ ...dev, timeoutMs: 300 })
  try {
    let t0 = Date.now()
    assert.equal(await code(quick.request(`${up.url}/slow`)), 'TIMEOUT')
    let took = Date.now() - t0
    assert.ok(took >= 250 && took < 2000, `took ${took} ms`)
    t0 = Date.now()
    assert.equal(await code(loose.request(`${up.url}/slow`, { timeoutMs: 100 })), 'TIMEOUT')
    took = Date.now() - t0
    assert.ok(took < 1000, `took ${took} ms`)
    // A request cannot raise the configured bound.
    t0 = Date.now()
    assert.equal(await code(quick.request(`${up.url}/slow`, { timeoutMs: 60_000 })), 'TIMEOUT')
    assert.ok(Date.now() - t0 < 2000)
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    assert.equal(await code(loose.request(`${up.url}/slow`, { signal: ac.signal })), 'ABORTED')
  } finally {
    await quick.close()
    await up.close()
  }
})

test('connection refused is UNREACHABLE; oversize bodies are TOO_LARGE; bad JSON is MALFORMED_RESPONSE', async () => {
  const up = await startUpstream((req, res) => {
    if (req.path === '/big') return json(res, 200, { data: 'x'.repeat(5000) })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{not json')
  })
  try {
    assert.equal(await code(loose.request('http://127.0.0.1:1/')), 'UNREACHABLE')
    assert.equal(await code(loose.request(`${up.url}/big`, { maxBytes: 1000 })), 'TOO_LARGE')
    const unread = await loose.request(`${up.url}/big`, { maxBytes: 1000, discardBody: true })
    assert.deepEqual([unread.status, unread.body.length], [200, 0], 'discardBody: the status only, whatever the size')
    const res = await loose.request(`${up.url}/bad`)
    assert.throws(() => res.json(), (e: unknown) => e instanceof EgressError && e.code === 'MALFORMED_RESPONSE')
  } finally {
    await up.close()
  }
})

test('errors never carry the query string or header values', async () => {
  const up = await startUpstream(hang)
  try {
    const secret = 'sk-supersecretvalue1234567890'
    for (const call of [
      () => loose.request(`${up.url}/x?api_key=${secret}`, { timeoutMs: 50, headers: { authorization: `Bearer ${secret}` } }),
      () => loose.request(`http://10.0.0.1/?token=${secret}`, { headers: { 'x-api-key': secret } }),
      () => loose.request(`file:///etc/passwd?${secret}`),
      () => loose.request(`${up.url}/x`, { headers: { 'bad\nheader': secret } }),
    ]) {
      const err = await call().then(() => null, (e: unknown) => e as Error)
      assert.ok(err)
      assert.ok(!`${err.message} ${err.stack} ${JSON.stringify(err)}`.includes(secret))
    }
  } finally {
    await up.close()
  }
})

test('pooled keep-alive sockets, bounded per origin', async () => {
  const up = await startUpstream((_req, res) => setTimeout(() => json(res, 200, { ok: true }), 30))
  const pooled = createEgressClient({ ...dev, maxSockets: 2 })
  try {
    const results = await Promise.all(Array.from({ length: 10 }, () => pooled.request(`${up.url}/ping`)))
    assert.ok(results.every((r) => r.status === 200))
    assert.ok(up.connections <= 2, `${up.connections} connections`)
    for (let i = 0; i < 5; i++) await pooled.request(`${up.url}/again`)
    assert.ok(up.connections <= 2, `${up.connections} connections after reuse`)
  } finally {
    await pooled.close()
    await up.close()
  }
})
