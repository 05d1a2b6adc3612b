// WORKER_LEASE_MS vs WORKER_HEARTBEAT_MS (issue 8 item 7): a lease shorter than two heartbeats is
// refused at startup; without an explicit heartbeat it is derived from the lease.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '../../src/app/config.js'
import { WorkerPool } from '../../src/core/pipelines/worker.js'

const env = (extra: Record<string, string>) => ({
  ENVIRONMENT: 'development',
  CA_ROOT_API_KEY: 'l'.repeat(40),
  KMS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64'),
  DATA_DIR: mkdtempSync(join(tmpdir(), 'tf-lease-')),
  ...extra,
})

describe('worker lease vs heartbeat', () => {
  test('a lease below two heartbeats is refused, naming the heartbeat variable', () => {
    for (const [lease, beat] of [['5000', '10000'], ['10000', '10000'], ['10000', '5001']]) {
      assert.throws(
        () => loadConfig(env({ WORKER_LEASE_MS: lease!, WORKER_HEARTBEAT_MS: beat! })),
        (err: unknown) => err instanceof ConfigError && err.variable === 'WORKER_HEARTBEAT_MS',
        `lease ${lease} / heartbeat ${beat}`,
      )
    }
  })

  test('a valid pair is kept as given', () => {
    const c = loadConfig(env({ WORKER_LEASE_MS: '10000', WORKER_HEARTBEAT_MS: '5000' }))
    assert.deepEqual([c.workers.leaseMs, c.workers.heartbeatMs], [10_000, 5_000])
  })

  test('without WORKER_HEARTBEAT_MS the heartbeat is derived from the lease', () => {
    const short = loadConfig(env({ WORKER_LEASE_MS: '3000' }))
    assert.equal(short.workers.leaseMs, 3000)
    assert.ok(short.workers.heartbeatMs * 2 <= 3000, `heartbeat ${short.workers.heartbeatMs}`)
    const defaults = loadConfig(env({}))
    assert.deepEqual([defaults.workers.leaseMs, defaults.workers.heartbeatMs], [30_000, 10_000])
  })

  test('a worker pool refuses a lease its heartbeat cannot keep', () => {
    const opts = { concurrency: 1, leaseMs: 1000, heartbeatMs: 1000, pollMs: 50 }
    assert.throws(() => new WorkerPool({} as never, opts), RangeError)
  })
})
