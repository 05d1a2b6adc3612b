// The PostgreSQL rate limiter commits on its own pool without waiting for the WAL flush; quotas keep
// the main pool's durable commits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { openDatabase, openRateLimitPool } from '../../src/core/db/database.js'
import { freshBackend, needsPostgres } from '../helpers/backends.js'

test('rate-limit pool: synchronous_commit off; main pool: on', { skip: needsPostgres() }, async () => {
  const b = await freshBackend('postgres')
  const pool = openRateLimitPool(b.databaseUrl!)
  const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir })
  try {
    assert.equal((await pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit, 'off')
    assert.equal((await db.pgPool!.query('SHOW synchronous_commit')).rows[0].synchronous_commit, 'on')
  } finally {
    await pool.end()
    await db.close()
    await b.cleanup()
  }
})
