// Step-config checks shared by the processors. Every failure is a ProcessorConfigError naming the
// field; values are never echoed.
import { ProcessorConfigError } from '../types.js'

export type Obj = Record<string, unknown>

export function asObject(v: unknown, field: string, allowed: readonly string[]): Obj {
  if (v === undefined || v === null) v = {}
  if (typeof v !== 'object' || Array.isArray(v)) throw new ProcessorConfigError(field, 'must be a mapping')
  const o = v as Obj
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ProcessorConfigError(field ? `${field}.${safeKey(k)}` : safeKey(k), 'unknown key')
  }
  return o
}

/** Keys are echoed only when they look like identifiers. */
function safeKey(k: string): string {
  return /^[A-Za-z0-9_-]{1,64}$/.test(k) ? k : '(key)'
}

export function reqString(o: Obj, key: string, field: string, opts: { max: number; pattern?: RegExp }): string {
  const v = o[key]
  if (typeof v !== 'string' || v.length === 0 || v.length > opts.max) {
    throw new ProcessorConfigError(field, `must be a non-empty string of at most ${opts.max} characters`)
  }
  if (opts.pattern && !opts.pattern.test(v)) throw new ProcessorConfigError(field, 'has an invalid format')
  return v
}

export function optString(o: Obj, key: string, field: string, opts: { max: number; pattern?: RegExp }): string | undefined {
  return o[key] === undefined ? undefined : reqString(o, key, field, opts)
}

export function optInt(o: Obj, key: string, field: string, min: number, max: number, dflt: number): number {
  const v = o[key]
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ProcessorConfigError(field, `must be an integer between ${min} and ${max}`)
  }
  return v
}

export function optBool(o: Obj, key: string, field: string, dflt: boolean): boolean {
  const v = o[key]
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw new ProcessorConfigError(field, 'must be true or false')
  return v
}

export function optEnum<T extends string>(o: Obj, key: string, field: string, values: readonly T[], dflt: T): T {
  const v = o[key]
  if (v === undefined) return dflt
  if (typeof v !== 'string' || !values.includes(v as T)) throw new ProcessorConfigError(field, `must be one of ${values.join(', ')}`)
  return v as T
}

/** Processors whose config is empty still reject unknown keys. */
export function emptyConfig(v: unknown): Record<string, never> {
  asObject(v, '', [])
  return {}
}

/** Config of the paginated usage processors: only a page cap. */
export interface PagedConfig {
  max_pages: number
}

export function pagedConfig(config: unknown): PagedConfig {
  const o = asObject(config, '', ['max_pages'])
  return { max_pages: optInt(o, 'max_pages', 'max_pages', 1, 1000, 100) }
}
