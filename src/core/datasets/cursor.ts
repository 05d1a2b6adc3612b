// Dataset keyset cursors: base64url(JSON {t: table, k: [natural key values of the last row]}), through
// the one cursor codec (src/core/cursor.ts). Decoding re-validates every key value against its column,
// so a forged cursor is only ever a bound parameter of the right type, or INVALID_CURSOR.
import type { DialectName } from '../db/database.js'
import { checkKeyValues, CursorError, decodeCursorToken, encodeCursorToken } from '../cursor.js'
import { DatasetError } from './errors.js'
import { encodeValue } from './spec.js'
import type { RowPage, TableSpec } from './types.js'

const MAX_CURSOR_CHARS = 4096

export function encodeCursor(table: string, keyValues: unknown[]): string {
  return encodeCursorToken({ t: table, k: keyValues })
}

/** Returns the bind values of the cursor's key, in natural-key order. */
export function decodeCursor(cursor: string, spec: TableSpec, dialect: DialectName): (string | number | null)[] {
  try {
    const p = decodeCursorToken(cursor, MAX_CURSOR_CHARS) as { t?: unknown; k?: unknown } | null
    if (!p || typeof p !== 'object' || p.t !== spec.name) throw new CursorError()
    const columns = spec.naturalKey.map((name) => {
      const col = spec.columns.find((c) => c.name === name)!
      return (v: unknown) => encodeValue({ ...col, nullable: false }, v, dialect)
    })
    return checkKeyValues(p.k, columns)
  } catch (err) {
    if (err instanceof CursorError) throw new DatasetError('INVALID_CURSOR', 'invalid cursor')
    throw err
  }
}

/** One page from `limit + 1` rows read in key order: the extra row only says that a next page exists. */
export function rowPage(spec: TableSpec, rows: Record<string, unknown>[], limit: number): RowPage {
  const more = rows.length > limit
  const pageRows = more ? rows.slice(0, limit) : rows
  const lastRow = pageRows[pageRows.length - 1]
  return { rows: pageRows, nextCursor: more && lastRow ? encodeCursor(spec.name, spec.naturalKey.map((k) => lastRow[k])) : null }
}
