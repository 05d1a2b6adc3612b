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
