// The one keyset-cursor codec: an opaque base64url(JSON) token whose key values are re-validated
// against their columns on the way in, so a forged cursor is only ever bound parameters of the
// right type (a safe integer for a BIGINT, a bounded NUL-free string for TEXT) or INVALID_CURSOR;
// never a driver error. API list routes and dataset reads both decode through here.

export class CursorError extends Error {
  readonly code = 'INVALID_CURSOR'
  constructor() {
    super('invalid cursor')
    this.name = 'CursorError'
  }
}

/** Checks one key value against its column; returns the value to bind, or throws. */
export type KeyColumn = (v: unknown) => string | number | null

const MAX_TEXT_KEY_CHARS = 200

/** Column kinds of the API's keyset lists (timestamps are BIGINT epoch ms, ids are TEXT). */
export const KEY_COLUMNS = {
  integer: (v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new CursorError()
    return v
  },
  text: (v: unknown): string => {
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_TEXT_KEY_CHARS || v.includes('\u0000')) throw new CursorError()
    return v
  },
} satisfies Record<string, KeyColumn>

export function encodeCursorToken(payload: unknown): string {
  return Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url')
}

/** The JSON inside a token; anything that is not base64url of JSON within `maxChars` is INVALID_CURSOR. */
export function decodeCursorToken(cursor: unknown, maxChars: number): unknown {
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > maxChars || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw new CursorError()
  }
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new CursorError()
  }
}

/** Validates a decoded key tuple against its columns (same length, each value of its column's type). */
export function checkKeyValues(keys: unknown, columns: readonly KeyColumn[]): (string | number | null)[] {
  if (!Array.isArray(keys) || keys.length !== columns.length) throw new CursorError()
  return columns.map((check, i) => {
    try {
      return check(keys[i])
    } catch {
      throw new CursorError()
    }
  })
}
