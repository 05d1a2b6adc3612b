// Fresh quota reads (issue 12): concurrent reads are coalesced into one statement that starts after
// each read arrived (PostgreSQL: what arrives during a round trip; SQLite: what arrives in one turn of
// the event loop). A read asked after an admission committed
// (here through another handle, as another process would) sees it, even while a statement was already
// in flight when it arrived.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { KyselyPlugin, PluginTransformResultArgs, QueryResult, UnknownRow } from 'kysely'
import { ReadCoalescer } from '../../src/core/db/coalesce.js'
import { usageReader } from '../../src/core/orgs/usage.js'
import { admitRun } from '../../src/core/orgs/admission.js'
import type { Db } from '../../src/core/db/database.js'
import { backendNames } from '../helpers/backends.js'
import { buildTestApp } from '../helpers/app.js'
import { admitInput, createOrg, openStore, reopen } from '../engine/fixtures.js'

function gate() {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  return { opened, open }
}

describe('read coalescer', () => {
  test('a read arriving while a statement is in flight is answered by the next statement, not that one', async () => {
    const sent: string[][] = []
    const first = gate()
    const c = new ReadCoalescer<string, number>(async (keys) => {
      sent.push(keys)
      const statement = sent.length
      if (statement === 1) await first.opened
      return new Map(keys.map((k) => [k, statement]))
    })
    const early = c.read('a')
    await new Promise((r) => setImmediate(r))
    assert.equal(sent.length, 1, 'the first read of a quiet moment is sent at once')
    const late = c.read('a')
    await new Promise((r) => setImmediate(r))
    assert.equal(sent.length, 1, 'nothing else is sent while the first statement runs')
    first.open()
    assert.equal(await early, 1)
    assert.equal(await late, 2, 'the late read got the statement sent after it arrived')
    assert.deepEqual(sent, [['a'], ['a']])
  })

  test('reads waiting together go in one statement per 100 distinct keys; each gets its own key, a missing key null', async () => {
    const sent: string[][] = []
    const first = gate()
    const c = new ReadCoalescer<string, string>(async (keys) => {
      sent.push(keys)
      if (sent.length === 1) await first.opened
      return new Map(keys.filter((k) => k !== 'ghost').map((k) => [k, `row of ${k}`]))
    })
    const opener = c.read('k0')
    const keys = [...Array.from({ length: 250 }, (_, i) => `k${i}`), 'ghost', 'k7', 'k7']
    const reads = keys.map((k) => c.read(k))
    first.open()
    await opener
    const answers = await Promise.all(reads)
    assert.deepEqual(answers, keys.map((k) => (k === 'ghost' ? null : `row of ${k}`)))
    assert.deepEqual(sent.map((s) => s.length), [1, 100, 100, 51])
    assert.equal(new Set(sent.slice(1).flat()).size, 251, 'every distinct key read once after the first statement')
  })

  test('an error fails every read of its statement, and the next statement is sent', async () => {
    let n = 0
    const first = gate()
    const c = new ReadCoalescer<string, number>(async (keys) => {
      n++
      if (n === 1) await first.opened
      if (n === 2) throw new Error('connection terminated')
      if (n === 3) throw new Error('another failure')
      return new Map(keys.map((k) => [k, n]))
    })
    const opener = c.read('a')
    const failed = [c.read('a'), c.read('b'), c.read('c')]
    first.open()
    assert.equal(await opener, 1)
    for (const f of failed) await assert.rejects(f, /connection terminated/)
    await assert.rejects(c.read('a'), /another failure/)
    assert.equal(await c.read('b'), 4, 'not stuck after failures')
  })

  test('nextTurn: reads asked in one turn go together in one statement, run on the next turn, never before a read was asked', async () => {
    const sent: string[][] = []
    const c = new ReadCoalescer<string, number>(async (keys) => {
      sent.push(keys)
      return new Map(keys.map((k) => [k, sent.length]))
    }, 100, 1, true)
    const first = ['a', 'b', 'a'].map((k) => c.read(k))
    assert.equal(sent.length, 0, 'nothing is sent in the turn the reads were asked in')
    assert.deepEqual(await Promise.all(first), [1, 1, 1])
    assert.deepEqual(sent, [['a', 'b']])
    const later = c.read('a')
    assert.equal(await later, 2, 'a read of a later turn gets a statement of its own')
  })

  test('a run that throws before returning a promise fails its reads without wedging the coalescer', async () => {
    let n = 0
    const c = new ReadCoalescer<string, number>((keys) => {
      if (n++ === 0) throw new Error('bad input')
      return Promise.resolve(new Map(keys.map((k) => [k, n])))
    })
    await assert.rejects(c.read('a'), /bad input/)
    assert.equal(await c.read('a'), 2)
  })
})

