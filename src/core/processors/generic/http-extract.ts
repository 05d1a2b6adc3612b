// generic.http_extract: any JSON API behind the org's `http` integration. The URL is always the
// integration's base_url plus a relative path from the config (absolute URLs are refused, and
// link-header pages must stay on the same origin), auth comes from the credential, records are
// found at records_path, mapped through `fields` with types, capped by max_pages and max_records,
// and loaded once at the end (nothing is written when a cap, an error, a timeout or a cancel stops the extraction).
import { httpAuthHeaders } from '../../integrations/providers/http.js'
import type { ColumnSpec, TableSpec } from '../../datasets/types.js'
import { asObject, optBool, optInt, reqString, type Obj } from '../shared/config.js'
import { coerce } from '../shared/coerce.js'
import { datasetOp } from '../shared/errors.js'
import { call, malformed } from '../shared/http.js'
import { buildSpec, parseColumnType } from '../shared/table-config.js'
import { ProcessorConfigError, ProcessorError, type DecryptedCredential, type Processor, type ProcessorContext } from '../types.js'

type Pagination =
  | { type: 'none' }
  | { type: 'cursor'; cursor_param: string; cursor_path: string[] }
  | { type: 'page'; page_param: string; start_page: number; page_size_param?: string; page_size?: number }
  | { type: 'offset'; offset_param: string; limit_param: string; limit: number }
  | { type: 'link_header' }

interface FieldSpec {
  column: ColumnSpec
  path?: string[]
  parameter?: string
}

export interface HttpExtractConfig {
  path: string
  query: [string, string | number | boolean][]
  pagination: Pagination
  records_path: string[]
  fields: FieldSpec[]
  table: TableSpec
  max_pages: number
  max_records: number
}

const LABEL = 'HTTP extract'
const PATH = /^\/(?!\/)[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,1023}$/
const PARAM_NAME = /^[A-Za-z0-9_.[\]-]{1,64}$/
const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/
const IDENT = /^[a-z][a-z0-9_]{0,62}$/
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor'])

function parsePath(v: unknown, field: string, allowEmpty: boolean): string[] {
  if (v === undefined && allowEmpty) return []
  if (typeof v !== 'string' || v.length > 256) throw new ProcessorConfigError(field, 'must be a dot path')
  if (v === '' || v === '$') {
    if (allowEmpty) return []
    throw new ProcessorConfigError(field, 'must not be empty')
  }
  const parts = v.split('.')
  if (parts.length > 10 || parts.some((p) => !SEGMENT.test(p) || FORBIDDEN_SEGMENTS.has(p))) {
    throw new ProcessorConfigError(field, 'must be a dot path of simple keys')
  }
  return parts
}

function parsePagination(v: unknown): Pagination {
  if (v === undefined) return { type: 'none' }
  const base = asObject(v, 'pagination', ['type', 'cursor_param', 'cursor_path', 'page_param', 'start_page', 'page_size_param', 'page_size', 'offset_param', 'limit_param', 'limit'])
  const allowOnly = (keys: string[]) => {
    for (const k of Object.keys(base)) if (k !== 'type' && !keys.includes(k)) throw new ProcessorConfigError(`pagination.${k}`, `not used by pagination type ${String(base.type)}`)
  }
  const name = (k: string) => reqString(base, k, `pagination.${k}`, { max: 64, pattern: PARAM_NAME })
  switch (base.type) {
    case 'none':
      allowOnly([])
      return { type: 'none' }
    case 'link_header':
      allowOnly([])
      return { type: 'link_header' }
    case 'cursor':
      allowOnly(['cursor_param', 'cursor_path'])
      return { type: 'cursor', cursor_param: name('cursor_param'), cursor_path: parsePath(base.cursor_path, 'pagination.cursor_path', false) }
    case 'page': {
      allowOnly(['page_param', 'start_page', 'page_size_param', 'page_size'])
      const p: Pagination = { type: 'page', page_param: name('page_param'), start_page: optInt(base, 'start_page', 'pagination.start_page', 0, 1_000_000, 1) }
      if ((base.page_size_param === undefined) !== (base.page_size === undefined)) {
        throw new ProcessorConfigError('pagination.page_size', 'page_size and page_size_param go together')
      }
      if (base.page_size_param !== undefined) {
        p.page_size_param = name('page_size_param')
        p.page_size = optInt(base, 'page_size', 'pagination.page_size', 1, 10_000, 100)
      }
      return p
    }
    case 'offset':
      allowOnly(['offset_param', 'limit_param', 'limit'])
      return { type: 'offset', offset_param: name('offset_param'), limit_param: name('limit_param'), limit: optInt(base, 'limit', 'pagination.limit', 1, 10_000, 100) }
    default:
      throw new ProcessorConfigError('pagination.type', 'must be one of none, cursor, page, offset, link_header')
  }
}

