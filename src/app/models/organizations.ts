// Request and response schemas for onboarding, subscriptions, quotas and API keys.
import Type from 'typebox'
import { IsoTime, OrgSlug, Strict } from './common.js'
import { LIMIT_BOUNDS } from '../../core/orgs/plans.js'

export const OnboardPlan = Type.Union([Type.Literal('STARTER'), Type.Literal('PROFESSIONAL'), Type.Literal('SCALE')])
export const AnyPlan = Type.Union([OnboardPlan, Type.Literal('ENTERPRISE')])
export const SubscriptionStatus = Type.Union(
  ['ACTIVE', 'TRIAL', 'SUSPENDED', 'CANCELLED', 'EXPIRED'].map((s) => Type.Literal(s)),
)

export const OnboardBody = Strict({
  org_slug: OrgSlug,
  company_name: Type.String({ minLength: 2, maxLength: 200, pattern: '^[^\\u0000-\\u001f]+$' }),
  admin_email: Type.String({ format: 'email', maxLength: 254 }),
  subscription_plan: OnboardPlan,
  trial_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 90 })),
})

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{8,128}$', maxLength: 128 })),
})

export const OnboardResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  api_key: Type.String({ maxLength: 64 }),
  api_key_fingerprint: Type.String({ maxLength: 8 }),
  subscription_plan: Type.String({ maxLength: 32 }),
  subscription_status: Type.String({ maxLength: 16 }),
  trial_end_date: IsoTime,
  dataset_id: Type.String({ maxLength: 128 }),
  created_at: Type.String({ maxLength: 40 }),
})

export const DryRunResponse = Strict({
  ready_for_onboarding: Type.Boolean(),
  checks: Type.Array(
    Strict({ name: Type.String({ maxLength: 64 }), passed: Type.Boolean(), message: Type.String({ maxLength: 200 }) }),
    { maxItems: 20 },
  ),
})

const limit = (k: keyof typeof LIMIT_BOUNDS) => Type.Integer(LIMIT_BOUNDS[k])

export const SubscriptionResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  subscription_id: Type.String({ maxLength: 64 }),
  plan_name: Type.String({ maxLength: 32 }),
  status: Type.String({ maxLength: 16 }),
  daily_limit: Type.Integer(),
  monthly_limit: Type.Integer(),
  concurrent_limit: Type.Integer(),
  requests_per_minute: Type.Integer(),
  triggers_per_minute: Type.Integer(),
  trial_end_date: IsoTime,
  created_at: Type.String({ maxLength: 40 }),
  updated_at: Type.String({ maxLength: 40 }),
})

export const SubscriptionBody = Strict({
  plan_name: Type.Optional(AnyPlan),
  status: Type.Optional(SubscriptionStatus),
  daily_limit: Type.Optional(limit('daily_limit')),
  monthly_limit: Type.Optional(limit('monthly_limit')),
  concurrent_limit: Type.Optional(limit('concurrent_limit')),
  requests_per_minute: Type.Optional(limit('requests_per_minute')),
  triggers_per_minute: Type.Optional(limit('triggers_per_minute')),
  trial_end_date: Type.Optional(Type.Union([Type.String({ format: 'date-time', maxLength: 40 }), Type.Null()])),
})

const Usage = Strict({ used: Type.Integer(), limit: Type.Integer(), remaining: Type.Integer(), resets_at: Type.String({ maxLength: 40 }) })
export const QuotaResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  plan_name: Type.String({ maxLength: 32 }),
  daily: Usage,
  monthly: Usage,
  concurrent: Strict({ running: Type.Integer(), limit: Type.Integer(), remaining: Type.Integer() }),
  succeeded_today: Type.Integer(),
  failed_today: Type.Integer(),
  requests_per_minute: Type.Integer(),
  triggers_per_minute: Type.Integer(),
})

export const ApiKeyInfoResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  key_id: Type.String({ maxLength: 64 }),
  fingerprint: Type.String({ maxLength: 8 }),
  created_at: Type.String({ maxLength: 40 }),
  last_used_at: IsoTime,
  expires_at: IsoTime,
})

export const RotateBody = Strict({ grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })) })
export const RotateResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  api_key: Type.String({ maxLength: 64 }),
  fingerprint: Type.String({ maxLength: 8 }),
  /** When the previous key stops working, and the grace that was applied (0 = revoked now). */
  previous_key_expires_at: IsoTime,
  grace_seconds: Type.Integer({ minimum: 0, maximum: 86400 }),
})

export const DeleteBody = Strict({ confirm_org_slug: Type.String({ maxLength: 64 }) })
export const DeletionResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  deletion_id: Type.String({ maxLength: 64 }),
  deleted_at: Type.String({ maxLength: 40 }),
  api_keys_revoked: Type.Integer(),
  runs_cancelled: Type.Integer(),
  credentials_destroyed: Type.Integer(),
  dataset_dropped: Type.Boolean(),
  dataset_tables_deleted: Type.Integer({ minimum: 0 }),
  rows_deleted: Type.Record(Type.String({ maxLength: 64 }), Type.Integer()),
})