/** Counts the statements a handle runs; can hold a statement's result (after it ran) or fail it. */
class Probe implements KyselyPlugin {
  statements = 0
  private holds = new Map<number, { reached: () => void; opened: Promise<void> }>()
  private failures = new Set<number>()
  transformQuery(args: Parameters<KyselyPlugin['transformQuery']>[0]) {
    return args.node
  }
  /** Holds the answer of statement `n` (1-based, counted from now on); resolves once it has run. */
  hold(n: number): { ran: Promise<void>; release: () => void } {
    const g = gate()
    let reached!: () => void
    const ran = new Promise<void>((r) => (reached = r))
    this.holds.set(this.statements + n, { reached, opened: g.opened })
    return { ran, release: g.open }
  }
  fail(n: number): void {
    this.failures.add(this.statements + n)
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const n = ++this.statements
    const h = this.holds.get(n)
    if (h) {
      h.reached()
      await h.opened
    }
    if (this.failures.has(n)) throw new Error('statement failed on purpose')
    return args.result
  }
}

function probed(db: Db) {
  const probe = new Probe()
  return { probe, read: usageReader({ kysely: db.kysely.withPlugin(probe), dialect: db.dialect }, () => Date.now()) }
}

for (const backend of backendNames()) {
  describe(`quota reads (${backend})`, () => {
    test('a read asked after an admission committed sees it, though a read started before the commit was still running', async () => {
      const store = await openStore(backend)
      const other = reopen(store)
      try {
        await createOrg(store.db, 'fresh', { concurrent_limit: 10 })
        const { probe, read } = probed(store.db)
        const held = probe.hold(1)
        const early = read('fresh')
        await held.ran
        assert.equal((await admitRun(other, admitInput('fresh', 'test/basic/noop', { n: 1 }, Date.now()))).kind, 'admitted')
        const late = read('fresh')
        held.release()
        const [e, l] = [await early, await late]
        assert.equal(e!.concurrent.running, 0, 'the early read ran before the commit')
        assert.equal(l!.concurrent.running, 1, 'the late read sees the admission')
        assert.equal(l!.daily.used, 1)
        assert.equal(l!.concurrent.remaining, 9)
        assert.equal(probe.statements, 2)
      } finally {
        await other.close()
        await store.cleanup()
      }
    })

    test('40 concurrent reads of one org: one shared statement after the first on PostgreSQL, one for the turn on SQLite', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'hot', { daily_limit: 77 })
        await admitRun(store.db, admitInput('hot', 'test/basic/noop', { n: 1 }, Date.now()))
        const { probe, read } = probed(store.db)
        const answers = await Promise.all(Array.from({ length: 40 }, () => read('hot')))
        for (const a of answers) {
          assert.equal(a!.org_slug, 'hot')
          assert.equal(a!.daily.used, 1)
          assert.equal(a!.daily.limit, 77)
        }
        if (backend === 'postgres') assert.ok(probe.statements <= 2, `${probe.statements} statements`)
        else assert.equal(probe.statements, 1, 'reads asked in one turn share the statement run on the next')
      } finally {
        await store.cleanup()
      }
    })

    test('orgs read in one statement each get their own numbers; an unknown org gets none', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'alpha', { daily_limit: 11, concurrent_limit: 5 })
        await createOrg(store.db, 'beta', { daily_limit: 22, concurrent_limit: 6 })
        for (const n of [1, 2]) await admitRun(store.db, admitInput('beta', 'test/basic/noop', { n }, Date.now()))
        const { probe, read } = probed(store.db)
        const held = probe.hold(1)
        const opener = read('alpha')
        await held.ran
        const names = ['beta', 'ghost', 'alpha', 'beta', 'alpha']
        const reads = names.map((o) => read(o))
        held.release()
        await opener
        const answers = await Promise.all(reads)
        assert.equal(answers[1], null)
        for (const [i, a] of answers.entries()) {
          if (names[i] === 'ghost') continue
          assert.equal(a!.org_slug, names[i])
          const expected = names[i] === 'alpha' ? { limit: 11, used: 0, concurrent: 5 } : { limit: 22, used: 2, concurrent: 6 }
          assert.deepEqual({ limit: a!.daily.limit, used: a!.daily.used, concurrent: a!.concurrent.limit }, expected)
        }
        assert.equal(probe.statements, 2)
      } finally {
        await store.cleanup()
      }
    })

    test('a failed statement fails its reads; the next read is answered', async () => {
      const store = await openStore(backend)
      try {
        await createOrg(store.db, 'alpha')
        await createOrg(store.db, 'beta')
        const { probe, read } = probed(store.db)
        const held = probe.hold(1)
        probe.fail(2)
        const opener = read('alpha')
        await held.ran
        const reads = [read('alpha'), read('beta')]
        held.release()
        assert.equal((await opener)!.org_slug, 'alpha')
        const settled = await Promise.allSettled(reads)
        // Both were in the failed statement.
        assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected'])
        assert.equal((await read('beta'))!.org_slug, 'beta')
      } finally {
        await store.cleanup()
      }
    })

    test('GET quota over HTTP: concurrent reads of two orgs and an unknown one; each its own body, the unknown 404', async () => {
      const t = await buildTestApp(backend)
      try {
        const keyA = await t.onboard('quota-a', 'STARTER')
        const keyB = await t.onboard('quota-b', 'SCALE')
        const admitted = await admitRun(t.ctx.db, admitInput('quota-b', 'test/basic/noop', { n: 1 }, Date.now()))
        assert.equal(admitted.kind, 'admitted')
        const get = (org: string, headers: Record<string, string>) => t.app.inject({ method: 'GET', url: `/api/v1/organizations/${org}/quota`, headers })
        const responses = await Promise.all([
          ...Array.from({ length: 10 }, () => get('quota-a', t.org(keyA))),
          ...Array.from({ length: 10 }, () => get('quota-b', t.org(keyB))),
          get('nobody', t.root),
          get('quota-a', t.root),
        ])
        for (const r of responses.slice(0, 10)) {
          assert.equal(r.statusCode, 200)
          assert.equal(r.json().org_slug, 'quota-a')
          assert.equal(r.json().plan_name, 'STARTER')
          assert.equal(r.json().daily.used, 0)
        }
        for (const r of responses.slice(10, 20)) {
          assert.equal(r.statusCode, 200)
          assert.equal(r.json().org_slug, 'quota-b')
          assert.equal(r.json().plan_name, 'SCALE')
          assert.equal(r.json().daily.used, 1)
          assert.equal(r.json().concurrent.running, 1)
        }
        assert.equal(responses[20]!.statusCode, 404)
        assert.equal(responses[20]!.json().code, 'ORG_NOT_FOUND')
        assert.equal(responses[21]!.json().org_slug, 'quota-a')
      } finally {
        await t.close()
      }
    })
  })
}
