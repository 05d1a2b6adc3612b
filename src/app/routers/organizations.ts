// Organizations: dry-run and onboarding (root), subscription, quota, API key and offboarding.
import type { FastifyRequest } from 'fastify'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { actorOf } from '../dependencies/auth.js'
import { errorResponses, iso, OrgParams } from '../models/common.js'
import {
  ApiKeyInfoResponse,
  DeleteBody,
  DeletionResponse,
  DryRunResponse,
  IdempotencyHeaders,
  OnboardBody,
  OnboardResponse,
  QuotaResponse,
  RotateBody,
  RotateResponse,
  SubscriptionBody,
  SubscriptionResponse,
} from '../models/organizations.js'
import { dryRunOnboarding, offboardOrg, onboardOrg, type OrgDeps } from '../../core/orgs/onboarding.js'
import { getSubscription, updateSubscription } from '../../core/orgs/subscriptions.js'
import { usageReader } from '../../core/orgs/usage.js'
import { activeKeyInfo, prepareApiKey, storeRotatedKey } from '../../core/orgs/api-key-store.js'
import { recordAudit } from '../../core/orgs/audit.js'
import type { OrgSubscriptionsTable } from '../../core/db/schema.js'

export function orgDeps(ctx: AppContext): OrgDeps {
  return {
    db: ctx.db,
    kms: ctx.kms,
    now: () => ctx.clock.now(),
    createDataset: (slug, datasetId) => ctx.datasets.create(slug, datasetId),
    dropDataset: (ds) => ctx.datasets.drop(ds),
    destroyCredentials: (trx, slug) => ctx.credentials.destroyOrg(trx, slug),
    stopOrgRuns: (ds) => ctx.bus.publish({ type: 'org.offboarded', org_slug: ds.orgSlug, dataset_id: ds.datasetId }),
    evictOrg: (slug) => ctx.auth.evictOrg(slug),
    plans: ctx.plans,
  }
}

/** 404 unless the org exists and is not being offboarded (root key may name any org; org keys are already matched to it). */
async function requireOrg(ctx: AppContext, orgSlug: string): Promise<void> {
  const row = await ctx.db.kysely
    .selectFrom('org_profiles')
    .select('org_slug')
    .where('org_slug', '=', orgSlug)
    .where('status', '<>', 'OFFBOARDING')
    .limit(1)
    .executeTakeFirst()
  if (!row) throw new ApiError('ORG_NOT_FOUND')
}

const noStore = { 'Cache-Control': 'no-store' }

/** Cache eviction after a committed change: never turns the committed answer into a 5xx. */
function evictAfterCommit(ctx: AppContext, orgSlug: string): Promise<boolean> {
  return ctx.auth.evictOrgAfterCommit(orgSlug, (err, attempt) =>
    ctx.logger.warn({ org: orgSlug, attempt, err_name: (err as Error)?.name }, 'auth cache eviction broadcast failed; retrying in the background'),
  )
}

