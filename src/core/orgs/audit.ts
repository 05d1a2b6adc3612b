// Audit trail: who did what to which org's resources. Details must never hold secrets.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { newId } from '../ids.js'

export interface AuditEntry {
  org_slug: string
  actor: string // 'root', 'key:<key_id>', 'system', 'scheduler'
  action: string // e.g. 'org.onboarded', 'api_key.rotated', 'credential.decrypted'
  resource_type: string
  resource_id?: string | null
  details?: Record<string, unknown>
  request_id?: string | null
}

export async function recordAudit(db: Kysely<Database>, entry: AuditEntry, now = Date.now()): Promise<void> {
  await recordAuditBatch(db, [entry], now)
}

/** One INSERT for many entries. */
export async function recordAuditBatch(db: Kysely<Database>, entries: AuditEntry[], now = Date.now()): Promise<void> {
  if (entries.length === 0) return
  await db
    .insertInto('org_audit_logs')
    .values(
      entries.map((e) => ({
        audit_id: newId('aud', now),
        org_slug: e.org_slug,
        actor: e.actor,
        action: e.action,
        resource_type: e.resource_type,
        resource_id: e.resource_id ?? null,
        details: JSON.stringify(e.details ?? {}),
        request_id: e.request_id ?? null,
        created_at: now,
      })),
    )
    .execute()
}

export interface AuditRow {
  audit_id: string
  actor: string
  action: string
  resource_type: string
  resource_id: string | null
  details: Record<string, unknown>
  request_id: string | null
  created_at: number
}

export interface AuditPageOptions {
  /** 1..100 */
  limit: number
  /** Only entries with this exact action (e.g. 'credential.decrypted'). */
  action?: string
  /** Keyset position: entries strictly older than this one. */
  after?: { created_at: number; audit_id: string } | null
}

/** One org's audit entries, newest first, keyset-paged. Always scoped by org_slug; LIMIT bounded. */
export async function listAuditLogs(
  db: Kysely<Database>,
  orgSlug: string,
  opts: AuditPageOptions,
): Promise<{ entries: AuditRow[]; next: { created_at: number; audit_id: string } | null }> {
  const limit = Math.max(1, Math.min(100, Math.trunc(opts.limit)))
  let q = db
    .selectFrom('org_audit_logs')
    .select(['audit_id', 'actor', 'action', 'resource_type', 'resource_id', 'details', 'request_id', 'created_at'])
    .where('org_slug', '=', orgSlug)
    .orderBy('created_at', 'desc')
    .orderBy('audit_id', 'desc')
    .limit(limit + 1)
  if (opts.action) q = q.where('action', '=', opts.action)
  const after = opts.after
  if (after) {
    q = q.where((eb) => eb.or([eb('created_at', '<', after.created_at), eb.and([eb('created_at', '=', after.created_at), eb('audit_id', '<', after.audit_id)])]))
  }
  const rows = await q.execute()
  const page = rows.slice(0, limit).map((r) => ({ ...r, created_at: Number(r.created_at), details: JSON.parse(r.details) as Record<string, unknown> }))
  const last = page[page.length - 1]
  return { entries: page, next: rows.length > limit && last ? { created_at: last.created_at, audit_id: last.audit_id } : null }
}
