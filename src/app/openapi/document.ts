// Turns the routes into a complete OpenAPI 3.1 document. Two @fastify/swagger hooks:
// - `transformRoute` (per route): operationId, summary, description, tag and security from
//   operations.ts; success responses with their descriptions; error codes stashed for the next step;
// - `transformDocument` (whole document): problem+json error responses listing their codes,
//   request examples, enums instead of anyOf-of-consts, and named component schemas reused by $ref.
// Validation and serialization never see these changes: only the document does.
import type { RouteOptions } from 'fastify'
import { ERROR_CODES, STANDARD_DETAIL, type ErrorCode } from '../errors.js'
import { ProblemSchema } from '../models/common.js'
import type { GuardKind } from '../dependencies/auth.js'
import { OPERATIONS, operationKey, type OperationDoc } from './operations.js'
import { byStatus, routeErrorCodes } from './route-errors.js'

type Json = Record<string, any>

const ERRORS_KEY = 'x-tf-errors'
const EXAMPLE_KEY = 'x-tf-example'
const NAMES_KEY = 'x-tf-schema-names'
const PRODUCES_KEY = 'x-tf-produces'
const PROBLEM_REF = '#/components/schemas/Problem'

const STATUS_TEXT: Record<number, string> = {
  400: 'The request is malformed or fails validation',
  401: 'No key, or the key is invalid, revoked, expired or its subscription inactive',
  403: 'The key may not act on this resource',
  404: 'The resource does not exist (or is not visible to this key)',
  405: 'Method not allowed',
  409: 'The request conflicts with the current state',
  413: 'The body exceeds the size limit (1 MiB)',
  415: 'The body is not application/json',
  422: 'The request is well-formed but was refused',
  429: 'A rate limit or quota was reached; see Retry-After',
  500: 'Unexpected server error (details only in the server log)',
  503: 'The service or a dependency is unavailable',
}

export const SECURITY: Record<GuardKind, Json[]> = {
  public: [],
  admin: [{ rootKey: [] }],
  org: [{ orgKey: [] }],
  org_or_admin: [{ orgKey: [] }, { rootKey: [] }],
}

/** Routes serving the docs themselves are not part of the API. */
export const isDocsRoute = (url: string) => url === '/docs' || url.startsWith('/docs/')

const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1)

function fallbackDoc(method: string, url: string): OperationDoc {
  const words = url.split('/').filter((w) => w && !w.startsWith(':') && w !== 'api' && w !== 'v1')
  const operationId = method.toLowerCase() + words.map((w) => pascal(w.replace(/[^A-Za-z0-9]/g, ''))).join('')
  return { operationId, summary: `${method} ${url}`, description: 'Not yet described in operations.ts.', tag: 'Pipelines', errors: [], responses: {} }
}

export interface RouteTransformInput {
  schema: Json | undefined
  url: string
  route: RouteOptions
}

/** @fastify/swagger `transform`: documents one route. */
export function transformRoute({ schema, url, route }: RouteTransformInput): { schema: Json; url: string } {
  const base: Json = schema ?? {}
  if (isDocsRoute(route.url)) return { schema: base, url }
  const method = [route.method].flat()[0]!
  const entry = OPERATIONS[operationKey(method, route.url)]
  if (!entry && base.hide) return { schema: base, url }
  const doc = entry ?? fallbackDoc(method, route.url)
  const auth = ((route.config as { auth?: GuardKind } | undefined)?.auth ?? 'public') as GuardKind
  const input = ['params', 'querystring', 'body', 'headers'].filter((k) => base[k])
  const response: Json = {}
  for (const [status, s] of Object.entries((base.response ?? {}) as Json)) {
    if (Number(status) >= 400) continue
    response[status] = { ...s, description: doc.responses[Number(status)] ?? 'Success' }
  }
  if (doc.produces) {
    for (const status of Object.keys(doc.responses)) {
      response[status] = { description: doc.responses[Number(status)], content: { [doc.produces]: { schema: { type: 'string' } } } }
    }
  }
  const out: Json = {
    ...base,
    hide: false,
    operationId: doc.operationId,
    summary: doc.summary,
    description: doc.description,
    tags: [doc.tag],
    security: SECURITY[auth],
    response,
    [ERRORS_KEY]: routeErrorCodes({ method, url: route.url, auth, input }, doc.errors),
  }
  if (doc.example) out[EXAMPLE_KEY] = doc.example
  out[NAMES_KEY] = {
    request: doc.schemas?.request ?? `${pascal(doc.operationId)}Request`,
    response: doc.schemas?.response ?? `${pascal(doc.operationId)}Response`,
  }
  if (doc.produces) out[PRODUCES_KEY] = doc.produces
  return { schema: out, url }
}

