import assert from 'node:assert/strict'
import { generateKeyPairSync, verify } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { createGcpBillingProcessor, serviceAccountTokens } from '../../src/core/processors/gcp/index.js'
import { ProcessorConfigError } from '../../src/core/processors/types.js'
import { backendNames } from '../helpers/backends.js'
import { allRows, expectProcessorError, json, makeCtx, setupEnv, startServer, type Env, type TestServer } from './helpers.js'

const LEAK = 'UPSTREAM-LEAK-TEXT'
const DATE = '2026-11-27'
const TOKEN = 'ya29.TOPSECRET-access-token'
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

const row = (service: string, project: string, cost: string, credits: string | null) => ({ f: [{ v: DATE }, { v: service }, { v: project }, { v: 'USD' }, { v: cost }, { v: credits }] })

for (const backend of backendNames()) {
  describe(`gcp.billing on ${backend}`, () => {
    let env: Env
    let server: TestServer
    let mode: 'ok' | 'denied' | 'bad-grant' | 'garbage' = 'ok'
    let sa: string
    before(async () => {
      env = await setupEnv(backend)
      server = await startServer((req, res) => {
        if (req.url.pathname === '/token') {
          const assertion = new URLSearchParams(req.body).get('assertion') ?? ''
          const [h, c, s] = assertion.split('.')
          const ok = verify('RSA-SHA256', Buffer.from(`${h}.${c}`), publicKey, Buffer.from(s ?? '', 'base64url'))
          if (!ok || mode === 'bad-grant') return json(res, 400, { error: 'invalid_grant', error_description: LEAK })
          return json(res, 200, { access_token: TOKEN, expires_in: 3600, token_type: 'Bearer' })
        }
        if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, { error: { message: LEAK } })
        if (mode === 'denied') return json(res, 403, { error: { message: `${LEAK} Access Denied` } })
        if (mode === 'garbage') return json(res, 200, { jobReference: { jobId: 'job_1' }, jobComplete: true, rows: [{ f: [{ v: DATE }] }] })
        const job = { projectId: 'acme-billing', jobId: 'job_1', location: 'US' }
        if (req.method === 'POST' && req.url.pathname === '/bigquery/v2/projects/acme-billing/queries') {
          const body = JSON.parse(req.body)
          assert.equal(body.useLegacySql, false)
          assert.equal(body.parameterMode, 'NAMED')
          assert.deepEqual(body.queryParameters, [{ name: 'date', parameterType: { type: 'DATE' }, parameterValue: { value: DATE } }])
          assert.match(body.query, /FROM `acme-billing\.billing\.gcp_billing_export_v1_0123` WHERE DATE\(usage_start_time\) = @date/)
          return json(res, 200, { kind: 'bigquery#queryResponse', jobReference: job, jobComplete: false })
        }
        if (req.method === 'GET' && req.url.pathname === '/bigquery/v2/projects/acme-billing/queries/job_1') {
          const schema = { fields: ['usage_date', 'service', 'project_id', 'currency', 'cost', 'credits'].map((name) => ({ name })) }
          if (req.url.searchParams.get('pageToken') === 'p2') {
            return json(res, 200, { jobReference: job, jobComplete: true, schema, rows: [row('BigQuery', 'proj-b', '3.5', null)] })
          }
          return json(res, 200, { jobReference: job, jobComplete: true, schema, totalRows: '3', pageToken: 'p2', rows: [row('Compute Engine', 'proj-a', '10.25', '-1.25'), row('Cloud Storage', 'proj-a', '0.5', '0')] })
        }
        json(res, 404, { error: LEAK })
      })
      sa = JSON.stringify({ type: 'service_account', project_id: 'acme-billing', private_key_id: 'k1', private_key: PEM, client_email: 'reader@acme-billing.iam.gserviceaccount.com', token_uri: `${server.url}/token` })
    })
    after(async () => {
      await server.close()
      await env.close()
    })

    const processor = () => createGcpBillingProcessor({ bigqueryBaseUrl: server.url, tokens: serviceAccountTokens(null) })
    const config = { billing_table: 'acme-billing.billing.gcp_billing_export_v1_0123' }
    const ctx = (secret = sa) => makeCtx(env, { provider: 'gcp', secret, parameters: { date: DATE } })

    test("uses the org's service account, polls the job, follows pageToken; loads once; re-run idempotent", async () => {
      mode = 'ok'
      const p = processor()
      const r = await p.run(ctx(), p.validateConfig(config))
      assert.equal(r.rows_processed, 3)
      const rows = await allRows(env.writer('acme'), 'gcp_billing_daily')
      assert.equal(rows.length, 3)
      const compute = rows.find((x) => x.service === 'Compute Engine')!
      assert.deepEqual(compute, { date: DATE, service: 'Compute Engine', project_id: 'proj-a', currency: 'USD', cost: 10.25, credits: -1.25, net_cost: 9 })
      await p.run(ctx(), p.validateConfig(config))
      assert.deepEqual(await allRows(env.writer('acme'), 'gcp_billing_daily'), rows)
    })

    test('rejected key, denied table and malformed rows fail without upstream text or secrets', async () => {
      const p = processor()
      mode = 'bad-grant'
      await expectProcessorError(p.run(ctx(), p.validateConfig(config)), 'UNAUTHORIZED', [LEAK, TOKEN])
      mode = 'denied'
      await expectProcessorError(p.run(ctx(), p.validateConfig(config)), 'UNAUTHORIZED', [LEAK, TOKEN])
      mode = 'garbage'
      await expectProcessorError(p.run(ctx(), p.validateConfig(config)), 'MALFORMED_RESPONSE', [LEAK, TOKEN])
      await expectProcessorError(p.run(ctx('{"type":"user"}'), p.validateConfig(config)), 'CREDENTIAL_UNUSABLE')
      mode = 'ok'
    })

    test('the billing table must be a plain project.dataset.table', () => {
      const p = processor()
      for (const billing_table of ['billing.table', 'a-proj.ds.t`; DROP', 'acme-billing.ds.t WHERE 1=1', 'acme-billing.ds.t--x']) {
        assert.throws(() => p.validateConfig({ billing_table }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'billing_table')
      }
      assert.throws(() => p.validateConfig({ ...config, query: 'SELECT 1' }), (e: unknown) => e instanceof ProcessorConfigError && e.field === 'query')
    })
  })
}