function parseFields(v: unknown): FieldSpec[] {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ProcessorConfigError('fields', 'must be a mapping of column → {path|parameter, type}')
  const entries = Object.entries(v as Obj)
  if (entries.length === 0 || entries.length > 100) throw new ProcessorConfigError('fields', 'must map 1 to 100 columns')
  return entries.map(([column, spec]) => {
    if (!IDENT.test(column)) throw new ProcessorConfigError('fields', 'column names must be lowercase identifiers')
    const field = `fields.${column}`
    const o = asObject(spec, field, ['path', 'parameter', 'type', 'nullable'])
    if ((o.path === undefined) === (o.parameter === undefined)) throw new ProcessorConfigError(field, 'needs exactly one of path or parameter')
    const col: ColumnSpec = { name: column, type: parseColumnType(o.type, `${field}.type`), nullable: optBool(o, 'nullable', `${field}.nullable`, false) }
    if (o.parameter !== undefined) return { column: col, parameter: reqString(o, 'parameter', `${field}.parameter`, { max: 64, pattern: IDENT }) }
    return { column: col, path: parsePath(o.path, `${field}.path`, false) }
  })
}

function parseQuery(v: unknown): [string, string | number | boolean][] {
  if (v === undefined) return []
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ProcessorConfigError('query', 'must be a mapping')
  const entries = Object.entries(v as Obj)
  if (entries.length > 50) throw new ProcessorConfigError('query', 'at most 50 parameters')
  return entries.map(([k, val]) => {
    if (!PARAM_NAME.test(k)) throw new ProcessorConfigError('query', 'parameter names must be simple tokens')
    const ok = typeof val === 'number' ? Number.isFinite(val) : typeof val === 'boolean' || (typeof val === 'string' && val.length <= 256)
    if (!ok) throw new ProcessorConfigError(`query.${k}`, 'must be a string (<= 256), number or boolean')
    if (typeof val === 'string' && val.startsWith(':') && !/^:[a-z][a-z0-9_]{0,62}$/.test(val)) {
      throw new ProcessorConfigError(`query.${k}`, 'a value starting with ":" must name a run parameter')
    }
    return [k, val as string | number | boolean]
  })
}

export function validateHttpExtractConfig(config: unknown): HttpExtractConfig {
  const o = asObject(config, '', ['path', 'method', 'query', 'pagination', 'records_path', 'fields', 'table', 'max_pages', 'max_records'])
  const path = reqString(o, 'path', 'path', { max: 1024 })
  if (!PATH.test(path) || path.split('/').some((s) => s === '..' || s === '.')) {
    throw new ProcessorConfigError('path', 'must be a relative path starting with "/" (no scheme, host, query or dot segments)')
  }
  if (o.method !== undefined && o.method !== 'GET') throw new ProcessorConfigError('method', 'must be GET')
  const fields = parseFields(o.fields)
  const t = asObject(o.table, 'table', ['name', 'natural_key', 'date_column'])
  const table = buildSpec(t, 'table', fields.map((f) => f.column))
  return {
    path,
    query: parseQuery(o.query),
    pagination: parsePagination(o.pagination),
    records_path: parsePath(o.records_path, 'records_path', true),
    fields: fields.map((f) => ({ ...f, column: table.columns.find((c) => c.name === f.column.name)! })),
    table,
    max_pages: optInt(o, 'max_pages', 'max_pages', 1, 1000, 100),
    max_records: optInt(o, 'max_records', 'max_records', 1, 1_000_000, 100_000),
  }
}

