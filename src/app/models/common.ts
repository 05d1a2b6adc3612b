// Shared TypeBox schemas: identifiers, pagination, problem body. Every string has a maxLength,
// every array a maxItems, every number bounds; objects reject unknown fields.
import Type, { type TSchema } from 'typebox'
import { ApiError } from '../errors.js'
import { ID_PATTERN } from '../../core/ids.js'
import { checkKeyValues, CursorError, decodeCursorToken, encodeCursorToken, KEY_COLUMNS } from '../../core/cursor.js'

export const SLUG_PATTERN = '^[a-z0-9][a-z0-9_-]{2,63}$'
export const OrgSlug = Type.String({ pattern: SLUG_PATTERN, minLength: 3, maxLength: 64 })
export const Id = Type.String({ pattern: ID_PATTERN, maxLength: 48 })
const MAX_API_CURSOR_CHARS = 512
export const Cursor = Type.String({ pattern: '^[A-Za-z0-9_-]{1,512}$', maxLength: MAX_API_CURSOR_CHARS })
export const Timestamp = Type.Union([Type.Integer({ minimum: 0, maximum: 1e15 }), Type.Null()])
export const IsoTime = Type.Union([Type.String({ maxLength: 40 }), Type.Null()])

export const Strict = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false })

export const OrgParams = Strict({ org_slug: OrgSlug })

export const limitQuery = (max: number) => Type.Optional(Type.Integer({ minimum: 1, maximum: max, default: 20 }))

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ maxLength: 200 }),
    title: Type.String({ maxLength: 100 }),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.String({ maxLength: 200 }),
    code: Type.String({ maxLength: 64 }),
    request_id: Type.String({ maxLength: 128 }),
    reason: Type.Optional(
      Type.String({
        maxLength: 32,
        description: 'Why, in one machine-readable word, where the code has one (CREDENTIAL_REJECTED / CREDENTIAL_INVALID: UNAUTHORIZED, TIMEOUT, UNREACHABLE or UPSTREAM_ERROR).',
      }),
    ),
    errors: Type.Optional(
      Type.Array(Type.Object({ path: Type.String({ maxLength: 200 }), message: Type.String({ maxLength: 200 }) }), { maxItems: 20 }),
    ),
  },
  { additionalProperties: false },
)

/** Error responses every route may produce; routes add their success schemas on top. */
export const errorResponses = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  409: ProblemSchema,
  422: ProblemSchema,
  429: ProblemSchema,
  500: ProblemSchema,
  503: ProblemSchema,
}

export const iso = (ms: number | null | undefined): string | null => (ms == null ? null : new Date(ms).toISOString())

/** Opaque keyset cursor: base64url of a JSON tuple (src/core/cursor.ts is the one codec). */
export function encodeCursor(parts: (string | number)[]): string {
  return encodeCursorToken(parts)
}

/**
 * Decodes a cursor made by encodeCursor. `number` is a BIGINT column (a safe integer), `string` a TEXT
 * id (bounded, no NUL): a forged value of any other shape is a 400 INVALID_CURSOR, never a driver error.
 */
export function decodeCursor(cursor: string | undefined, shape: ('string' | 'number')[]): (string | number)[] | null {
  if (!cursor) return null
  try {
    const columns = shape.map((kind) => (kind === 'number' ? KEY_COLUMNS.integer : KEY_COLUMNS.text))
    return checkKeyValues(decodeCursorToken(cursor, MAX_API_CURSOR_CHARS), columns) as (string | number)[]
  } catch (err) {
    if (err instanceof CursorError) throw new ApiError('INVALID_CURSOR')
    throw err
  }
}
