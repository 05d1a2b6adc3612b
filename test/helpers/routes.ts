// Turns the live route table into concrete requests: every `:param` gets a well-formed value
// (the caller's, or a sample), so tests generated from the table reach each handler.
import type { RouteInfo } from '../../src/app/server.js'

const SAMPLES: Record<string, string> = {
  org_slug: 'sample-org',
  provider: 'openai',
  domain: 'usage',
  pipeline: 'daily',
  run_id: 'run_000000000AAAAAAAAAAAAAA',
  schedule_id: 'sch_000000000AAAAAAAAAAAAAA',
  table: 'orders',
  file: 'index.js',
}

/** The route's path with every parameter filled (`override` wins, then the sample, then `x`); `*` becomes `x`. */
export function concretePath(url: string, override: Record<string, string> = {}): string {
  return url.replace(/:([A-Za-z_]+)/g, (_m, name: string) => override[name] ?? SAMPLES[name] ?? 'x').replace(/\*/g, 'x')
}

/** The names of a route's path parameters. */
export function pathParams(route: RouteInfo): string[] {
  return [...route.url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!)
}

/** The route's querystring fields (from its schema). */
export function queryFields(route: RouteInfo): string[] {
  const q = route.input.querystring as { properties?: Record<string, unknown> } | undefined
  return Object.keys(q?.properties ?? {})
}

/** Headers that pass the route's guard for `org` (root key for admin routes). */
export function guardHeaders(route: RouteInfo, root: Record<string, string>, org: Record<string, string>): Record<string, string> {
  if (route.auth === 'admin' || route.auth === 'org_or_admin') return root
  if (route.auth === 'org') return org
  return {}
}