function errorResponse(status: number, codes: ErrorCode[]): Json {
  const text = STATUS_TEXT[status] ?? STANDARD_DETAIL[status] ?? 'Error'
  return {
    description: `${text}. Codes: ${codes.map((c) => `\`${c}\``).join(', ')}.`,
    content: { 'application/problem+json': { schema: { $ref: PROBLEM_REF } } },
  }
}

/** anyOf of single-value enums of one type (what TypeBox unions of literals become) → one `enum`. */
function collapseEnums(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(collapseEnums)
  if (!node || typeof node !== 'object') return node
  const o: Json = {}
  for (const [k, v] of Object.entries(node)) o[k] = collapseEnums(v)
  if (Array.isArray(o.anyOf)) {
    const isLiteral = (s: Json) => s && Object.keys(s).every((k) => k === 'type' || k === 'enum') && Array.isArray(s.enum) && typeof s.type === 'string'
    const literals = o.anyOf.filter(isLiteral)
    const others = o.anyOf.filter((s: Json) => !isLiteral(s))
    const types = new Set(literals.map((s: Json) => s.type))
    if (literals.length > 1 && types.size === 1) {
      const merged = { type: literals[0].type, enum: literals.flatMap((s: Json) => s.enum) }
      if (others.length === 0) {
        delete o.anyOf
        Object.assign(o, merged)
      } else {
        o.anyOf = [merged, ...others]
      }
    }
  }
  return o
}

const canonical = (s: unknown): string => JSON.stringify(s, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v))

const isObjectSchema = (s: unknown): s is Json => !!s && typeof s === 'object' && (s as Json).type === 'object' && !!(s as Json).properties

class Components {
  readonly schemas: Record<string, Json> = {}
  private readonly byShape = new Map<string, string>()

  /** Registers a schema under a name (or finds an identical one already registered) and returns its $ref. */
  add(name: string, schema: Json): Json {
    const shape = canonical(schema)
    const existing = this.byShape.get(shape)
    if (existing) return { $ref: `#/components/schemas/${existing}` }
    let unique = name
    for (let i = 2; this.schemas[unique]; i++) unique = `${name}${i}`
    this.schemas[unique] = schema
    this.byShape.set(shape, unique)
    return { $ref: `#/components/schemas/${unique}` }
  }

  /** Replaces nested object schemas identical to a component with a $ref to it. */
  refNested(node: unknown, self?: string): unknown {
    if (Array.isArray(node)) return node.map((n) => this.refNested(n, self))
    if (!node || typeof node !== 'object') return node
    if (isObjectSchema(node)) {
      const name = this.byShape.get(canonical(node))
      if (name && name !== self) return { $ref: `#/components/schemas/${name}` }
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, this.refNested(v, self)]))
  }
}

/** @fastify/swagger `transformObject`: finishes the whole document. */
export function transformDocument({ openapiObject }: { openapiObject: Json }): Json {
  const doc = collapseEnums(openapiObject) as Json
  const components = new Components()
  components.add('Problem', JSON.parse(JSON.stringify(ProblemSchema)) as Json)
  const operations: Json[] = []
  for (const item of Object.values(doc.paths ?? {}) as Json[]) {
    for (const op of Object.values(item) as Json[]) if (op && typeof op === 'object' && op.responses) operations.push(op)
  }
  // First pass: name request bodies and success responses.
  for (const op of operations) {
    const names = (op[NAMES_KEY] ?? {}) as { request?: string; response?: string }
    const media = op.requestBody?.content?.['application/json']
    if (media?.schema && isObjectSchema(media.schema) && names.request) media.schema = components.add(names.request, media.schema)
    if (media && op[EXAMPLE_KEY]) media.example = op[EXAMPLE_KEY]
    for (const [status, res] of Object.entries(op.responses as Json)) {
      const m = (res as Json).content?.['application/json']
      if (Number(status) >= 400 || !m?.schema) continue
      // The status's description lives on the response; the schema is shared between statuses.
      delete m.schema.description
      if (isObjectSchema(m.schema) && names.response) m.schema = components.add(names.response, m.schema)
    }
  }
  // Second pass: reuse components inside other schemas, then add the error responses.
  for (const [name, schema] of Object.entries(components.schemas)) components.schemas[name] = components.refNested(schema, name) as Json
  for (const op of operations) {
    if (op.requestBody) op.requestBody = components.refNested(op.requestBody)
    for (const [status, res] of Object.entries(op.responses as Json)) op.responses[status] = components.refNested(res)
    for (const [status, codes] of byStatus((op[ERRORS_KEY] ?? []) as ErrorCode[])) op.responses[String(status)] = errorResponse(status, codes)
    delete op[ERRORS_KEY]
    delete op[EXAMPLE_KEY]
    delete op[NAMES_KEY]
    delete op[PRODUCES_KEY]
  }
  doc.components = { ...(doc.components ?? {}), schemas: { ...(doc.components?.schemas ?? {}), ...components.schemas } }
  return doc
}

/** The codes of one status, for tests and docs. */
export const statusOf = (code: ErrorCode) => ERROR_CODES[code]
