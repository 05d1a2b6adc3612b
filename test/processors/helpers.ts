// Test scaffolding for processors: a fresh backend with one or more org datasets, a local HTTP
// server the test scripts, the real egress client (loopback allowed) and a ProcessorContext built
// by hand, as the engine would.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { openDatabase, type Db } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { createDataset, openDatasetWriter } from '../../src/core/datasets/index.js'
import type { DatasetWriter } from '../../src/core/datasets/types.js'
import { createEgressClient } from '../../src/core/http/egress.js'
import type { EgressClient } from '../../src/core/http/types.js'
import type { DecryptedCredential, IntegrationProvider, ProcessorContext, StepResult } from '../../src/core/processors/types.js'
import { ProcessorError } from '../../src/core/processors/types.js'
import { freshBackend, type BackendName, type TestBackend } from '../helpers/backends.js'

export interface Env {
  backend: TestBackend
  db: Db
  http: EgressClient & { close(): Promise<void> }
  writer(org: string): DatasetWriter
  close(): Promise<void>
}

export async function setupEnv(name: BackendName, orgs: string[] = ['acme']): Promise<Env> {
  const backend = await freshBackend(name)
  const db = openDatabase({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir, poolSize: 4 })
  await migrateToLatest(db)
  const ids = new Map<string, string>()
  for (const org of orgs) ids.set(org, await createDataset(db, backend.dataDir, org))
  const http = createEgressClient({ allowLoopback: true, production: false, allowedHosts: [], timeoutMs: 5000, maxSockets: 16 })
  return {
    backend,
    db,
    http,
    writer: (org) => openDatasetWriter(db, backend.dataDir, { orgSlug: org, datasetId: ids.get(org)! }),
    close: async () => {
      await http.close()
      await db.close()
      await backend.cleanup()
    },
  }
}

export interface Recorded {
  method: string
  url: URL
  headers: IncomingMessage['headers']
  body: string
}

export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>

export interface TestServer {
  url: string
  requests: Recorded[]
  close(): Promise<void>
}

export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: Recorded[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rec: Recorded = { method: req.method ?? 'GET', url: new URL(req.url ?? '/', 'http://127.0.0.1'), headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      requests.push(rec)
      Promise.resolve()
        .then(() => handler(rec, res))
        .catch(() => {
          res.statusCode = 599
          res.end()
        })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(typeof body === 'string' ? body : JSON.stringify(body))
}

export interface CtxOptions {
  org?: string
  provider?: IntegrationProvider
  secret?: string | null
  metadata?: Record<string, unknown>
  parameters?: Record<string, unknown>
  now?: number
  upstream?: Record<string, StepResult & { status: string }>
  signal?: AbortSignal
  dataset?: DatasetWriter
}

export function makeCtx(env: Env, o: CtxOptions = {}): ProcessorContext {
  const org = o.org ?? 'acme'
  return {
    org: { slug: org, datasetId: env.writer(org).datasetId },
    run: { runId: 'run_test0000000000', pipelineId: 'test/pipeline/daily', triggerType: 'api' },
    step: { stepId: 'step', attempt: 1 },
    parameters: Object.freeze({ ...(o.parameters ?? {}) }),
    signal: o.signal ?? AbortSignal.timeout(30_000),
    http: env.http,
    dataset: o.dataset ?? env.writer(org),
    upstream: Object.freeze({ ...(o.upstream ?? {}) }),
    getCredential: async (): Promise<DecryptedCredential> => {
      if (o.secret === null) throw new ProcessorError('INTEGRATION_NOT_CONFIGURED', 'Integration not configured')
      return { provider: o.provider ?? 'http', credential_id: 'cred_test', secret: o.secret ?? 'test-secret', metadata: o.metadata ?? {} }
    },
    now: () => o.now ?? Date.parse('2026-11-28T06:00:00Z'),
  }
}

/** Asserts a ProcessorError with `code`, whose message leaks none of `forbidden`. */
export async function expectProcessorError(p: Promise<unknown>, code: string, forbidden: string[] = []): Promise<ProcessorError> {
  try {
    await p
  } catch (err) {
    if (!(err instanceof ProcessorError)) throw new Error(`expected ProcessorError ${code}, got ${(err as Error)?.name}: ${(err as Error)?.message}`)
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code}: ${err.message}`)
    for (const f of forbidden) if (err.message.includes(f)) throw new Error(`error message leaks ${JSON.stringify(f)}`)
    return err
  }
  throw new Error(`expected ProcessorError ${code}, but the call succeeded`)
}

export async function tableCount(w: DatasetWriter, table: string): Promise<number> {
  const t = (await w.listTables()).find((x) => x.name === table)
  return t ? t.rowCount : -1
}

/** Every row of a table through the read API. */
export async function allRows(w: DatasetWriter, table: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  let cursor: string | undefined
  for (;;) {
    const p = await w.readPage(table, { limit: 1000, cursor })
    out.push(...p.rows)
    if (!p.nextCursor) return out
    cursor = p.nextCursor
  }
}
