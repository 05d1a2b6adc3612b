// Builds the Fastify application from an AppContext. The app is a plugin-free shell: guards,
// validation, errors and routes are wired here; listening, signals and shutdown live in main.ts.
// Tests build it and call inject().
import { randomUUID } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Logger } from 'pino'
import AjvModule, { type ErrorObject } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { parseInstant } from '../core/clock.js'
import Type from 'typebox'
import type { AppContext } from './context.js'
import { ApiError, problem, type ErrorCode, type FieldError } from './errors.js'
import { validationFieldErrors } from './validation-errors.js'
import { capConnections, makeClientErrorHandler } from './client-errors.js'
import { createAccessLog, LazyRequestLogger } from '../core/observability/logger.js'
import { runGuard, type GuardKind } from './dependencies/auth.js'
import { healthRoutes } from './routers/health.js'
import { adminRoutes } from './routers/admin.js'
import { organizationRoutes } from './routers/organizations.js'
import { dataRoutes } from './routers/data.js'
import { integrationRoutes } from './routers/integrations.js'
import { pipelineRoutes } from './routers/pipelines.js'
import { schedulerRoutes } from './routers/scheduler.js'
import { orgSelfServiceRoutes } from './routers/org-self-service.js'
import { egressHostRoutes } from './routers/egress-hosts.js'
import { orgWebhookRoutes } from './routers/org-webhook.js'
import { DOCS_SCOPE, registerApiDocs } from './openapi/plugin.js'
import { CONSOLE_HEADERS } from './console/headers.js'
import { consoleRoutes } from './routers/console.js'
import { consoleDataRoutes } from './routers/console-data.js'
import { runEventRoutes } from './routers/run-events.js'
import { planRoutes } from './routers/plans.js'

const Ajv = AjvModule.default ?? AjvModule
const addFormats = addFormatsModule.default ?? addFormatsModule

const GUARDS: GuardKind[] = ['admin', 'org', 'org_or_admin', 'public']
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const NO_QUERY = Type.Object({}, { additionalProperties: false })
const BODY_METHODS = new Set(['POST', 'PUT', 'DELETE'])

/** Callback form: hooks that do not wait skip the promise an async hook costs per request. */
function emptyBodyAsObject(req: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  if (req.body === undefined && BODY_METHODS.has(req.method)) req.body = {}
  done()
}

export interface RouteInfo {
  method: string
  url: string
  auth: GuardKind
  /** The route's input schemas (params, querystring, body, headers); the schema-bounds test walks them. */
  input: Record<string, unknown>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every registered route with its guard (the auth matrix test walks it). */
    routeTable: RouteInfo[]
  }
}

export type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>

/** A route module: registers routes on the app with the shared context. */
export type RouteModule = (app: App, ctx: AppContext) => void

export interface BuildOptions {
  /** Extra route modules (later issues register theirs here). */
  routes?: RouteModule[]
  /** Only the operations routes (/health*, /metrics): the `tenantflow worker` HTTP port. */
  opsOnly?: boolean
}

function makeAjv(coerce: boolean) {
  // allErrors + verbose: every failing field is reported, with its rule (validation-errors.ts).
  const ajv = new Ajv({ strict: false, allErrors: true, verbose: true, coerceTypes: coerce, useDefaults: true, removeAdditional: false })
  addFormats(ajv)
  // ajv's date-time admits leap seconds (23:59:60), which no JavaScript time can hold: accept only
  // timestamps that name a representable instant, so a handler never sees one it cannot store or render.
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => parseInstant(s) !== null })
  return ajv
}

function validationErrors(err: FastifyError): FieldError[] {
  const ctx = (err as { validationContext?: string }).validationContext ?? 'request'
  return validationFieldErrors(ctx, (err.validation ?? []) as ErrorObject[])
}

type ProblemSource = ApiError | { code: ErrorCode; fields?: (string | FieldError)[] }

function sendProblem(reply: FastifyReply, req: FastifyRequest, err: ProblemSource) {
  const body = problem(err.code, String(req.id), err instanceof ApiError ? err.options.fields : err.fields, err instanceof ApiError ? err.options.reason : undefined)
  if (err instanceof ApiError) {
    if (err.options.retryAfterSeconds !== undefined) reply.header('Retry-After', String(err.options.retryAfterSeconds))
    for (const [k, v] of Object.entries(err.options.headers ?? {})) reply.header(k, v)
  }
  if (body.status === 401) reply.header('WWW-Authenticate', 'ApiKey')
  reply.header('Cache-Control', 'no-store')
  // Also set by the onRequest hook, which an error raised before routing never reaches.
  reply.header('X-Content-Type-Options', 'nosniff')
  return reply.code(body.status).type('application/problem+json').send(body)
}

