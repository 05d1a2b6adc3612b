// generic.http_extract loads nothing once its step signal has aborted (issue 8 item 4), even when the
// abort lands after every page was fetched (here: while the table is being created).
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createHttpExtractProcessor, validateHttpExtractConfig } from '../../src/core/processors/generic/index.js'
import type { DatasetWriter } from '../../src/core/datasets/types.js'
import { backendNames } from '../helpers/backends.js'
import { expectProcessorError, json, makeCtx, setupEnv, startServer, tableCount, type Env, type TestServer } from './helpers.js'

const SECRET = 'abort-token-0123456789'
const config = validateHttpExtractConfig({
  path: '/v1/items',
  records_path: 'data',
  fields: { item_id: { path: 'id', type: 'text' } },
  table: { name: 'items', natural_key: ['item_id'] },
})

for (const backend of backendNames()) {
  describe(`generic.http_extract after an abort (${backend})`, () => {
    let env: Env
    let server: TestServer
    before(async () => {
      env = await setupEnv(backend)
      server = await startServer((_req, res) => json(res, 200, { data: [{ id: 'a' }, { id: 'b' }] }))
    })
    after(async () => {
      await server.close()
      await env.close()
    })

    test('an abort between fetching and loading writes no row', async () => {
      const step = new AbortController()
      const real = env.writer('acme')
      // The step times out (or is cancelled) while the table is being created.
      const dataset: DatasetWriter = Object.assign(Object.create(real) as DatasetWriter, {
        ensureTable: async (spec: Parameters<DatasetWriter['ensureTable']>[0]) => {
          await real.ensureTable(spec)
          step.abort(new Error('step timeout'))
        },
        upsertRows: (table: string, rows: Record<string, unknown>[]) => real.upsertRows(table, rows),
      })
      const ctx = makeCtx(env, { signal: step.signal, dataset, secret: SECRET, metadata: { base_url: server.url, auth_type: 'bearer' } })
      await expectProcessorError(createHttpExtractProcessor().run(ctx, config), 'CANCELLED')
      assert.equal(server.requests.length, 1)
      assert.equal(await tableCount(real, 'items'), 0)
      assert.deepEqual(await real.readRows('items', { limit: 10 }), [])
    })
  })
}
