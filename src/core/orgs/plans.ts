// The plan catalogue (SPEC §8.1): default limits per plan and the minimum schedule interval, read from
// configs/plans.yaml (or PLANS_FILE). The four plan names are fixed; their values are configuration.
// Limits are copied onto an org's subscription at onboarding / plan change, so editing the catalogue
// never changes an existing org's stored limits.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'

export const PLAN_NAMES = ['STARTER', 'PROFESSIONAL', 'SCALE', 'ENTERPRISE'] as const
export type PlanName = (typeof PLAN_NAMES)[number]

export interface PlanLimits {
  plan_name: PlanName
  daily_limit: number
  monthly_limit: number
  concurrent_limit: number
  requests_per_minute: number
  triggers_per_minute: number
}

export interface PlanSpec extends PlanLimits {
  description: string
  /** Whether POST /organizations/onboard offers it (ENTERPRISE is assigned by the operator). */
  onboarding: boolean
  /** A schedule of an org on this plan may not fire more often than this (seconds). */
  min_schedule_interval_seconds: number
}

export type PlanCatalog = Readonly<Record<PlanName, Readonly<PlanSpec>>>

/** Bounds for per-org overrides through PUT subscription (and for catalogue values). */
export const LIMIT_BOUNDS = {
  daily_limit: { minimum: 1, maximum: 999999 },
  monthly_limit: { minimum: 1, maximum: 999999 },
  concurrent_limit: { minimum: 1, maximum: 999999 },
  requests_per_minute: { minimum: 1, maximum: 1000000 },
  triggers_per_minute: { minimum: 1, maximum: 100000 },
} as const

const INTERVAL_BOUNDS = { minimum: 60, maximum: 31 * 86_400 }
const KEYS = ['description', 'onboarding', 'min_schedule_interval_seconds', ...Object.keys(LIMIT_BOUNDS)]

export class PlanCatalogError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`plan catalogue: ${field} ${reason}`)
    this.name = 'PlanCatalogError'
  }
}

/** configs/plans.yaml of this package (from src/ or dist/src/). */
export function shippedPlansFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const f = join(dir, 'configs', 'plans.yaml')
    if (existsSync(f) && existsSync(join(dir, 'package.json'))) return f
    dir = dirname(dir)
  }
  throw new PlanCatalogError('configs/plans.yaml', 'was not found in the package')
}

function int(o: Record<string, unknown>, field: string, key: string, b: { minimum: number; maximum: number }): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < b.minimum || v > b.maximum) {
    throw new PlanCatalogError(`${field}.${key}`, `must be an integer between ${b.minimum} and ${b.maximum}`)
  }
  return v
}

/** Parses and checks a catalogue document; throws PlanCatalogError naming the field. */
export function parsePlanCatalog(text: string): PlanCatalog {
  let doc: unknown
  try {
    doc = parse(text, { maxAliasCount: 0 })
  } catch {
    throw new PlanCatalogError('file', 'is not valid YAML')
  }
  const plans = (doc as { plans?: unknown } | null)?.plans
  if (!plans || typeof plans !== 'object' || Array.isArray(plans)) throw new PlanCatalogError('plans', 'must be a mapping of plan names')
  const extra = Object.keys(doc as object).filter((k) => k !== 'plans')
  if (extra.length) throw new PlanCatalogError(extra[0]!, 'is not a known key')
  const out: Partial<Record<PlanName, PlanSpec>> = {}
  for (const name of Object.keys(plans)) {
    if (!(PLAN_NAMES as readonly string[]).includes(name)) throw new PlanCatalogError(`plans.${name.slice(0, 32)}`, `is not a plan name (${PLAN_NAMES.join(', ')})`)
  }
  for (const name of PLAN_NAMES) {
    const o = (plans as Record<string, unknown>)[name]
    const field = `plans.${name}`
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new PlanCatalogError(field, 'must be defined')
    const p = o as Record<string, unknown>
    const unknown = Object.keys(p).find((k) => !KEYS.includes(k))
    if (unknown) throw new PlanCatalogError(`${field}.${unknown.slice(0, 64)}`, 'is not a known key')
    if (typeof p.description !== 'string' || p.description.length > 200) throw new PlanCatalogError(`${field}.description`, 'must be text of at most 200 characters')
    if (typeof p.onboarding !== 'boolean') throw new PlanCatalogError(`${field}.onboarding`, 'must be true or false')
    const spec: PlanSpec = {
      plan_name: name,
      description: p.description,
      onboarding: p.onboarding,
      daily_limit: int(p, field, 'daily_limit', LIMIT_BOUNDS.daily_limit),
      monthly_limit: int(p, field, 'monthly_limit', LIMIT_BOUNDS.monthly_limit),
      concurrent_limit: int(p, field, 'concurrent_limit', LIMIT_BOUNDS.concurrent_limit),
      requests_per_minute: int(p, field, 'requests_per_minute', LIMIT_BOUNDS.requests_per_minute),
      triggers_per_minute: int(p, field, 'triggers_per_minute', LIMIT_BOUNDS.triggers_per_minute),
      min_schedule_interval_seconds: int(p, field, 'min_schedule_interval_seconds', INTERVAL_BOUNDS),
    }
    out[name] = Object.freeze(spec)
  }
  return Object.freeze(out as Record<PlanName, PlanSpec>)
}

/** Loads the catalogue from `file` (PLANS_FILE) or the shipped configs/plans.yaml. */
export function loadPlanCatalog(file: string | null = null): PlanCatalog {
  const path = file ?? shippedPlansFile()
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    throw new PlanCatalogError('PLANS_FILE', 'cannot be read')
  }
  return parsePlanCatalog(text)
}

let shipped: PlanCatalog | null = null
/** The shipped catalogue (callers without a runtime: migrations of old stores, tests). */
export function defaultPlans(): PlanCatalog {
  return (shipped ??= loadPlanCatalog(null))
}

/** The plan's minimum schedule interval; an unknown plan name gets the strictest one. */
export function minScheduleIntervalSeconds(plans: PlanCatalog, planName: string): number {
  const p = (plans as Record<string, PlanSpec | undefined>)[planName]
  return p ? p.min_schedule_interval_seconds : Math.max(...PLAN_NAMES.map((n) => plans[n].min_schedule_interval_seconds))
}

/** Mirrors the catalogue into the `plans` table (for SQL reporting); limits of existing orgs are untouched. */
export async function syncPlansTable(db: Kysely<Database>, plans: PlanCatalog): Promise<void> {
  for (const name of PLAN_NAMES) {
    const { description: _d, onboarding: _o, ...row } = plans[name]
    await db.insertInto('plans').values(row).onConflict((oc) => oc.column('plan_name').doUpdateSet(row)).execute()
  }
}
