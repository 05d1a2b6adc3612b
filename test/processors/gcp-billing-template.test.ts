// The shipped gcp/billing/daily template serves every tenant with its own billing export: the table
// comes from each org's gcp integration metadata (checked at setup and at run time), not from the
// template. Runs the template's step against the local BigQuery/token fake, as gcp.test.ts does.
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { serviceAccountTokens } from '../../src/core/processors/gcp/index.js'
import { registerBuiltinProcessors } from '../../src/core/processors/builtin.js'
import { ProcessorRegistry } from '../../src/core/processors/registry.js'
import { TemplateCatalog } from '../../src/core/pipelines/templates.js'
import { providerModule } from '../../src/core/integrations/providers/index.js'
import { CredentialFormatError } from '../../src/core/integrations/providers/types.js'
import { backendNames } from '../helpers/backends.js'
import { allRows, expectProcessorError, json, makeCtx, setupEnv, startServer, type Env, type TestServer } from './helpers.js'

const DATE = '2026-11-27'
const TOKEN = 'ya29.template-test-token'
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const TABLES: Record<string, string> = {
  acme: 'acme-billing.billing.gcp_billing_export_v1_AAAA',
  globex: 'globex-finops.exports.gcp_billing_export_v1_BBBB',
}

for (const backend of backendNames()) {
  describe(`gcp/billing/daily template on ${backend}`, () => {
    let env: Env
    let server: TestServer
    const queried: { project: string; table: string }[] = []
    let sa: (project: string) => string
    before(async () => {
      env = await setupEnv(backend, ['acme', 'globex'])
      server = await startServer((req, res) => {
        if (req.url.pathname === '/token') return json(res, 200, { access_token: TOKEN, expires_in: 3600, token_type: 'Bearer' })
        if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, {})
        const m = req.url.pathname.match(/^\/bigquery\/v2\/projects\/([a-z0-9-]+)\/queries$/)
        if (req.method === 'POST' && m) {
          const table = (JSON.parse(req.body).query as string).match(/FROM `([^`]+)`/)?.[1] ?? ''
          queried.push({ project: m[1]!, table })
          const project = table.split('.')[0]!
          return json(res, 200, {
            jobReference: { projectId: m[1], jobId: 'job_1' },
            jobComplete: true,
            rows: [{ f: [{ v: DATE }, { v: 'Compute Engine' }, { v: project }, { v: 'USD' }, { v: '2.5' }, { v: '-0.5' }] }],
          })
        }
        json(res, 404, {})
      })
      sa = (project) =>
        JSON.stringify({ type: 'service_account', project_id: project, private_key_id: 'k1', private_key: PEM, client_email: `reader@${project}.iam.gserviceaccount.com`, token_uri: `${server.url}/token` })
    })
    after(async () => {
      await server.close()
      await env.close()
    })

    const template = () => {
      const registry = registerBuiltinProcessors(new ProcessorRegistry(), {
        openaiBaseUrl: server.url,
        anthropicBaseUrl: server.url,
        bigqueryBaseUrl: server.url,
        gcpTokens: serviceAccountTokens(null),
      })
      const catalog = TemplateCatalog.load({ builtinDir: join(import.meta.dirname, '..', '..', 'configs', 'pipelines'), extraDirs: [], registry })
      const t = catalog.getById('gcp/billing/daily')
      assert.ok(t, 'the shipped template loads')
      return { t, processor: registry.get('gcp.billing')! }
    }

    test('each org reads the billing table named in its own gcp integration metadata', async () => {
      const { t, processor } = template()
      assert.equal(t.integration, 'gcp')
      const step = t.steps[0]!
      assert.equal((step.config as { billing_table?: string }).billing_table, undefined, 'the shared template names no table')
      for (const org of ['acme', 'globex']) {
        const project = TABLES[org]!.split('.')[0]!
        const ctx = makeCtx(env, { org, provider: 'gcp', secret: sa(project), metadata: { billing_table: TABLES[org] }, parameters: { date: DATE } })
        const r = await processor.run(ctx, step.config)
        assert.equal(r.rows_processed, 1)
        assert.deepEqual((r.output as { billing_table: string }).billing_table, TABLES[org])
      }
      assert.deepEqual(queried.splice(0), [
        { project: 'acme-billing', table: TABLES.acme },
        { project: 'globex-finops', table: TABLES.globex },
      ])
      // Each org's rows land in its own dataset only.
      assert.deepEqual((await allRows(env.writer('acme'), 'gcp_billing_daily')).map((x) => x.project_id), ['acme-billing'])
      assert.deepEqual((await allRows(env.writer('globex'), 'gcp_billing_daily')).map((x) => x.project_id), ['globex-finops'])
    })

    test('a missing or malformed metadata.billing_table fails the step before any query', async () => {
      const { t, processor } = template()
      const step = t.steps[0]!
      for (const metadata of [{}, { billing_table: 'acme-billing.ds.t`; DROP TABLE x' }, { billing_table: 42 }]) {
        const ctx = makeCtx(env, { provider: 'gcp', secret: sa('acme-billing'), metadata, parameters: { date: DATE } })
        await expectProcessorError(processor.run(ctx, step.config), 'INTEGRATION_NOT_CONFIGURED')
      }
      assert.deepEqual(queried, [])
    })
  })
}

describe('gcp integration metadata', () => {
  const { privateKey: k } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const key = JSON.stringify({ type: 'service_account', project_id: 'acme-billing', private_key: k.export({ type: 'pkcs8', format: 'pem' }).toString(), client_email: 'r@acme-billing.iam.gserviceaccount.com', token_uri: 'https://oauth2.googleapis.com/token' })
  const gcp = providerModule('gcp')
  const cfg = {} as never

  test('billing_table and billing_location are checked at setup', () => {
    const ok = gcp.checkFormat(key, { billing_table: TABLES.acme, billing_location: 'EU' }, cfg)
    assert.equal(ok.billing_table, TABLES.acme)
    for (const [field, metadata] of [
      ['metadata.billing_table', { billing_table: 'not-a-table' }],
      ['metadata.billing_table', { billing_table: 'acme-billing.ds.t WHERE 1=1' }],
      ['metadata.billing_location', { billing_location: 'EU; DROP' }],
    ] as const) {
      assert.throws(() => gcp.checkFormat(key, { ...metadata }, cfg), (e: unknown) => e instanceof CredentialFormatError && e.field === field)
    }
  })
})