export function organizationRoutes(app: App, ctx: AppContext): void {
  const deps = orgDeps(ctx)
  const readQuota = usageReader(ctx.db, () => ctx.clock.now())

  app.post(
    '/api/v1/organizations/dryrun',
    { config: { auth: 'admin' }, schema: { body: OnboardBody, response: { 200: DryRunResponse, ...errorResponses } } },
    async (req) => dryRunOnboarding(deps, req.body),
  )

  app.post(
    '/api/v1/organizations/onboard',
    {
      config: { auth: 'admin' },
      schema: { body: OnboardBody, headers: IdempotencyHeaders, response: { 201: OnboardResponse, 200: OnboardResponse, ...errorResponses } },
    },
    async (req, reply) => {
      const outcome = await onboardOrg(deps, req.body, { idempotencyKey: req.headers['idempotency-key'], requestId: String(req.id) })
      reply.headers(noStore)
      switch (outcome.kind) {
        case 'exists':
          throw new ApiError('ORG_EXISTS')
        case 'idempotency_conflict':
          throw new ApiError('IDEMPOTENCY_CONFLICT')
        case 'replayed':
          reply.header('Idempotent-Replayed', 'true')
          return reply.code(outcome.status).send(outcome.body)
        case 'created':
          return reply.code(201).send(outcome.result)
      }
    },
  )

  app.get(
    '/api/v1/organizations/:org_slug/subscription',
    { config: { auth: 'org_or_admin' }, schema: { params: OrgParams, response: { 200: SubscriptionResponse, ...errorResponses } } },
    async (req) => {
      const sub = await getSubscription(ctx.db.kysely, req.params.org_slug)
      if (!sub) throw new ApiError('ORG_NOT_FOUND')
      return subscriptionView(sub)
    },
  )

  app.put(
    '/api/v1/organizations/:org_slug/subscription',
    {
      config: { auth: 'admin' },
      schema: { params: OrgParams, body: SubscriptionBody, response: { 200: SubscriptionResponse, ...errorResponses } },
    },
    async (req) => {
      const now = ctx.clock.now()
      // Audit and rendering happen inside the transaction: a failure there answers 500 with nothing committed.
      const view = await updateSubscription(ctx.db.kysely, req.params.org_slug, req.body, now, async (trx, result) => {
        await recordAudit(
          trx,
          {
            org_slug: req.params.org_slug,
            actor: actorOf(req),
            action: 'subscription.updated',
            resource_type: 'subscription',
            resource_id: result.after.subscription_id,
            details: { changed: Object.keys(req.body), plan: result.after.plan_name, status: result.after.status },
            request_id: String(req.id),
          },
          now,
        )
        return subscriptionView(result.after)
      }, ctx.plans)
      if (!view) throw new ApiError('ORG_NOT_FOUND')
      await evictAfterCommit(ctx, req.params.org_slug)
      return view
    },
  )

  app.get(
    '/api/v1/organizations/:org_slug/quota',
    { config: { auth: 'org_or_admin' }, schema: { params: OrgParams, response: { 200: QuotaResponse, ...errorResponses } } },
    async (req) => {
      const usage = await readQuota(req.params.org_slug)
      if (!usage) throw new ApiError('ORG_NOT_FOUND')
      return usage
    },
  )

  app.get(
    '/api/v1/organizations/:org_slug/api-key',
    { config: { auth: 'org_or_admin' }, schema: { params: OrgParams, response: { 200: ApiKeyInfoResponse, ...errorResponses } } },
    async (req) => {
      const key = await activeKeyInfo(ctx.db.kysely, req.params.org_slug, ctx.clock.now())
      if (!key) throw new ApiError('NOT_FOUND')
      return {
        org_slug: req.params.org_slug,
        key_id: key.key_id,
        fingerprint: key.fingerprint,
        created_at: iso(key.created_at)!,
        last_used_at: iso(key.last_used_at),
        expires_at: iso(key.expires_at),
      }
    },
  )

  app.post(
    '/api/v1/organizations/:org_slug/api-key/rotate',
    {
      config: { auth: 'org_or_admin' },
      schema: { params: OrgParams, body: RotateBody, response: { 200: RotateResponse, ...errorResponses } },
    },
    async (req, reply) => {
      const org = req.params.org_slug
      await requireOrg(ctx, org)
      const now = ctx.clock.now()
      // Encrypt before touching any row: a KMS failure leaves the current key working.
      const issued = await prepareApiKey(ctx.kms, org, now)
      // No grace_seconds: the configured default (1 h), so a rotation never breaks clients mid-deploy.
      const grace = req.body.grace_seconds ?? ctx.config.rotationGraceSeconds
      const previousUntil = await ctx.db.kysely.transaction().execute(async (trx) => {
        const until = await storeRotatedKey(trx, issued, grace, now)
        await recordAudit(
          trx,
          {
            org_slug: org,
            actor: actorOf(req),
            action: 'api_key.rotated',
            resource_type: 'api_key',
            resource_id: issued.key_id,
            details: { grace_seconds: grace },
            request_id: String(req.id),
          },
          now,
        )
        return until
      })
      // The new key is stored and the old one retired in one transaction; a failed eviction broadcast must
      // not hide the new key (without a grace period the org would be locked out): it is retried instead.
      await evictAfterCommit(ctx, org)
      reply.headers(noStore)
      return { org_slug: org, api_key: issued.api_key, fingerprint: issued.row.fingerprint, previous_key_expires_at: iso(previousUntil), grace_seconds: grace }
    },
  )

  app.delete(
    '/api/v1/organizations/:org_slug',
    {
      config: { auth: 'admin' },
      schema: { params: OrgParams, body: DeleteBody, response: { 200: DeletionResponse, ...errorResponses } },
    },
    async (req: FastifyRequest<{ Params: { org_slug: string }; Body: { confirm_org_slug: string } }>) => {
      if (req.body.confirm_org_slug !== req.params.org_slug) throw new ApiError('CONFIRMATION_MISMATCH')
      const record = await offboardOrg(deps, req.params.org_slug, { requestId: String(req.id) })
      if (!record) throw new ApiError('ORG_NOT_FOUND')
      return record
    },
  )
}

function subscriptionView(sub: OrgSubscriptionsTable) {
  return {
    org_slug: sub.org_slug,
    subscription_id: sub.subscription_id,
    plan_name: sub.plan_name,
    status: sub.status,
    daily_limit: sub.daily_limit,
    monthly_limit: sub.monthly_limit,
    concurrent_limit: sub.concurrent_limit,
    requests_per_minute: sub.requests_per_minute,
    triggers_per_minute: sub.triggers_per_minute,
    trial_end_date: iso(sub.trial_end_at),
    created_at: iso(sub.created_at)!,
    updated_at: iso(sub.updated_at)!,
  }
}
