// The operator-managed per-org egress allow-list: extra hosts (exact, or `*.suffix`) that one org's
// credentials and pipeline runs may reach in production, on top of EGRESS_ALLOWED_HOSTS and the
// provider hosts. Each process caches an org's list briefly; a change by the root key publishes
// `egress.changed` on the event bus, which evicts the org's entry on every instance, so the change
// applies without a restart. It widens host names only: private, loopback and metadata addresses
// stay blocked (the egress client checks those whatever the list says).
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import type { EventBus } from '../events/bus.js'
import type { EgressClient } from './types.js'

export const MAX_ORG_EGRESS_HOSTS = 100
const NEVER_LISTED = ['localhost', 'localdomain', 'local', 'internal', 'metadata.goog']
const HOST = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/

/** Normalizes one entry (lower case, no trailing dot); null when it is not a DNS name or `*.name`. */
export function normalizeEgressHost(raw: string): string | null {
  const h = raw.trim().toLowerCase().replace(/\.$/, '')
  if (h.length > 253 || !HOST.test(h)) return null
  // Names that only ever mean this machine or a cloud metadata service are never a tenant's API.
  const bare = h.replace(/^\*\./, '')
  if (NEVER_LISTED.some((n) => bare === n || bare.endsWith(`.${n}`))) return null
  return h
}

export async function listOrgEgressHosts(db: Kysely<Database> | Transaction<Database>, orgSlug: string): Promise<string[]> {
  const rows = await db
    .selectFrom('org_egress_allowlist')
    .select('host')
    .where('org_slug', '=', orgSlug)
    .orderBy('host')
    .limit(MAX_ORG_EGRESS_HOSTS)
    .execute()
  return rows.map((r) => r.host)
}

/** Replaces the org's list (deduplicated, normalized by the caller); returns the hosts added and removed. */
export async function replaceOrgEgressHosts(
  trx: Transaction<Database>,
  orgSlug: string,
  hosts: string[],
  now: number,
): Promise<{ added: string[]; removed: string[] }> {
  const before = await listOrgEgressHosts(trx, orgSlug)
  const next = [...new Set(hosts)].sort()
  const added = next.filter((h) => !before.includes(h))
  const removed = before.filter((h) => !next.includes(h))
  if (removed.length) await trx.deleteFrom('org_egress_allowlist').where('org_slug', '=', orgSlug).where('host', 'in', removed).execute()
  if (added.length) {
    await trx
      .insertInto('org_egress_allowlist')
      .values(added.map((host) => ({ org_slug: orgSlug, host, created_at: now })))
      .onConflict((oc) => oc.columns(['org_slug', 'host']).doNothing())
      .execute()
  }
  return { added, removed }
}

/** How long a process trusts its cached copy when no eviction event arrives (a lost event is bounded by this). */
export const ORG_EGRESS_CACHE_MS = 60_000
const MAX_CACHED_ORGS = 10_000

/** Per-process cache of the per-org lists, evicted across instances through the event bus. */
export class OrgEgressHosts {
  private readonly cache = new Map<string, { hosts: readonly string[]; at: number }>()
  private generation = 0

  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = ORG_EGRESS_CACHE_MS,
  ) {}

  /** Evicts on `egress.changed` (one org) and drops everything when the bus says events may have been missed. */
  attach(bus: EventBus): void {
    bus.subscribe((e) => {
      if ((e.type === 'egress.changed' || e.type === 'org.offboarded') && e.org_slug) this.evict(e.org_slug)
      else if (e.type === 'auth.evict_all') this.clear()
    })
  }

  async hostsFor(orgSlug: string): Promise<readonly string[]> {
    const hit = this.cache.get(orgSlug)
    if (hit && this.now() - hit.at < this.ttlMs) return hit.hosts
    const gen = this.generation
    const hosts = Object.freeze(await listOrgEgressHosts(this.db, orgSlug))
    // An eviction that arrived while we read may be newer than what we read: do not cache it.
    if (gen === this.generation) {
      if (this.cache.size >= MAX_CACHED_ORGS) this.cache.delete(this.cache.keys().next().value!)
      this.cache.set(orgSlug, { hosts, at: this.now() })
    }
    return hosts
  }

  evict(orgSlug: string): void {
    this.generation++
    this.cache.delete(orgSlug)
  }

  clear(): void {
    this.generation++
    this.cache.clear()
  }
}

/** An egress client whose calls may also reach the org's listed hosts. */
export function orgEgressClient(base: EgressClient, hosts: () => Promise<readonly string[]>): EgressClient {
  return {
    async request(url, req = {}) {
      const extra = await hosts()
      return base.request(url, extra.length ? { ...req, extraAllowedHosts: [...(req.extraAllowedHosts ?? []), ...extra] } : req)
    },
  }
}
