// Turns Ajv validation errors into the problem's `errors[]`: one `{path, message}` per failing field,
// the message derived from the schema rule ("must be <= 1000", "must be one of: a, b"), never from the
// submitted value. Ajv runs with allErrors + verbose so every field is reported and the failing
// keyword's schema is at hand; the anyOf branches of one field collapse into a single message.
import type { ErrorObject } from 'ajv'
import { MAX_FIELD_ERRORS, type FieldError } from './errors.js'

const NAME = /^[A-Za-z0-9_-]{1,64}$/
const MAX_LISTED_VALUES = 12

function listValues(values: unknown[]): string {
  const shown = values.slice(0, MAX_LISTED_VALUES).map((v) => (v === null ? 'null' : String(v)))
  return shown.join(', ') + (values.length > MAX_LISTED_VALUES ? ', …' : '')
}

/** Values a schema allows when it is an enum, a const or a union of those; undefined otherwise. */
function allowedValues(schema: unknown): unknown[] | undefined {
  if (!schema || typeof schema !== 'object') return undefined
  const s = schema as { const?: unknown; enum?: unknown[]; anyOf?: unknown[]; type?: unknown }
  if ('const' in s) return [s.const]
  if (Array.isArray(s.enum)) return s.enum
  if (s.type === 'null') return [null]
  if (Array.isArray(s.anyOf)) {
    const out: unknown[] = []
    for (const branch of s.anyOf) {
      const values = allowedValues(branch)
      if (!values) return undefined
      out.push(...values)
    }
    return out
  }
  return undefined
}

function typeOf(schema: unknown): string | undefined {
  const t = (schema as { type?: unknown } | undefined)?.type
  return typeof t === 'string' ? t : Array.isArray(t) ? t.join(' or ') : undefined
}

/** A readable "must be …" for a union: the allowed values, or the allowed types. */
function unionMessage(schema: unknown): string {
  const values = allowedValues(schema)
  if (values) return `must be one of: ${listValues(values)}`
  const branches = (schema as { anyOf?: unknown[] }).anyOf ?? []
  const types = [...new Set(branches.map(typeOf).filter((t): t is string => !!t))]
  return types.length > 0 && types.length === branches.length ? `must be ${types.join(' or ')}` : 'must match one of the allowed forms'
}

/** The rule's message for one Ajv error; only schema facts (limits, formats, allowed values). */
export function ruleMessage(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'required':
      return 'is required'
    case 'additionalProperties':
      return 'is not an allowed field'
    case 'type':
      return `must be ${String(p.type).replace(/,/g, ' or ')}`
    case 'maximum':
    case 'minimum':
    case 'exclusiveMaximum':
    case 'exclusiveMinimum':
      return `must be ${String(p.comparison)} ${String(p.limit)}`
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters`
    case 'minLength':
      return `must be at least ${String(p.limit)} characters`
    case 'maxItems':
      return `must have at most ${String(p.limit)} items`
    case 'minItems':
      return `must have at least ${String(p.limit)} items`
    case 'maxProperties':
      return `must have at most ${String(p.limit)} fields`
    case 'minProperties':
      return `must have at least ${String(p.limit)} fields`
    case 'uniqueItems':
      return 'must not contain duplicate items'
    case 'multipleOf':
      return `must be a multiple of ${String(p.multipleOf)}`
    case 'format':
      return `must be a valid ${String(p.format)}`
    case 'pattern':
      return `must match the pattern ${String(p.pattern)}`
    case 'enum':
      return `must be one of: ${listValues((p.allowedValues as unknown[]) ?? [])}`
    case 'const':
      return `must be ${listValues([p.allowedValue])}`
    case 'anyOf':
    case 'oneOf':
      return unionMessage(e.parentSchema)
    default:
      return 'is invalid'
  }
}

function fieldPath(context: string, e: ErrorObject): string {
  const p = e.params as { additionalProperty?: unknown; missingProperty?: unknown }
  const name = p.additionalProperty ?? p.missingProperty
  const suffix = typeof name === 'string' && NAME.test(name) ? `/${name}` : ''
  return `${context}${e.instancePath}${suffix}`
}

/**
 * One entry per failing field, in the order Ajv found them, at most MAX_FIELD_ERRORS.
 * A field inside a failed anyOf gets the union's message only (its branches' errors are noise).
 */
export function validationFieldErrors(context: string, errors: ErrorObject[]): FieldError[] {
  const unionAt = new Map<string, ErrorObject>()
  for (const e of errors) {
    if ((e.keyword === 'anyOf' || e.keyword === 'oneOf') && !unionAt.has(e.instancePath)) unionAt.set(e.instancePath, e)
  }
  const byPath = new Map<string, string>()
  for (const e of errors) {
    // Branch errors of a failed union sit under its schemaPath (…/anyOf/0/…): report the union instead.
    const union = [...unionAt.values()].find((u) => u !== e && e.schemaPath.startsWith(`${u.schemaPath}/`))
    const chosen = union ?? e
    const path = fieldPath(context, chosen)
    if (byPath.has(path)) continue
    byPath.set(path, ruleMessage(chosen))
    if (byPath.size >= MAX_FIELD_ERRORS) break
  }
  return [...byPath].map(([path, message]) => ({ path, message }))
}
