// GET /api/v1/plans: the plan catalogue (configs/plans.yaml or PLANS_FILE) for any valid key, so a
// tenant can see what each plan allows (including the minimum schedule interval) before changing.
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { errorResponses, Strict } from '../models/common.js'
import { PLAN_NAMES } from '../../core/orgs/plans.js'

const Count = Type.Integer({ minimum: 0, maximum: 100_000_000 })
const PlanView = Strict({
  plan_name: Type.String({ maxLength: 32 }),
  description: Type.String({ maxLength: 200 }),
  available_for_onboarding: Type.Boolean(),
  daily_limit: Count,
  monthly_limit: Count,
  concurrent_limit: Count,
  requests_per_minute: Count,
  triggers_per_minute: Count,
  min_schedule_interval_seconds: Count,
})
const PlansResponse = Strict({ plans: Type.Array(PlanView, { maxItems: 10 }) })

export function planRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/plans',
    { config: { auth: 'org_or_admin' }, schema: { response: { 200: PlansResponse, ...errorResponses } } },
    async () => ({
      plans: PLAN_NAMES.map((n) => {
        const { onboarding, ...p } = ctx.plans[n]
        return { ...p, available_for_onboarding: onboarding }
      }),
    }),
  )
}
