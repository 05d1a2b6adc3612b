// Operations endpoints (not under /api/v1): liveness, readiness with a 5 s database check (and the shared
// rate-limit store: "degraded" with a reason while it fails), metrics.
import Type from 'typebox'
import { sql } from 'kysely'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { errorResponses, Strict } from '../models/common.js'
import { ApiError } from '../errors.js'

const Status = Strict({ status: Type.String({ maxLength: 32 }) })

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

export function healthRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/health',
    {
      config: { auth: 'public' },
      schema: {
        response: {
          200: Strict({ status: Type.String({ maxLength: 32 }), version: Type.String({ maxLength: 32 }), environment: Type.String({ maxLength: 32 }) }),
          ...errorResponses,
        },
      },
    },
    async () => ({ status: 'healthy', version: '0.1.0', environment: ctx.config.environment }),
  )

  app.get('/health/live', { config: { auth: 'public' }, schema: { response: { 200: Status, ...errorResponses } } }, async () => {
    if (ctx.state.shuttingDown) throw new ApiError('SHUTTING_DOWN')
    return { status: 'alive' }
  })

  app.get(
    '/health/ready',
    {
      config: { auth: 'public' },
      schema: {
        response: {
          200: Strict({
            status: Type.String({ maxLength: 32 }),
            checks: Strict({ database: Type.Boolean(), shutdown: Type.Boolean(), rate_limit_store: Type.Boolean() }),
            reasons: Type.Array(Type.String({ maxLength: 200 }), { maxItems: 10 }),
          }),
          ...errorResponses,
        },
      },
    },
    async () => {
      if (ctx.state.shuttingDown) throw new ApiError('SHUTTING_DOWN')
      try {
        await withTimeout(sql`SELECT 1`.execute(ctx.db.kysely), 5000)
      } catch {
        throw new ApiError('SERVICE_UNAVAILABLE')
      }
      // A failing shared rate-limit store does not stop this instance (limits fall back as configured), so it
      // answers 200 "degraded" with the reason rather than taking the instance out of rotation.
      const store = ctx.rateLimits.storeHealth()
      const reasons = store.healthy ? [] : [`rate-limit store (${store.store}): ${store.reason}`]
      return { status: store.healthy ? 'ready' : 'degraded', checks: { database: true, shutdown: false, rate_limit_store: store.healthy }, reasons }
    },
  )

  // The root key or, preferably, the METRICS_TOKEN (`Authorization: Bearer`) that can read nothing else.
  app.get('/metrics', { config: { auth: 'admin', scrape: true }, schema: { hide: true } }, async (_req, reply) => {
    reply.type(ctx.metrics.registry.contentType)
    return ctx.metrics.registry.metrics()
  })
}
