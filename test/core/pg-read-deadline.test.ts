// PostgreSQL queries run under the store's own client-side read deadline (core/db/database.ts), on
// pg's callback path: a query past the deadline fails, every calling style still works, and a finished
// query's rows are garbage as soon as it returns (pg's promise path and query_timeout timer kept them
// reachable until the next full collection, so every result outlived the young-generation collections).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { sql } from 'kysely'
import { openDatabase } from '../../src/core/db/database.js'
import { freshBackend, needsPostgres } from '../helpers/backends.js'

test('a query past the read deadline fails; Kysely, pool.query with and without a callback, and a checked-out client all run under it', { skip: needsPostgres() }, async () => {
  const b = await freshBackend('postgres')
  const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 2, queryReadTimeoutMs: 300 })
  try {
    const pool = db.pgPool!
    assert.deepEqual((await sql<{ n: number }>`SELECT ${41}::int + 1 AS n`.execute(db.kysely)).rows, [{ n: 42 }])
    assert.deepEqual((await pool.query('SELECT $1::int + 1 AS n', [1])).rows, [{ n: 2 }])
    const viaCallback = await new Promise<unknown>((resolve, reject) =>
      pool.query('SELECT $1::text AS s', ['x'], (err, res) => (err ? reject(err) : resolve(res.rows))),
    )
    assert.deepEqual(viaCallback, [{ s: 'x' }])
    await assert.rejects(sql`SELECT pg_sleep(2)`.execute(db.kysely), /Query read timeout/)
    await assert.rejects(pool.query('SELECT pg_sleep(2)'), /Query read timeout/)
    const client = await pool.connect()
    try {
      await assert.rejects(client.query('SELECT $1::int / 0 AS n', [1]), /division by zero/, 'a server error still reaches the caller')
    } finally {
      client.release()
    }
  } finally {
    await db.close()
    await b.cleanup()
  }
})

test("a finished query's rows do not outlive it into the old generation", { skip: needsPostgres() }, async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as (o?: { type: 'major' | 'minor' }) => void
  const b = await freshBackend('postgres')
  const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 1 })
  try {
    // About 20 kB of rows per query, 300 queries: about 6 MB of results in all.
    const rows = sql`SELECT ${sql.raw(Array.from({ length: 24 }, (_, i) => `'abcdefghij' || g AS c${i}`).join(', '))} FROM generate_series(1, 51) AS g`
    const kept: number[] = []
    for (let round = 0; round < 3; round++) {
      gc()
      for (let i = 0; i < 300; i++) await rows.execute(db.kysely)
      gc({ type: 'minor' })
      gc({ type: 'minor' })
      const afterMinor = process.memoryUsage().heapUsed
      gc()
      kept.push(afterMinor - process.memoryUsage().heapUsed)
    }
    // Dead results still in the heap after two young-generation collections: nearly all of them (about
    // 6 MB) when they stay reachable until a full collection; a fraction of a megabyte otherwise.
    const median = [...kept].sort((x, y) => x - y)[1]!
    assert.ok(median < 2_000_000, `${(median / 1e6).toFixed(1)} MB of finished results outlived two minor collections`)
  } finally {
    await db.close()
    await b.cleanup()
  }
})
