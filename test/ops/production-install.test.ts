// The Dockerfile's steps, run outside Docker (this machine has no Docker engine): the build stage in
// one temp dir, the final stage in another, then the final stage's CMD must serve /health/live and
// its HEALTHCHECK must pass. The one substitution: `npm ci` in the build stage is a copy of this
// checkout's node_modules (installed by `npm ci` from the same lockfile), so the test needs no network
// and compiles no native module. Also proves the documented bare-metal install: after the build
// stage's `npm prune --omit=dev`, `npm start` serves without rebuilding.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { REPO } from './cli-run.js'
import { parseDockerfile } from './files.js'

const npmAvailable = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0
const STEP_TIMEOUT_MS = 8 * 60_000

/** ENV a=b c=d (or ENV a b) as pairs. */
function envPairs(args: string): [string, string][] {
  const m = [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)].map((x) => [x[1]!, x[2]!.replace(/^"|"$/g, '')] as [string, string])
  return m.length ? m : [[args.split(' ')[0]!, args.split(' ').slice(1).join(' ')]]
}

function sh(cmd: string, cwd: string, env: Record<string, string>): void {
  const r = spawnSync('sh', ['-c', cmd], { cwd, env, encoding: 'utf8', timeout: STEP_TIMEOUT_MS })
  assert.equal(r.status, 0, `RUN ${cmd} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`)
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

async function serveUntilLive(cmd: string[], cwd: string, env: Record<string, string>, port: number): Promise<{ child: ChildProcess; output: () => string }> {
  // Own process group, so stop() reaches a server started through `npm start` too.
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  const deadline = Date.now() + 180_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd.join(' ')} exited ${child.exitCode}:\n${out}`)
    const res = await fetch(`http://127.0.0.1:${port}/health/live`).catch(() => null)
    if (res?.status === 200) return { child, output: () => out }
    if (Date.now() > deadline) {
      process.kill(-child.pid!, 'SIGKILL')
      throw new Error(`no 200 from /health/live:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 250))
  }
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode
  const exited = once(child, 'exit')
  process.kill(-child.pid!, 'SIGTERM')
  const [code] = await exited
  return code as number | null
}

/** Copies the build context like `COPY . .` with .dockerignore's root-level names left out. */
function copyContext(to: string): void {
  const ignored = new Set(readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')))
  cpSync(REPO, to, {
    recursive: true,
    filter: (src) => {
      const rel = src.slice(REPO.length + 1)
      if (!rel) return true
      const first = rel.split('/')[0]!
      return !ignored.has(first) && !(ignored.has('*.log') && rel.endsWith('.log'))
    },
  })
}

test('the Dockerfile build and final stages install production dependencies only and serve /health/live', { skip: npmAvailable ? false : 'npm is not available', timeout: 30 * 60_000 }, async () => {
  const { stages, instructions } = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'))
  assert.equal(stages.length, 2, 'a build stage and a final stage')
  const root = mkdtempSync(join(tmpdir(), 'tf-prod-'))
  const build = join(root, 'build') // the build stage's /app
  const app = join(root, 'app') // the final stage's /app
  const dataDir = join(root, 'data')
  const baseEnv: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? root, npm_config_offline: 'true', npm_config_update_notifier: 'false' }
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  try {
    // ---- build stage
    let finalEnv: Record<string, string> = {}
    let cmd: string[] | null = null
    let healthcheck: string[] | null = null
    let user: string | null = null
    mkdirSync(build, { recursive: true })
    for (const ins of instructions) {
      const here = ins.stage === 0 ? build : app
      if (ins.op === 'WORKDIR') {
        assert.equal(ins.args, '/app')
        mkdirSync(here, { recursive: true })
      } else if (ins.op === 'COPY' && ins.stage === 0) {
        if (ins.args === '. .') copyContext(build)
        else {
          const parts = ins.args.split(' ')
          for (const src of parts.slice(0, -1)) cpSync(join(REPO, src), join(build, src))
        }
      } else if (ins.op === 'COPY') {
        const m = /^--from=(\S+) (.+) (\S+)$/.exec(ins.args)
        assert.ok(m, `the final stage copies from the build stage only: COPY ${ins.args}`)
        assert.equal(m[1], stages[0])
        const dest = join(app, m[3]!)
        for (const src of m[2]!.split(' ')) {
          assert.ok(src.startsWith('/app/'), src)
          const from = join(build, src.slice('/app/'.length))
          const to = m[3]!.endsWith('/') ? join(dest, src.split('/').pop()!) : dest
          mkdirSync(dirname(to), { recursive: true })
          cpSync(from, to, { recursive: true, verbatimSymlinks: true })
        }
      } else if (ins.op === 'RUN' && ins.stage === 0) {
        if (/^npm ci\b/.test(ins.args)) {
          cpSync(join(REPO, 'node_modules'), join(build, 'node_modules'), { recursive: true, verbatimSymlinks: true })
        } else sh(ins.args, build, baseEnv)
      } else if (ins.op === 'RUN') {
        // The final stage only creates the (volume) data directory; here that is a temp dir.
        assert.match(ins.args, /^install -d -o node -g node -m 0700 \/var\/lib\/tenantflow$/)
        mkdirSync(dataDir, { recursive: true, mode: 0o700 })
      } else if (ins.op === 'ENV' && ins.stage === 1) {
        finalEnv = { ...finalEnv, ...Object.fromEntries(envPairs(ins.args)) }
      } else if (ins.op === 'USER') user = ins.args
      else if (ins.op === 'CMD') cmd = JSON.parse(ins.args) as string[]
      else if (ins.op === 'HEALTHCHECK') {
        const m = /CMD (\[.*\])$/.exec(ins.args)
        assert.ok(m, 'HEALTHCHECK in exec form')
        healthcheck = JSON.parse(m[1]!) as string[]
      }
    }
    assert.ok(user && user !== 'root' && user !== '0', 'the final stage runs as a non-root user')
    assert.ok(cmd && healthcheck)
    assert.ok(healthcheck.join(' ').includes('/health/live'))
    assert.equal(finalEnv.ENVIRONMENT, 'production')

    // ---- no dev dependency in the final stage (per the lockfile's dev flags)
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => path.startsWith('node_modules/') && p.dev).map(([path]) => path)
    assert.ok(devOnly.length > 0)
    const shipped = devOnly.filter((path) => existsSync(join(app, path)))
    assert.deepEqual(shipped, [], 'dev dependencies in the final stage')
    for (const name of ['typescript', 'tsx']) assert.equal(existsSync(join(app, 'node_modules', name)), false, name)
    assert.equal(existsSync(join(app, 'src')), false, 'sources are not shipped')

    const secrets = { CA_ROOT_API_KEY: 'prod-install-root-key-0123456789abcdefgh', KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 6).toString('base64') }
    // ---- the final stage's CMD and HEALTHCHECK
    const port = await freePort()
    const env = { ...baseEnv, ...finalEnv, ...secrets, DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn' }
    const server = await serveUntilLive(cmd, app, env, port)
    try {
      const hc = spawnSync(healthcheck[0]!, healthcheck.slice(1), { cwd: app, env, encoding: 'utf8', timeout: 60_000 })
      assert.equal(hc.status, 0, `HEALTHCHECK failed: ${hc.stderr}`)
    } finally {
      assert.equal(await stop(server.child), 0, server.output())
    }

    // ---- bare metal: the pruned build stage is the documented install; npm start must not rebuild
    const check = spawnSync('node', ['scripts/build-state.mjs', '--check'], { cwd: build, env: baseEnv })
    assert.equal(check.status, 0, 'npm run build recorded its inputs')
    const port2 = await freePort()
    const bare = await serveUntilLive(['npm', 'start', '--', '--port', String(port2), '--host', '127.0.0.1'], build, { ...baseEnv, ...secrets, ENVIRONMENT: 'production', DATA_DIR: join(root, 'data2'), LOG_LEVEL: 'warn' }, port2)
    // npm itself gets the group's SIGTERM and dies of it (exit code null); the server under it stops cleanly.
    assert.ok([0, null].includes(await stop(bare.child)), bare.output())
    assert.ok(!bare.output().includes('building'), `npm start rebuilt a current build:\n${bare.output()}`)
    // A changed source makes the build stale; without the dev dependencies npm start says how to fix it.
    writeFileSync(join(build, 'src', 'cli.ts'), readFileSync(join(build, 'src', 'cli.ts'), 'utf8') + '\n// changed\n')
    const stale = spawnSync('npm', ['start'], { cwd: build, env: { ...baseEnv, ...secrets, DATA_DIR: join(root, 'data3') }, encoding: 'utf8', timeout: 120_000 })
    assert.notEqual(stale.status, 0)
    assert.match(stale.stderr, /npm ci && npm run build && npm prune --omit=dev/)
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})
