// Opaque keyset cursors: base64url(JSON {t: table, k: [natural key values of the last row]}).
// Decoding re-validates every key value against its column, so a forged cursor is only ever a
// bound parameter of the right type, or INVALID_CURSOR.
import type { DialectName } from '../db/database.js'
import { DatasetError } from './errors.js'
import { encodeValue } from './spec.js'
import type { TableSpec } from './types.js'

const MAX_CURSOR_CHARS = 4096

export function encodeCursor(table: string, keyValues: unknown[]): string {
  return Buffer.from(JSON.stringify({ t: table, k: keyValues }), 'utf8').toString('base64url')
}

/** Returns the bind values of the cursor's key, in natural-key order. */
export function decodeCursor(cursor: string, spec: TableSpec, dialect: DialectName): (string | number | null)[] {
  const invalid = () => new DatasetError('INVALID_CURSOR', 'invalid cursor')
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw invalid()
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  const p = parsed as { t?: unknown; k?: unknown }
  if (!p || typeof p !== 'object' || p.t !== spec.name || !Array.isArray(p.k) || p.k.length !== spec.naturalKey.length) {
    throw invalid()
  }
  const keys = p.k as unknown[]
  return spec.naturalKey.map((name, i) => {
    const col = spec.columns.find((c) => c.name === name)!
    try {
      const v = encodeValue({ ...col, nullable: false }, keys[i], dialect)
      return v
    } catch {
      throw invalid()
    }
  })
}
