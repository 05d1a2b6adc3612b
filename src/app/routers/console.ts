// The web console (issue 11): sign-in / session / sign-out under /console/api, and the built
// single-page app under /console. The session routes only exchange a key for a cookie; every data
// request the console makes goes to the /api/v1 routes through their own guards.
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { errorResponses, iso, Strict } from '../models/common.js'
import { loadConsoleAssets, type ConsoleAssets } from '../console/assets.js'
import { clearedSessionCookies, sessionCookie, type SessionService } from '../dependencies/session.js'
import { createSession, csrfTokenFor, endSession, purgeExpiredSessions, type SessionRow } from '../../core/sessions/store.js'
import { recordAudit } from '../../core/orgs/audit.js'

const SignInBody = Strict({ key: Type.String({ minLength: 1, maxLength: 512 }) })
const SessionView = Strict({
  principal: Type.Union([Type.Literal('org'), Type.Literal('admin')]),
  org_slug: Type.Union([Type.String({ maxLength: 64 }), Type.Null()]),
  company_name: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
  csrf_token: Type.String({ maxLength: 64 }),
  expires_at: Type.String({ maxLength: 40 }),
  idle_timeout_seconds: Type.Integer({ minimum: 1, maximum: 86400 }),
})
const SignedOut = Strict({ signed_out: Type.Boolean() })

const NOT_BUILT = Buffer.from(
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tenantflow console</title></head>' +
    '<body><main><h1>The console has not been built</h1><p>Run <code>npm run build</code>, then restart the server.</p></main></body></html>',
)

export interface ConsoleRouteOptions {
  /** Override of the built files (tests). */
  assets?: ConsoleAssets
}

/** The request's Origin, when sent, must be this server: a sign-in posted from another site is refused. */
function sameOrigin(origin: string | undefined, protocol: string, host: string | undefined): boolean {
  if (origin === undefined) return true
  return host !== undefined && origin === `${protocol}://${host}`
}

export function consoleRoutes(app: App, ctx: AppContext, opts: ConsoleRouteOptions = {}): void {
  const sessions = ctx.sessions
  if (!ctx.config.console.enabled || !sessions) return
  const assets = opts.assets ?? loadConsoleAssets()
  const maxAge = Math.floor(ctx.config.console.absoluteMs / 1000)
  const db = ctx.db.kysely

  async function view(s: SessionRow, token: string, svc: SessionService) {
    let company: string | null = null
    if (s.org_slug) {
      const p = await db.selectFrom('org_profiles').select('company_name').where('org_slug', '=', s.org_slug).limit(1).executeTakeFirst()
      company = p?.company_name ?? null
    }
    return {
      principal: s.principal,
      org_slug: s.org_slug,
      company_name: company,
      csrf_token: csrfTokenFor(token),
      expires_at: iso(Number(s.expires_at))!,
      idle_timeout_seconds: Math.floor(svc.options.idleMs / 1000),
    }
  }

  app.post(
    '/console/api/session',
    { config: { auth: 'public' }, schema: { body: SignInBody, response: { 201: SessionView, ...errorResponses } } },
    async (req, reply) => {
      if (!sameOrigin(req.headers.origin, req.protocol, req.headers.host)) throw new ApiError('CSRF_TOKEN_INVALID')
      const key = req.body.key.trim()
      const now = ctx.clock.now()
      let created: Awaited<ReturnType<typeof createSession>>
      if (key.length >= 32 && ctx.auth.isRootKey(key)) {
        created = await createSession(db, { principal: 'admin', org_slug: null, key_id: null, key_expires_at: null, root_tag: sessions.rootTag }, sessions.options, now)
      } else {
        const identity = key.length <= 128 ? await ctx.auth.verifyOrgKey(key) : null
        if (!identity) {
          await ctx.rateLimits.recordFailedAuth(req.ip)
          throw new ApiError('INVALID_API_KEY')
        }
        await ctx.rateLimits.consume('org', identity.org_slug, identity.requests_per_minute, reply)
        created = await createSession(
          db,
          { principal: 'org', org_slug: identity.org_slug, key_id: identity.key_id, key_expires_at: identity.key_expires_at, root_tag: null },
          sessions.options,
          now,
        )
        await recordAudit(
          db,
          { org_slug: identity.org_slug, actor: `key:${identity.key_id}`, action: 'console.signed_in', resource_type: 'session', resource_id: null, request_id: String(req.id) },
          now,
        )
      }
      // Opportunistic, bounded clean-up of sessions nobody will present again.
      await purgeExpiredSessions(db, sessions.options, now)
      reply.header('Set-Cookie', sessionCookie(req, created.token, maxAge, sessions.options.forceSecureCookie))
      reply.header('Cache-Control', 'no-store')
      return reply.code(201).send(await view(created.row, created.token, sessions))
    },
  )

  app.get(
    '/console/api/session',
    { config: { auth: 'org_or_admin' }, schema: { response: { 200: SessionView, ...errorResponses } } },
    async (req, reply) => {
      const presented = req.consoleSession
      if (!presented) throw new ApiError('NOT_FOUND')
      reply.header('Cache-Control', 'no-store')
      return view(presented.row, presented.token, sessions)
    },
  )

  app.delete(
    '/console/api/session',
    { config: { auth: 'org_or_admin' }, schema: { body: Strict({}), response: { 200: SignedOut, ...errorResponses } } },
    async (req, reply) => {
      const presented = req.consoleSession
      if (!presented) throw new ApiError('NOT_FOUND')
      await endSession(db, presented.row.session_hash)
      reply.header('Set-Cookie', clearedSessionCookies(req, sessions.options.forceSecureCookie))
      reply.header('Cache-Control', 'no-store')
      return { signed_out: true }
    },
  )

  const sendIndex = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    reply.header('Cache-Control', 'no-cache')
    return reply.type('text/html; charset=utf-8').send(assets.index ?? NOT_BUILT)
  }
  app.get('/console', { config: { auth: 'public' }, schema: { hide: true } }, sendIndex)
  app.get('/console/', { config: { auth: 'public' }, schema: { hide: true } }, sendIndex)

  app.get(
    '/console/assets/:file',
    { config: { auth: 'public' }, schema: { hide: true, params: Strict({ file: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', maxLength: 128 }) }) } },
    async (req, reply) => {
      const asset = assets.files.get(req.params.file)
      if (!asset) throw new ApiError('NOT_FOUND')
      // Names carry a content hash, so a name never changes meaning: cache for a year.
      reply.header('Cache-Control', 'public, max-age=31536000, immutable')
      return reply.type(asset.type).send(asset.body)
    },
  )
}