function get(root: unknown, path: string[]): unknown {
  let v = root
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined
    if (Array.isArray(v)) {
      if (!/^\d+$/.test(seg)) return undefined
      v = v[Number(seg)]
    } else {
      if (!Object.prototype.hasOwnProperty.call(v, seg)) return undefined
      v = (v as Obj)[seg]
    }
  }
  return v
}

interface Target {
  base: URL
  headers: Record<string, string>
}

function target(cred: DecryptedCredential): Target {
  const unusable = () => new ProcessorError('CREDENTIAL_UNUSABLE', 'The http integration has no usable base_url or auth settings')
  const m = cred.metadata
  let base: URL
  try {
    base = new URL(String(m.base_url))
  } catch {
    throw unusable()
  }
  if ((base.protocol !== 'https:' && base.protocol !== 'http:') || base.username || base.password || base.search || base.hash) throw unusable()
  const authType = m.auth_type
  if (authType !== 'bearer' && authType !== 'header' && authType !== 'basic') throw unusable()
  if (authType === 'header' && (typeof m.header_name !== 'string' || !/^[A-Za-z][A-Za-z0-9-]{0,63}$/.test(m.header_name))) throw unusable()
  return { base, headers: httpAuthHeaders(cred.secret, { auth_type: authType, header_name: m.header_name as string | undefined }) }
}

/** The first page URL: base origin + base path + config path + query (run parameters substituted). */
function firstUrl(t: Target, config: HttpExtractConfig, ctx: ProcessorContext): URL {
  const url = new URL(t.base.origin)
  url.pathname = t.base.pathname.replace(/\/+$/, '') + config.path
  for (const [k, v] of config.query) {
    let value: unknown = v
    if (typeof v === 'string' && v.startsWith(':')) {
      value = ctx.parameters[v.slice(1)]
      if (value === undefined || value === null || typeof value === 'object') {
        throw new ProcessorError('INVALID_DATA', `Query parameter ${k} needs run parameter ${v.slice(1)}`)
      }
    }
    url.searchParams.append(k, String(value))
  }
  if (url.origin !== t.base.origin) throw new ProcessorError('BLOCKED_DESTINATION', 'Request URL left the integration origin')
  return url
}

/** rel="next" from an RFC 8288 Link header, resolved against the current URL. */
export function nextLink(header: string | undefined, current: URL): URL | null {
  if (!header) return null
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]{1,2048})>\s*((?:;[^;]*)*)$/.exec(part)
    if (!m) continue
    if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(m[2]!)) {
      try {
        return new URL(m[1]!, current)
      } catch {
        return null
      }
    }
  }
  return null
}

function mapRecord(rec: unknown, index: number, config: HttpExtractConfig, ctx: ProcessorContext): Record<string, unknown> {
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) throw malformed(LABEL, `record ${index} is not an object`)
  const row: Record<string, unknown> = {}
  for (const f of config.fields) {
    const raw = f.parameter !== undefined ? ctx.parameters[f.parameter] : get(rec, f.path!)
    const v = coerce(f.column.name, f.column.type, raw)
    if (v === null && !f.column.nullable) throw new ProcessorError('INVALID_DATA', `Record ${index}: column ${f.column.name} is missing`)
    row[f.column.name] = v
  }
  return row
}

