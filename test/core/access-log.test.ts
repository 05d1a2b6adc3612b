// One access line per request, with validated fields only: no header, query or body value reaches it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { buildTestApp } from '../helpers/app.js'
import { createAccessLog, createLogger, flushAccessLines } from '../../src/core/observability/logger.js'

test('each request writes exactly one access line with route template, status, duration, org and request id', async () => {
  const t = await buildTestApp('sqlite', { env: { LOG_LEVEL: 'info' } })
  try {
    const key = await t.onboard('acme-logs')
    t.logs.length = 0
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/v1/organizations/acme-logs/quota',
      headers: { ...t.org(key), 'x-request-id': 'req-123', 'user-agent': 'secret-agent-value' },
    })
    assert.equal(res.statusCode, 200)
    const bad = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/acme-logs/quota?token=leak-me', headers: t.org(key) })
    assert.equal(bad.statusCode, 400)
    // A client may send anything the id pattern admits as its request id, even its key: scrubbed.
    const keyAsId = await t.app.inject({ method: 'GET', url: '/api/v1/organizations/acme-logs/quota', headers: { ...t.org(key), 'x-request-id': key } })
    assert.equal(keyAsId.statusCode, 200)
    await new Promise((r) => setImmediate(r))
    const lines = t.logs.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    const access = lines.filter((l) => l.msg === 'request')
    assert.equal(access.length, 3, `one access line per request: ${t.logs.join('')}`)
    assert.equal(lines.length, 3, 'no other line for a plain request')
    assert.deepEqual(
      { ...access[0], time: undefined, ms: undefined },
      { level: 'info', time: undefined, pid: process.pid, hostname: access[0]!.hostname, req_id: 'req-123', method: 'GET', route: '/api/v1/organizations/:org_slug/quota', status: 200, ms: undefined, org: 'acme-logs', msg: 'request' },
    )
    assert.equal(typeof access[0]!.ms, 'number')
    assert.equal(access[1]!.status, 400)
    assert.equal(access[2]!.status, 200)
    assert.notEqual(access[2]!.req_id, key)
    const text = t.logs.join('')
    for (const leak of [key, 'secret-agent-value', 'leak-me']) assert.ok(!text.includes(leak), `${leak} reached the log`)
  } finally {
    await t.close()
  }
})

test('at warn, requests write no access line', async () => {
  const t = await buildTestApp('sqlite', { env: { LOG_LEVEL: 'warn' } })
  try {
    const key = await t.onboard('acme-quiet')
    t.logs.length = 0
    await t.app.inject({ method: 'GET', url: '/api/v1/organizations/acme-quiet/quota', headers: t.org(key) })
    await new Promise((r) => setImmediate(r))
    assert.equal(t.logs.join(''), '')
  } finally {
    await t.close()
  }
})

test('access lines are written in batches: in order with other lines, within 250 ms, and at once past 4 KB', async () => {
  const chunks: string[] = []
  const logger = createLogger('info', new Writable({ write(chunk, _enc, cb) { chunks.push(String(chunk)); cb() } }))
  const access = createAccessLog(logger)
  const line = (n: number) => ({ req_id: `req-${n}`, method: 'GET', route: '/health', status: 200, ms: 1 })
  access(line(1))
  access(line(2))
  assert.equal(chunks.length, 0, 'two short lines wait')
  logger.error('after two requests')
  const msgs = () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; req_id?: string })
  assert.deepEqual(msgs().map((l) => l.req_id ?? l.msg), ['req-1', 'req-2', 'after two requests'], 'the waiting lines are written first')
  access(line(3))
  await new Promise((r) => setTimeout(r, 400))
  assert.equal(msgs().at(-1)!.req_id, 'req-3', 'written by the timer')
  const before = chunks.length
  for (let i = 0; i < 40; i++) access(line(100 + i))
  assert.ok(chunks.length > before, 'past 4 KB the batch is written without waiting')
  flushAccessLines()
  assert.equal(msgs().filter((l) => l.msg === 'request').length, 43)
})