/** Node's limit on the request line plus headers (its default, stated): more is a 431. */
const MAX_HEADER_BYTES = 16 * 1024

/** Framework errors raised before routing (FST_ERR_BAD_URL, FST_ERR_MAX_PARAM_LENGTH) → catalogue, after the public-route limits. */
async function answerFrameworkError(ctx: AppContext, err: FastifyError, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('X-Request-ID', String(req.id))
  try {
    if (ctx.rateLimits.enabled) {
      ctx.rateLimits.checkGlobal()
      ctx.rateLimits.assertNotBlocked(req.ip)
    }
    await ctx.rateLimits.checkIp(req.ip, reply)
  } catch (limitErr) {
    if (limitErr instanceof ApiError) {
      sendProblem(reply, req, limitErr)
      return
    }
    req.log.error({ err: limitErr, request_id: req.id }, 'rate limit check failed')
    sendProblem(reply, req, { code: 'INTERNAL_ERROR' })
    return
  }
  const code: ErrorCode = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'URI_TOO_LONG' : err.code === 'FST_ERR_BAD_URL' ? 'INVALID_URL' : 'INTERNAL_ERROR'
  if (code === 'INTERNAL_ERROR') req.log.error({ err_code: err.code, request_id: req.id }, 'unexpected framework error')
  sendProblem(reply, req, { code })
}

/**
 * TRUST_PROXY for Fastify. A hop count trusts the N nearest senders whatever their address (Fastify
 * itself ignores a bare number), so it is only safe when the port is reachable through the proxy alone.
 */
function trustProxyOption(tp: boolean | number | string[]): boolean | string[] | ((addr: string, hop: number) => boolean) {
  if (typeof tp !== 'number') return tp
  if (tp === 0) return false
  return (_addr, hop) => hop < tp
}

