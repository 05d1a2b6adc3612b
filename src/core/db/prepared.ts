// Hot read paths: build and compile a Kysely query once per database, then run it with new values.
// Values are still bound parameters; only the query building is skipped. The query is built with
// unique placeholder values and each placeholder is swapped for the caller's value at run time.
import type { CompiledQuery, Kysely } from 'kysely'
import type { Database } from './schema.js'
import { executeIfIdle, PREPARED_MARK } from './database.js'

type Compilable<R> = { compile(): CompiledQuery<R> }

export function prepared<K extends string, R>(keys: readonly K[], build: (db: Kysely<Database>, p: Record<K, string>) => Compilable<R>) {
  const placeholders = Object.fromEntries(keys.map((k) => [k, `\u0000${k}\u0000`])) as Record<K, string>
  const byPlaceholder = new Map<unknown, K>(keys.map((k) => [placeholders[k], k]))
  const cache = new WeakMap<Kysely<Database>, CompiledQuery<R>>()
  return async (db: Kysely<Database>, values: Record<K, unknown>): Promise<R[]> => {
    let compiled = cache.get(db)
    if (!compiled) {
      const built = build(db, placeholders).compile()
      // The text never changes, so on PostgreSQL it can be a named prepared statement (see database.ts).
      compiled = { ...built, sql: PREPARED_MARK + built.sql }
      const used = new Set(compiled.parameters.filter((p) => byPlaceholder.has(p)))
      if (used.size !== keys.length) throw new Error('prepared query does not use every placeholder')
      cache.set(db, compiled)
    }
    const parameters = compiled.parameters.map((p) => (byPlaceholder.has(p) ? values[byPlaceholder.get(p)!] : p))
    const query = { ...compiled, parameters }
    // Embedded and idle: run it now instead of queueing for the connection (database.ts).
    const now = executeIfIdle<R>(db, query)
    if (now) return now.rows
    const result = await db.executeQuery<R>(query)
    return result.rows
  }
}