export function createHttpExtractProcessor(): Processor<HttpExtractConfig> {
  return {
    name: 'generic.http_extract',
    description: 'Any JSON API through the org http integration: pagination, records path, typed field mapping → a dataset table',
    integration: 'http',
    validateConfig: validateHttpExtractConfig,
    async run(ctx, config) {
      const t = target(await ctx.getCredential())
      let url: URL | null = firstUrl(t, config, ctx)
      const p = config.pagination
      if (p.type === 'page') {
        url.searchParams.set(p.page_param, String(p.start_page))
        if (p.page_size_param) url.searchParams.set(p.page_size_param, String(p.page_size))
      } else if (p.type === 'offset') {
        url.searchParams.set(p.offset_param, '0')
        url.searchParams.set(p.limit_param, String(p.limit))
      }
      const rows: Record<string, unknown>[] = []
      let pages = 0
      let lastCursor: unknown
      while (url) {
        if (pages >= config.max_pages) throw new ProcessorError('LIMIT_EXCEEDED', `More than max_pages (${config.max_pages}) pages`)
        if (url.origin !== t.base.origin) throw new ProcessorError('BLOCKED_DESTINATION', 'Next page URL left the integration origin')
        const res = await call(ctx, url.toString(), { label: LABEL, headers: { accept: 'application/json', ...t.headers } })
        pages++
        let body: unknown
        try {
          body = JSON.parse(res.body.toString('utf8'))
        } catch {
          throw new ProcessorError('MALFORMED_RESPONSE', `${LABEL}: response is not JSON`)
        }
        const records = config.records_path.length ? get(body, config.records_path) : body
        if (!Array.isArray(records)) throw malformed(LABEL, 'records_path is not a list')
        if (rows.length + records.length > config.max_records) throw new ProcessorError('LIMIT_EXCEEDED', `More than max_records (${config.max_records}) records`)
        records.forEach((r, i) => rows.push(mapRecord(r, rows.length + i, config, ctx)))
        ctx.reportProgress?.({ rows: rows.length, counters: { pages, records: rows.length } })
        const current: URL = url
        url = null
        switch (p.type) {
          case 'cursor': {
            const next = get(body, p.cursor_path)
            if (next === undefined || next === null || next === '') break
            if ((typeof next !== 'string' && typeof next !== 'number') || String(next).length > 2048) throw malformed(LABEL, 'cursor')
            if (next === lastCursor) throw malformed(LABEL, 'cursor repeats')
            lastCursor = next
            url = new URL(current)
            url.searchParams.set(p.cursor_param, String(next))
            break
          }
          case 'page': {
            if (records.length === 0 || (p.page_size !== undefined && records.length < p.page_size)) break
            url = new URL(current)
            url.searchParams.set(p.page_param, String(p.start_page + pages))
            break
          }
          case 'offset': {
            if (records.length < p.limit) break
            url = new URL(current)
            url.searchParams.set(p.offset_param, String(pages * p.limit))
            break
          }
          case 'link_header': {
            url = nextLink(res.headers.link, current)
            if (url && url.origin !== t.base.origin) throw new ProcessorError('BLOCKED_DESTINATION', 'Next page URL left the integration origin')
            break
          }
          case 'none':
            break
        }
      }
      // Pages fetched before a timeout or cancel are dropped, never loaded (the engine's fence refuses the
      // write too; this keeps the processor right when it runs without one).
      const stopped = () => new ProcessorError('CANCELLED', `${LABEL}: stopped before loading`)
      if (ctx.signal.aborted) throw stopped()
      const written = await datasetOp(async () => {
        await ctx.dataset.ensureTable(config.table)
        if (ctx.signal.aborted) throw stopped()
        return ctx.dataset.upsertRows(config.table.name, rows)
      })
      return { rows_processed: written, output: { pages, records: rows.length, table: config.table.name } }
    },
  }
}
