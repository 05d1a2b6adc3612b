// Starts bench/fastapi_quota.py under uvicorn (Debian's python3-fastapi / python3-uvicorn) for the
// side-by-side case; null when they are not installed.
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3'

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

export async function startFastApi(body: unknown, apiKey: string): Promise<{ url: string; stop: () => Promise<void> } | null> {
  if (spawnSync(PYTHON, ['-c', 'import fastapi, uvicorn'], { stdio: 'ignore' }).status !== 0) return null
  const port = await freePort()
  const child = spawn(PYTHON, ['-m', 'uvicorn', 'fastapi_quota:app', '--app-dir', dirname(fileURLToPath(import.meta.url)), '--host', '127.0.0.1', '--port', String(port), '--no-access-log', '--log-level', 'warning'], {
    env: { ...process.env, BENCH_FASTAPI_KEY: apiKey, BENCH_FASTAPI_BODY: JSON.stringify(body) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      const r = await fetch(`${url}/quota`, { headers: { 'x-api-key': apiKey } })
      if (r.status === 200) break
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill()
      throw new Error('FastAPI did not start')
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}
