// prepared(): compiled once per database, values bound per call, every placeholder must be used.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { sql } from 'kysely'
import { backendNames, freshBackend, needsPostgres } from '../helpers/backends.js'
import { openDatabase } from '../../src/core/db/database.js'
import { migrateToLatest } from '../../src/core/db/migrate.js'
import { prepared } from '../../src/core/db/prepared.js'

for (const backend of backendNames()) {
  describe(`prepared queries (${backend})`, () => {
    test('binds fresh values on every call and refuses unused placeholders', async () => {
      const b = await freshBackend(backend)
      const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir })
      try {
        await migrateToLatest(db)
        const byName = prepared(['name'] as const, (k, p) => k.selectFrom('plans').select(['plan_name', 'daily_limit']).where('plan_name', '=', p.name).limit(1))
        assert.deepEqual(await byName(db.kysely, { name: 'STARTER' }), [{ plan_name: 'STARTER', daily_limit: 6 }])
        assert.deepEqual(await byName(db.kysely, { name: 'SCALE' }), [{ plan_name: 'SCALE', daily_limit: 100 }])
        assert.deepEqual(await byName(db.kysely, { name: "STARTER' OR '1'='1" }), [], 'values are bound, never spliced')
        const unused = prepared(['a', 'b'] as const, (k, p) => k.selectFrom('plans').select('plan_name').where('plan_name', '=', p.a).limit(1))
        await assert.rejects(unused(db.kysely, { a: 'STARTER', b: 'x' }), /every placeholder/)
      } finally {
        await db.close()
        await b.cleanup()
      }
    })
  })
}

test('on PostgreSQL a prepared query is a named statement, planned once per connection', { skip: needsPostgres() }, async () => {
  const b = await freshBackend('postgres')
  // One connection, so the session that prepared the statement is the one asked about it.
  const db = openDatabase({ databaseUrl: b.databaseUrl, dataDir: b.dataDir, poolSize: 1 })
  try {
    await migrateToLatest(db)
    const byName = prepared(['name'] as const, (k, p) => k.selectFrom('plans').select('daily_limit').where('plan_name', '=', p.name).limit(1))
    for (const name of ['STARTER', 'SCALE', 'STARTER']) await byName(db.kysely, { name })
    const named = await sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE ${'%from "plans"%'} LIMIT 10`.execute(db.kysely)
    assert.equal(named.rows.length, 1, 'one named statement, reused by every call')
    assert.match(named.rows[0]!.name, /^tf_\d+$/)
    // An ordinary query is not prepared by name.
    await db.kysely.selectFrom('plans').select('plan_name').limit(1).execute()
    const all = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_prepared_statements`.execute(db.kysely)
    assert.equal(all.rows[0]!.n, 1)
  } finally {
    await db.close()
    await b.cleanup()
  }
})

test('embedded: a prepared read runs at once on an idle connection, and waits for an open transaction instead of reading inside it', async () => {
  const b = await freshBackend('sqlite')
  const db = openDatabase({ databaseUrl: null, dataDir: b.dataDir })
  try {
    await migrateToLatest(db)
    const limitOf = prepared(['name'] as const, (k, p) => k.selectFrom('plans').select('daily_limit').where('plan_name', '=', p.name).limit(1))
    assert.deepEqual(await limitOf(db.kysely, { name: 'STARTER' }), [{ daily_limit: 6 }])
    let release!: () => void
    const hold = new Promise<void>((r) => (release = r))
    let updated!: () => void
    const wrote = new Promise<void>((r) => (updated = r))
    const tx = db.kysely.transaction().execute(async (trx) => {
      await trx.updateTable('plans').set({ daily_limit: 999 }).where('plan_name', '=', 'STARTER').execute()
      updated()
      await hold
      await trx.updateTable('plans').set({ daily_limit: 7 }).where('plan_name', '=', 'STARTER').execute()
    })
    await wrote
    // The transaction holds the connection between its statements: the read must not see 999.
    const read = limitOf(db.kysely, { name: 'STARTER' })
    let settled = false
    void read.then(() => (settled = true))
    await new Promise((r) => setTimeout(r, 20))
    assert.equal(settled, false, 'the read waited for the transaction')
    release()
    await tx
    assert.deepEqual(await read, [{ daily_limit: 7 }], 'it read the committed value')
  } finally {
    await db.close()
    await b.cleanup()
  }
})
