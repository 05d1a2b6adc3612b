// `tenantflow worker` takes no scheduler leadership unless --scheduler is given.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { freshBackend, needsPostgres, testEnv } from '../helpers/backends.js'
import { REPO } from './cli-run.js'

interface Worker {
  child: ChildProcess
  output: () => string
  waitFor(text: string): Promise<void>
  stop(): Promise<number | null>
}

function startWorker(args: string[], env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli.ts'), 'worker', ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  return {
    child,
    output: () => out,
    async waitFor(text) {
      const deadline = Date.now() + 90_000
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode}) before "${text}":\n${out}`)
        if (Date.now() > deadline) throw new Error(`no "${text}" from the worker:\n${out}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit')
      return code as number | null
    },
  }
}

const startedLine = (out: string) => JSON.parse(out.split('\n').find((l) => l.includes('tenantflow worker started'))!) as { scheduler: boolean }

test('on PostgreSQL a plain worker never competes for the scheduler lock; worker --scheduler takes it', { skip: needsPostgres() }, async () => {
  const b = await freshBackend('postgres')
  const env = testEnv(b, { LOG_LEVEL: 'info', SCHEDULER_TICK_MS: '50', WORKER_POLL_MS: '100' })
  const plain = startWorker([], env)
  let leader: Worker | null = null
  try {
    await plain.waitFor('tenantflow worker started')
    assert.equal(startedLine(plain.output()).scheduler, false)
    // The plain worker had every tick of the second process's whole startup to take the lock first.
    leader = startWorker(['--scheduler'], env)
    await leader.waitFor('scheduler leadership acquired')
    assert.equal(startedLine(leader.output()).scheduler, true)
    assert.ok(!plain.output().includes('scheduler leadership acquired'), plain.output())
    assert.equal(await leader.stop(), 0)
    assert.equal(await plain.stop(), 0)
  } finally {
    for (const w of [plain, leader]) if (w && w.child.exitCode === null) w.child.kill('SIGKILL')
    await b.cleanup()
  }
})

test('SCHEDULER_ENABLED=false wins over --scheduler', async () => {
  const b = await freshBackend('sqlite')
  const w = startWorker(['--scheduler'], testEnv(b, { LOG_LEVEL: 'info', SCHEDULER_ENABLED: 'false' }))
  try {
    await w.waitFor('tenantflow worker started')
    assert.equal(startedLine(w.output()).scheduler, false)
    assert.equal(await w.stop(), 0)
  } finally {
    if (w.child.exitCode === null) w.child.kill('SIGKILL')
    await b.cleanup()
  }
})
