// The embedded store's WAL is checkpointed by a background thread (core/db/checkpointer.ts): pages
// reach the database file without a commit of ours copying them, and closing the store closes the
// thread's connection first, so the last connection removes the WAL as SQLite does.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { openDatabase } from '../../src/core/db/database.js'

test('pages written to the WAL reach the database file in the background, and close removes the WAL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tf-ckpt-'))
  try {
    const db = openDatabase({ databaseUrl: null, dataDir: dir })
    const file = join(dir, 'tenantflow.db')
    await sql`CREATE TABLE filler (id INTEGER PRIMARY KEY, blob TEXT NOT NULL)`.execute(db.kysely)
    const before = statSync(file).size
    // About 500 pages (2 MB): far below the 4,000 pages at which a commit checkpoints by itself.
    for (let i = 0; i < 50; i++) {
      await db.kysely.transaction().execute(async (trx) => {
        for (let j = 0; j < 10; j++) await sql`INSERT INTO filler (blob) VALUES (${'x'.repeat(4000)})`.execute(trx)
      })
    }
    const deadline = Date.now() + 30_000
    while (statSync(file).size < before + 1_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.ok(statSync(file).size >= before + 1_000_000, `the database file grew by ${statSync(file).size - before} bytes only`)
    assert.ok(existsSync(`${file}-wal`))
    await db.close()
    assert.equal(existsSync(`${file}-wal`), false, 'the last connection to close removes the WAL')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
