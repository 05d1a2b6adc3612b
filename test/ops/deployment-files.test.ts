// The deployment files say what the code does: compose.yaml (parsed and linted), .env.example (every
// documented variable), the Dockerfile's shape, the systemd units and the LICENSE.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { documentedVariables, parseDockerfile } from './files.js'
import { REPO } from './cli-run.js'

const read = (p: string) => readFileSync(join(REPO, p), 'utf8')
const documented = documentedVariables(read('docs/configuration.md'))

interface Service {
  image?: string
  build?: unknown
  command?: string[]
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test?: string[]; disable?: boolean }
  ports?: string[]
  volumes?: string[]
}

test('compose.yaml: PostgreSQL, Redis, one serve and one worker on the same database and Redis', () => {
  const doc = parse(read('compose.yaml'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> }
  const { postgres, redis, serve, worker } = doc.services
  assert.ok(postgres && redis && serve && worker, 'services postgres, redis, serve, worker')
  assert.match(postgres.image!, /^postgres:\d+/)
  assert.match(redis.image!, /^redis:\d+/)
  assert.ok(postgres.healthcheck?.test && redis.healthcheck?.test)
  assert.deepEqual(serve.command, ['node', 'bin/tenantflow.js', 'serve'])
  assert.deepEqual(worker.command, ['node', 'bin/tenantflow.js', 'worker'])
  assert.equal(serve.build, '.')
  assert.equal(worker.image, serve.image, 'the worker runs the image serve builds')
  assert.match(JSON.stringify(worker.healthcheck?.test), /8081\/health\/live/, 'the worker is probed on its own health port')
  assert.equal(worker.environment?.WORKER_HTTP_PORT, '8081')
  for (const s of [serve, worker]) {
    const env = s.environment!
    assert.equal(env.ENVIRONMENT, 'production')
    assert.match(env.DATABASE_URL!, /^postgres:\/\/tenantflow:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\/tenantflow$/)
    assert.equal(env.REDIS_URL, 'redis://redis:6379')
    // Secrets come from the operator's .env, never from the file; compose refuses to start without them.
    assert.match(env.CA_ROOT_API_KEY!, /^\$\{CA_ROOT_API_KEY:\?/)
    assert.match(env.KMS_LOCAL_MASTER_KEY!, /^\$\{KMS_LOCAL_MASTER_KEY:\?/)
    for (const name of Object.keys(env)) assert.ok(documented.has(name), `${name} is not in docs/configuration.md`)
    assert.equal(s.depends_on?.postgres?.condition, 'service_healthy')
  }
  assert.equal(serve.environment!.HOST, '0.0.0.0')
  assert.ok(serve.ports?.some((p) => p.endsWith(`:${serve.environment!.PORT}`)), 'the API port is published')
  for (const s of Object.values(doc.services)) {
    for (const v of s.volumes ?? []) assert.ok(v.split(':')[0]! in doc.volumes, `named volume ${v}`)
  }
})

test('.env.example lists every documented variable and sets no real secret', () => {
  const text = read('.env.example')
  const listed = new Set([...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!))
  const missing = [...documented].filter((v) => !listed.has(v))
  assert.deepEqual(missing, [], `.env.example lacks: ${missing.join(', ')}`)
  const unknown = [...listed].filter((v) => !documented.has(v) && v !== 'POSTGRES_PASSWORD')
  assert.deepEqual(unknown, [], `.env.example lists variables the code does not read: ${unknown.join(', ')}`)
  for (const secret of ['CA_ROOT_API_KEY', 'KMS_LOCAL_MASTER_KEY', 'WEBHOOK_SIGNING_SECRET', 'POSTGRES_PASSWORD']) {
    assert.match(text, new RegExp(`^#?\\s*${secret}=$`, 'm'), `${secret} is left empty in the example`)
  }
})

test('Dockerfile: multi-stage, non-root, HEALTHCHECK on /health/live, production environment', () => {
  const text = read('Dockerfile')
  const { stages, instructions } = parseDockerfile(text)
  assert.equal(stages.length, 2)
  const final = instructions.filter((i) => i.stage === 1)
  assert.ok(final.some((i) => i.op === 'USER' && i.args === 'node'))
  assert.ok(final.some((i) => i.op === 'HEALTHCHECK' && i.args.includes('/health/live')))
  assert.ok(final.some((i) => i.op === 'ENV' && /ENVIRONMENT=production/.test(i.args)))
  assert.ok(!final.some((i) => i.op === 'RUN' && /npm (ci|install)/.test(i.args)), 'the final stage installs nothing')
  assert.ok(instructions.some((i) => i.stage === 0 && i.op === 'RUN' && /npm prune --omit=dev/.test(i.args)))
  assert.match(read('.dockerignore'), /^node_modules$/m)
})

test('systemd units run the compiled CLI as an unprivileged user and do not restart on a configuration error', () => {
  for (const [file, command] of [['deploy/systemd/tenantflow.service', 'serve'], ['deploy/systemd/tenantflow-worker@.service', 'worker']] as const) {
    const unit = read(file)
    assert.match(unit, new RegExp(`^ExecStart=/usr/bin/node /opt/tenantflow/bin/tenantflow.js ${command}$`, 'm'), file)
    assert.match(unit, /^User=tenantflow$/m)
    assert.match(unit, /^EnvironmentFile=\/etc\/tenantflow\/tenantflow.env$/m)
    assert.match(unit, /^RestartPreventExitStatus=2$/m, 'exit 2 = configuration error (src/cli/README.md)')
    assert.match(unit, /^NoNewPrivileges=true$/m)
  }
})

test('LICENSE is the MIT license package.json declares', () => {
  assert.equal((JSON.parse(read('package.json')) as { license: string }).license, 'MIT')
  assert.match(read('LICENSE'), /^MIT License\n/)
  assert.match(read('LICENSE'), /THE SOFTWARE IS PROVIDED "AS IS"/)
})
