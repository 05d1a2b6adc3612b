// The plan catalogue of SPEC §8.1: the single source of default limits.
export type PlanName = 'STARTER' | 'PROFESSIONAL' | 'SCALE' | 'ENTERPRISE'

export interface PlanLimits {
  plan_name: PlanName
  daily_limit: number
  monthly_limit: number
  concurrent_limit: number
  requests_per_minute: number
  triggers_per_minute: number
}

export const PLANS: Record<PlanName, PlanLimits> = {
  STARTER: { plan_name: 'STARTER', daily_limit: 6, monthly_limit: 180, concurrent_limit: 20, requests_per_minute: 100, triggers_per_minute: 50 },
  PROFESSIONAL: { plan_name: 'PROFESSIONAL', daily_limit: 25, monthly_limit: 750, concurrent_limit: 20, requests_per_minute: 100, triggers_per_minute: 50 },
  SCALE: { plan_name: 'SCALE', daily_limit: 100, monthly_limit: 3000, concurrent_limit: 20, requests_per_minute: 1000, triggers_per_minute: 50 },
  ENTERPRISE: { plan_name: 'ENTERPRISE', daily_limit: 999999, monthly_limit: 999999, concurrent_limit: 999999, requests_per_minute: 10000, triggers_per_minute: 1000 },
}

/** Bounds for per-org overrides through PUT subscription. */
export const LIMIT_BOUNDS = {
  daily_limit: { minimum: 1, maximum: 999999 },
  monthly_limit: { minimum: 1, maximum: 999999 },
  concurrent_limit: { minimum: 1, maximum: 999999 },
  requests_per_minute: { minimum: 1, maximum: 1000000 },
  triggers_per_minute: { minimum: 1, maximum: 100000 },
} as const
