// Console sessions (issue 11). The browser holds a random token in an HttpOnly cookie; the store
// keeps only its SHA-256. The CSRF token is derived from the cookie token (HMAC), so it needs no
// storage and is only computable by someone who holds the cookie value (the server).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { ConsoleSessionsTable, Database } from '../db/schema.js'

export type SessionRow = ConsoleSessionsTable

export interface SessionPolicy {
  idleMs: number
  absoluteMs: number
}

/** How often a live session's last_seen_at is written (at most once per this interval). */
const TOUCH_EVERY_MS = 60_000
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

export const hashSessionToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex')

export function isWellFormedSessionToken(token: string): boolean {
  return TOKEN_PATTERN.test(token)
}

/** The per-session CSRF token the console sends back in X-TF-CSRF on every mutation. */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('tenantflow-console-csrf').digest('base64url')
}

export function csrfMatches(sessionToken: string, presented: string): boolean {
  const want = Buffer.from(csrfTokenFor(sessionToken))
  const got = Buffer.from(presented)
  return want.length === got.length && timingSafeEqual(want, got)
}

/** A tag of the root key (never the key): a restart with another root key ends every admin session. */
export function rootTagOf(rootKey: string): string {
  return createHmac('sha256', rootKey).update('tenantflow-console-root').digest('hex').slice(0, 32)
}

export interface NewSession {
  principal: 'org' | 'admin'
  org_slug: string | null
  key_id: string | null
  key_expires_at: number | null
  root_tag: string | null
}

export async function createSession(db: Kysely<Database>, s: NewSession, policy: SessionPolicy, now: number): Promise<{ token: string; row: SessionRow }> {
  const token = randomBytes(32).toString('base64url')
  const row: SessionRow = { session_hash: hashSessionToken(token), ...s, created_at: now, last_seen_at: now, expires_at: now + policy.absoluteMs }
  await db.insertInto('console_sessions').values(row).execute()
  return { token, row }
}

/** The live session for a cookie token, or null (unknown, idle too long, or past its absolute expiry; expired rows are deleted). */
export async function findSession(db: Kysely<Database>, token: string, policy: SessionPolicy, now: number): Promise<SessionRow | null> {
  if (!isWellFormedSessionToken(token)) return null
  const hash = hashSessionToken(token)
  const row = await db.selectFrom('console_sessions').selectAll().where('session_hash', '=', hash).limit(1).executeTakeFirst()
  if (!row) return null
  const lastSeen = Number(row.last_seen_at)
  if (Number(row.expires_at) <= now || lastSeen + policy.idleMs <= now) {
    await endSession(db, hash)
    return null
  }
  if (now - lastSeen >= TOUCH_EVERY_MS) {
    await db.updateTable('console_sessions').set({ last_seen_at: now }).where('session_hash', '=', hash).execute()
  }
  return row
}

export async function endSession(db: Kysely<Database>, sessionHash: string): Promise<void> {
  await db.deleteFrom('console_sessions').where('session_hash', '=', sessionHash).execute()
}

/** Deletes sessions past their absolute expiry or idle limit, in bounded batches; returns how many. */
export async function purgeExpiredSessions(db: Kysely<Database>, policy: SessionPolicy, now: number): Promise<number> {
  let total = 0
  for (let i = 0; i < 100; i++) {
    const batch = await db
      .selectFrom('console_sessions')
      .select('session_hash')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<=', now - policy.idleMs)]))
      .limit(500)
      .execute()
    if (batch.length === 0) break
    await db.deleteFrom('console_sessions').where('session_hash', 'in', batch.map((b) => b.session_hash)).execute()
    total += batch.length
    if (batch.length < 500) break
  }
  return total
}
