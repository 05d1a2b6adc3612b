// The org's optional run-completion webhook (org key): set (the signing secret is generated here and
// shown once, on creation or rotation; stored envelope-encrypted, never returned again), read (with
// its recent deliveries) and delete. Deliveries: core/webhooks (docs/webhooks.md).
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { actorOf } from '../dependencies/auth.js'
import { errorResponses, iso, IsoTime, limitQuery, OrgParams, Strict } from '../models/common.js'
import { recordAudit } from '../../core/orgs/audit.js'
import { checkUrl, egressOptionsFromConfig } from '../../core/http/egress.js'
import { EgressError } from '../../core/http/types.js'
import { KmsUnavailableError } from '../../core/security/kms-encryption.js'
import { validateWebhookConfig } from '../../core/processors/notify/webhook.js'
import { deleteWebhook, getWebhook, listDeliveries, MAX_DELIVERIES_LISTED, putWebhook, type WebhookView } from '../../core/webhooks/store.js'

const DeliveryStatus = Type.Union([Type.Literal('PENDING'), Type.Literal('DELIVERING'), Type.Literal('DELIVERED'), Type.Literal('FAILED')])

const PutBody = Strict({
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'Where each finished run is POSTed (https in production; the egress policy applies).' }),
  rotate_secret: Type.Optional(Type.Boolean({ description: 'Generate a new signing secret (returned once); deliveries not sent yet are signed with it.' })),
})

const WebhookBase = {
  org_slug: Type.String({ maxLength: 64 }),
  webhook_id: Type.String({ maxLength: 48 }),
  url: Type.String({ maxLength: 2048 }),
  created_at: Type.String({ maxLength: 40 }),
  updated_at: Type.String({ maxLength: 40 }),
}

const PutResponse = Strict({
  ...WebhookBase,
  signing_secret: Type.Union([Type.String({ maxLength: 64 }), Type.Null()], { description: 'Shown once, when generated (creation or rotate_secret); null otherwise.' }),
})

const Delivery = Strict({
  delivery_id: Type.String({ maxLength: 48 }),
  run_id: Type.String({ maxLength: 48 }),
  event: Type.String({ maxLength: 32 }),
  status: DeliveryStatus,
  attempts: Type.Integer({ minimum: 0, maximum: 1000 }),
  next_attempt_at: IsoTime,
  last_status_code: Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Type.Null()]),
  last_error_code: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
  delivered_at: IsoTime,
  created_at: Type.String({ maxLength: 40 }),
})

const GetResponse = Strict({
  ...WebhookBase,
  last_delivery_at: IsoTime,
  last_delivery_status: Type.Union([DeliveryStatus, Type.Null()]),
  last_error_code: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
  deliveries: Type.Array(Delivery, { maxItems: MAX_DELIVERIES_LISTED }),
})

const GetQuery = Strict({ limit: limitQuery(MAX_DELIVERIES_LISTED), status: Type.Optional(DeliveryStatus) })

const DeleteResponse = Strict({ org_slug: Type.String({ maxLength: 64 }), deleted: Type.Boolean() })

const noStore = { 'Cache-Control': 'no-store' }

const base = (w: WebhookView) => ({ org_slug: w.org_slug, webhook_id: w.webhook_id, url: w.url, created_at: iso(w.created_at)!, updated_at: iso(w.updated_at)! })

/** Shape first (VALIDATION_FAILED), then the org's egress policy (DESTINATION_NOT_ALLOWED), as for credentials. */
async function checkTarget(ctx: AppContext, orgSlug: string, raw: string): Promise<string> {
  let url: string
  try {
    url = validateWebhookConfig({ url: raw }).url
  } catch {
    throw new ApiError('VALIDATION_FAILED', { fields: [{ path: 'body/url', message: 'must be an absolute http(s) URL without credentials or fragment' }] })
  }
  const opts = egressOptionsFromConfig(ctx.config)
  if (url.startsWith('http:') && (opts.production || !opts.allowLoopback)) {
    throw new ApiError('VALIDATION_FAILED', { fields: [{ path: 'body/url', message: 'must use https' }] })
  }
  try {
    checkUrl(url, opts, await ctx.egressHosts.hostsFor(orgSlug))
  } catch (err) {
    if (!(err instanceof EgressError)) throw err
    throw new ApiError('DESTINATION_NOT_ALLOWED', { fields: [{ path: 'body/url', message: 'is not an allowed destination' }] })
  }
  return url
}

export function orgWebhookRoutes(app: App, ctx: AppContext): void {
  const db = ctx.db.kysely

  app.put(
    '/api/v1/organizations/:org_slug/webhook',
    { config: { auth: 'org' }, schema: { params: OrgParams, body: PutBody, response: { 200: PutResponse, 201: PutResponse, ...errorResponses } } },
    async (req, reply) => {
      const org = req.params.org_slug
      const url = await checkTarget(ctx, org, req.body.url)
      const now = ctx.clock.now()
      let r: Awaited<ReturnType<typeof putWebhook>>
      try {
        r = await putWebhook(db, ctx.kms, { org_slug: org, url, rotate: req.body.rotate_secret ?? false, now })
      } catch (err) {
        if (err instanceof KmsUnavailableError) throw new ApiError('SERVICE_UNAVAILABLE')
        throw err
      }
      // The URL can carry a token in its path: the audit trail keeps only its host.
      const action = r.created ? 'webhook.created' : r.signing_secret ? 'webhook.secret_rotated' : 'webhook.updated'
      await recordAudit(
        db,
        { org_slug: org, actor: actorOf(req), action, resource_type: 'webhook', resource_id: r.webhook.webhook_id, details: { host: new URL(url).host }, request_id: String(req.id) },
        now,
      )
      reply.headers(noStore)
      return reply.code(r.created ? 201 : 200).send({ ...base(r.webhook), signing_secret: r.signing_secret })
    },
  )

  app.get(
    '/api/v1/organizations/:org_slug/webhook',
    { config: { auth: 'org' }, schema: { params: OrgParams, querystring: GetQuery, response: { 200: GetResponse, ...errorResponses } } },
    async (req, reply) => {
      const w = await getWebhook(db, req.params.org_slug)
      if (!w) throw new ApiError('NOT_FOUND')
      const deliveries = await listDeliveries(db, req.params.org_slug, req.query.limit ?? 20, req.query.status)
      reply.headers(noStore)
      return {
        ...base(w),
        last_delivery_at: iso(w.last_delivery_at),
        last_delivery_status: (w.last_delivery_status as 'PENDING' | 'DELIVERING' | 'DELIVERED' | 'FAILED' | null) ?? null,
        last_error_code: w.last_error_code,
        deliveries: deliveries.map((d) => ({
          ...d,
          next_attempt_at: d.status === 'PENDING' ? iso(d.next_attempt_at) : null,
          delivered_at: iso(d.delivered_at),
          created_at: iso(d.created_at)!,
        })),
      }
    },
  )

  app.delete(
    '/api/v1/organizations/:org_slug/webhook',
    { config: { auth: 'org' }, schema: { params: OrgParams, body: Strict({}), response: { 200: DeleteResponse, ...errorResponses } } },
    async (req) => {
      const org = req.params.org_slug
      const now = ctx.clock.now()
      const w = await getWebhook(db, org)
      if (!w || !(await deleteWebhook(db, org, now))) throw new ApiError('NOT_FOUND')
      await recordAudit(db, { org_slug: org, actor: actorOf(req), action: 'webhook.deleted', resource_type: 'webhook', resource_id: w.webhook_id, request_id: String(req.id) }, now)
      return { org_slug: org, deleted: true }
    },
  )
}
