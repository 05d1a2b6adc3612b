// The operator-managed per-org egress allow-list: extra hosts (exact, or `*.suffix`) that one org's
// credentials and pipeline runs may reach in production, on top of EGRESS_ALLOWED_HOSTS and the
// provider hosts. Read from the database at each use, so a change by the root key applies without a
// restart. It widens host names only: private, loopback and metadata addresses stay blocked.
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/schema.js'

export const MAX_ORG_EGRESS_HOSTS = 100
const HOST = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/

/** Normalizes one entry (lower case, no trailing dot); null when it is not a DNS name or `*.name`. */
export function normalizeEgressHost(raw: string): string | null {
  const h = raw.trim().toLowerCase().replace(/\.$/, '')
  return h.length <= 253 && HOST.test(h) ? h : null
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
  if (added.length) await trx.insertInto('org_egress_allowlist').values(added.map((host) => ({ org_slug: orgSlug, host, created_at: now }))).execute()
  return { added, removed }
}