export async function buildApp(ctx: AppContext, opts: BuildOptions = {}): Promise<App> {
  const transport = ctx.config.http
  const app = Fastify({
    loggerInstance: ctx.logger,
    bodyLimit: 1024 * 1024,
    requestTimeout: transport.requestTimeoutMs,
    // Node checks request/header deadlines on this interval (default 30 s): keep it a fraction of the shortest.
    http: { maxHeaderSize: MAX_HEADER_BYTES, connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(transport.headersTimeoutMs / 4))) },
    // Node's parser errors (431, 408, malformed HTTP) are answered from the catalogue on the raw socket.
    clientErrorHandler: makeClientErrorHandler(ctx.logger),
    // Bad percent-encoding and over-long path parameters: catalogue problems, still rate limited.
    frameworkErrors: (err, req, reply) => {
      void answerFrameworkError(ctx, err, req, reply)
    },
    connectionTimeout: 60_000,
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    exposeHeadRoutes: false,
    requestIdHeader: false,
    // One access line per request (onResponse below) instead of Fastify's two redacted ones.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (logger, bindings) => new LazyRequestLogger(logger as Logger, bindings) as unknown as FastifyBaseLogger,
    genReqId: (req) => {
      const sent = req.headers['x-request-id']
      return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID()
    },
    routerOptions: { maxParamLength: 200 },
    // req.ip is the client address the trusted proxy reports (TRUST_PROXY); per-IP limits key on it.
    trustProxy: trustProxyOption(ctx.config.trustProxy),
  }).withTypeProvider<TypeBoxTypeProvider>()
  // Fastify has no option for it: bound the time a client may take to send its headers (slowloris).
  app.server.headersTimeout = transport.headersTimeoutMs
  capConnections(app.server, { total: transport.maxConnections, perIp: transport.maxConnectionsPerIp }, (reason) =>
    ctx.logger.warn({ reason }, 'connection refused: over the connection cap'),
  )

  const bodyAjv = makeAjv(false)
  const paramAjv = makeAjv(true)
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : paramAjv).compile(schema as object))

  // Every route must declare its guard; a route without one stops startup.
  const routeTable: RouteInfo[] = []
  app.decorate('routeTable', routeTable)
  app.addHook('onRoute', function (route) {
    // The docs UI plugin's own pages and assets are public (it cannot declare a guard itself).
    if (!(route.config as { auth?: string } | undefined)?.auth && (this as unknown as Record<string, unknown>)[DOCS_SCOPE] === true) {
      route.config = { ...route.config, auth: 'public' } as typeof route.config
    }
    const auth = (route.config as { auth?: string } | undefined)?.auth
    if (!auth || !GUARDS.includes(auth as GuardKind)) {
      throw new Error(`route ${route.method} ${route.url} does not declare a guard (config.auth)`)
    }
    // A route without a query schema takes no query: unknown query fields are a 400, not ignored (SPEC §6).
    route.schema = { ...route.schema, querystring: route.schema?.querystring ?? NO_QUERY }
    const schema = route.schema as Record<string, unknown>
    const input = Object.fromEntries(['params', 'querystring', 'body', 'headers'].filter((k) => schema[k]).map((k) => [k, schema[k]]))
    for (const method of [route.method].flat()) routeTable.push({ method, url: route.url, auth: auth as GuardKind, input })
    // Optional bodies (rotate, cancel, ...) validate as {} when the client sends none: a hook on the
    // routes that take a body only, so GET routes run no hook for it.
    if ([route.method].flat().some((m) => BODY_METHODS.has(m))) {
      route.preValidation = [emptyBodyAsObject, ...[route.preValidation ?? []].flat()]
    }
  })

  app.decorateRequest('auth', null)
  app.decorateRequest('consoleSession', null)

  // Callback form: a cached key is decided without a promise (runGuard), the rest waits for the check.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('X-Request-ID', String(req.id))
    // Set here rather than in an onSend hook, so a response runs no onSend hook at all.
    if (req.url === '/console' || req.url.startsWith('/console/')) reply.headers(CONSOLE_HEADERS)
    else reply.header('X-Content-Type-Options', 'nosniff')
    let waiting: void | Promise<void>
    try {
      waiting = runGuard(ctx, req, reply)
    } catch (err) {
      done(err as FastifyError)
      return
    }
    if (waiting) waiting.then(() => done(), done)
    else done()
  })

  // Optional bodies (rotate, cancel, ...) validate as {} when the client sends none.

  const accessLog = createAccessLog(ctx.logger)
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched'
    const status = reply.statusCode
    const elapsed = reply.elapsedTime
    ctx.metrics.http.seriesOf(req.method, route, status).observe(elapsed / 1000)
    const org = req.auth?.kind === 'org' ? req.auth.org_slug : undefined
    accessLog({ req_id: String(req.id), method: req.method, route, status, ms: Math.round(elapsed * 100) / 100, org })
    done()
  })

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) {
      if (err.status === 429) ctx.metrics.rateLimited.inc({ reason: err.code })
      if (err.status === 401 || err.status === 403) {
        ctx.metrics.authFailures.inc({ guard: req.routeOptions.config?.auth ?? 'none', code: err.code })
      }
      return sendProblem(reply, req, err)
    }
    if (err.validation) return sendProblem(reply, req, { code: 'VALIDATION_FAILED', fields: validationErrors(err) })
    switch (err.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return sendProblem(reply, req, { code: 'INVALID_JSON' })
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendProblem(reply, req, { code: 'PAYLOAD_TOO_LARGE' })
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendProblem(reply, req, { code: 'UNSUPPORTED_MEDIA_TYPE' })
    }
    if (err instanceof SyntaxError || err.statusCode === 400) return sendProblem(reply, req, { code: 'INVALID_JSON' })
    req.log.error({ err, request_id: req.id }, 'unhandled error')
    return sendProblem(reply, req, { code: 'INTERNAL_ERROR' })
  })

  app.setNotFoundHandler((req, reply) => sendProblem(reply, req, { code: 'NOT_FOUND' }))

  if (opts.opsOnly) {
    healthRoutes(app, ctx)
    await app.ready()
    return app
  }

  if (ctx.config.enableApiDocs) await registerApiDocs(app)

  healthRoutes(app, ctx)
  adminRoutes(app, ctx)
  egressHostRoutes(app, ctx)
  organizationRoutes(app, ctx)
  integrationRoutes(app, ctx)
  pipelineRoutes(app, ctx)
  schedulerRoutes(app, ctx)
  runEventRoutes(app, ctx)
  planRoutes(app, ctx)
  dataRoutes(app, ctx)
  consoleRoutes(app, ctx)
  consoleDataRoutes(app, ctx)
  orgSelfServiceRoutes(app, ctx)
  orgWebhookRoutes(app, ctx)
  for (const mod of opts.routes ?? []) mod(app, ctx)

  await app.ready()
  return app
}
