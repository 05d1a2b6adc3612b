// Sends the org run-completion webhook deliveries (store.ts), signed like notify.webhook:
//   X-Tenantflow-Timestamp: <unix seconds>, X-Tenantflow-Signature: sha256=<HMAC over "{ts}.{body}">
// keyed by the org's webhook signing secret, plus X-Tenantflow-Event and X-Tenantflow-Delivery (the
// receiver's idempotency key). A pass claims each due row, just before sending it, with a
// compare-and-set that takes a lease, so two processes never hold the same delivery; a process that
// dies mid-send leaves a lease that expires and the row is sent again (at least once). Failures
// (non-2xx, timeouts, refused destinations, unexpected errors) are retried with exponential backoff
// up to `maxAttempts`, then FAILED; a lease that expires after the last attempt fails the delivery
// instead of a further send.
import { Counter, type Registry } from 'prom-client'
import type { Db } from '../db/database.js'
import type { Clock } from '../clock.js'
import type { OrgWebhookDeliveriesTable, WebhookDeliveryStatus } from '../db/schema.js'
import { EgressError, type EgressClient } from '../http/types.js'
import { randomBase62 } from '../ids.js'
import { signWebhook } from '../processors/notify/webhook.js'
import { registerSecret } from '../security/scrub.js'
import { DecryptionError, KmsUnavailableError, type KmsProvider } from '../security/kms-encryption.js'
import { PeriodicTask } from '../pipelines/periodic.js'
import { openWebhook } from './store.js'

export interface DispatcherOptions {
  /** How often a pass runs (ms). */
  intervalMs?: number
  /** Deliveries claimed per pass. */
  batch?: number
  /** Of those, at most this many of one org, so one org's backlog never holds back the others. */
  perOrg?: number
  /** How long a claim holds a delivery (longer than one send's timeout). */
  leaseMs?: number
  /** Total sends per delivery before it is FAILED. */
  maxAttempts?: number
  /** Backoff after the n-th failed send: base × 2^(n-1), capped, plus up to 10 % jitter. */
  retryBaseMs?: number
  retryMaxMs?: number
  sendTimeoutMs?: number
}

export interface DispatcherDeps {
  db: Db
  kms: KmsProvider
  clock: Clock
  /** The egress client for one org (its allow-list applies). */
  httpFor(orgSlug: string): EgressClient
  logger: { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void }
  /** Counts each send's outcome (tenantflow_webhook_deliveries_total). */
  metrics?: Counter<'outcome'>
}

/** The dispatcher's counter on the app registry: one series per outcome, not labelled by org. */
export function createWebhookMetrics(registry: Registry): Counter<'outcome'> {
  return new Counter({
    name: 'tenantflow_webhook_deliveries_total',
    help: 'Run-completion webhook sends by outcome (delivered, retried, failed)',
    labelNames: ['outcome'],
    registers: [registry],
  })
}

export interface PassResult {
  claimed: number
  delivered: number
  retried: number
  failed: number
}

type Delivery = Pick<OrgWebhookDeliveriesTable, 'delivery_id' | 'org_slug' | 'webhook_id' | 'run_id' | 'event' | 'payload' | 'attempts'>
type DueRow = Pick<OrgWebhookDeliveriesTable, 'delivery_id' | 'org_slug' | 'status' | 'next_attempt_at' | 'lease_expires_at' | 'attempts'>


export class WebhookDispatcher {
  readonly id = `whd_${randomBase62(12)}`
  private readonly task: PeriodicTask
  private readonly o: Required<DispatcherOptions>

  constructor(private readonly deps: DispatcherDeps, opts: DispatcherOptions = {}) {
    this.o = {
      intervalMs: opts.intervalMs ?? 2_000,
      batch: opts.batch ?? 20,
      perOrg: opts.perOrg ?? 4,
      leaseMs: opts.leaseMs ?? 60_000,
      maxAttempts: opts.maxAttempts ?? 8,
      retryBaseMs: opts.retryBaseMs ?? 10_000,
      retryMaxMs: opts.retryMaxMs ?? 3_600_000,
      sendTimeoutMs: opts.sendTimeoutMs ?? 10_000,
    }
    this.task = new PeriodicTask(this.o.intervalMs, () => this.runOnce(), (err) => deps.logger.error({ err_name: (err as Error)?.name }, 'webhook pass failed'))
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  /**
   * One pass over the due deliveries (PENDING and due, or DELIVERING with an expired lease): each is
   * claimed just before it is sent, so its lease covers its own send however long the ones before it
   * took (a batch of slow receivers never outlasts a lease it took at the start of the pass).
   */
  async runOnce(): Promise<PassResult> {
    const out: PassResult = { claimed: 0, delivered: 0, retried: 0, failed: 0 }
    for (const row of await this.due()) {
      const d = await this.claim(row)
      if (d === 'exhausted') {
        out.failed++
        this.deps.metrics?.inc({ outcome: 'failed' })
      }
      if (d === null || d === 'exhausted') continue
      out.claimed++
      let outcome: 'delivered' | 'retried' | 'failed'
      try {
        outcome = await this.send(d)
      } catch (err) {
        // An unexpected failure (storage, a bug) counts as an attempt like any other, so the delivery
        // stays bounded by maxAttempts and the rest of the batch is still sent.
        this.deps.logger.error({ org: d.org_slug, delivery_id: d.delivery_id, err_name: (err as Error)?.name }, 'webhook send failed unexpectedly')
        outcome = await this.finish(d, { ok: false, code: 'INTERNAL_ERROR', status: null })
      }
      out[outcome]++
      this.deps.metrics?.inc({ outcome })
    }
    return out
  }

  /**
   * The oldest due rows, at most `perOrg` of each org and `batch` in all. Rows are read in windows of
   * 5 × batch; an org that filled its share is left out of the next window, so a backlog of one org
   * longer than a window cannot hide the others' deliveries behind it.
   */
  private async due(): Promise<DueRow[]> {
    const now = this.deps.clock.now()
    const window = this.o.batch * 5
    const perOrg = new Map<string, number>()
    const full: string[] = []
    const taken = new Set<string>()
    const out: DueRow[] = []
    for (let round = 0; round < 3 && out.length < this.o.batch; round++) {
      let q = this.deps.db.kysely
        .selectFrom('org_webhook_deliveries')
        .select(['delivery_id', 'org_slug', 'status', 'next_attempt_at', 'lease_expires_at', 'attempts'])
        .where((eb) =>
          eb.or([
            eb.and([eb('status', '=', 'PENDING'), eb('next_attempt_at', '<=', now)]),
            eb.and([eb('status', '=', 'DELIVERING'), eb('lease_expires_at', '<', now)]),
          ]),
        )
      if (full.length) q = q.where('org_slug', 'not in', full)
      const rows = await q.orderBy('next_attempt_at').orderBy('delivery_id').limit(window).execute()
      for (const row of rows) {
        if (out.length >= this.o.batch) break
        const n = perOrg.get(row.org_slug) ?? 0
        if (n >= this.o.perOrg || taken.has(row.delivery_id)) continue
        perOrg.set(row.org_slug, n + 1)
        if (n + 1 === this.o.perOrg) full.push(row.org_slug)
        taken.add(row.delivery_id)
        out.push(row)
      }
      if (rows.length < window) break
    }
    return out.sort((a, b) => Number(a.next_attempt_at) - Number(b.next_attempt_at))
  }

  /** Compare-and-set on the state read by due(): of two processes, exactly one update matches; null when another won. */
  private async claim(row: DueRow): Promise<Delivery | 'exhausted' | null> {
    const k = this.deps.db.kysely
    const now = this.deps.clock.now()
    if (row.status === 'DELIVERING' && row.attempts >= this.o.maxAttempts) {
      // Its last attempt's sender died mid-send: sending again would exceed maxAttempts.
      const gone = await k
        .updateTable('org_webhook_deliveries')
        .set({ status: 'FAILED', last_error_code: 'LEASE_EXPIRED', lease_owner: null, lease_expires_at: null, updated_at: now })
        .where('delivery_id', '=', row.delivery_id)
        .where('status', '=', 'DELIVERING')
        .where('lease_expires_at', '=', row.lease_expires_at)
        .returning(['org_slug', 'webhook_id'])
        .executeTakeFirst()
      if (!gone) return null
      await this.noteOutcome(gone, now, 'FAILED', 'LEASE_EXPIRED')
      return 'exhausted'
    }
    let q = k
      .updateTable('org_webhook_deliveries')
      .set((eb) => ({ status: 'DELIVERING', lease_owner: this.id, lease_expires_at: now + this.o.leaseMs, attempts: eb('attempts', '+', 1), updated_at: now }))
      .where('delivery_id', '=', row.delivery_id)
      .where('status', '=', row.status)
    q = row.status === 'PENDING' ? q.where('next_attempt_at', '=', row.next_attempt_at) : q.where('lease_expires_at', '=', row.lease_expires_at)
    return (await q.returning(['delivery_id', 'org_slug', 'webhook_id', 'run_id', 'event', 'payload', 'attempts']).executeTakeFirst()) ?? null
  }

  private async send(d: Delivery): Promise<'delivered' | 'retried' | 'failed'> {
    let opened: { url: string; secret: string } | null
    try {
      opened = await openWebhook(this.deps.db.kysely, this.deps.kms, d.org_slug, d.webhook_id)
    } catch (err) {
      // This process cannot decrypt (KMS down, another key): try again later, it is not the receiver's fault.
      if (err instanceof KmsUnavailableError || err instanceof DecryptionError) {
        this.deps.logger.error({ org: d.org_slug, delivery_id: d.delivery_id }, 'webhook secret could not be decrypted')
        return this.finish(d, { ok: false, code: 'KMS_UNAVAILABLE', status: null })
      }
      throw err
    }
    if (!opened) return this.finish(d, { ok: false, code: 'WEBHOOK_DELETED', status: null, final: true })
    const release = registerSecret(opened.secret)
    try {
      const timestamp = String(Math.floor(this.deps.clock.now() / 1000))
      const res = await this.deps.httpFor(d.org_slug).request(opened.url, {
        method: 'POST',
        body: d.payload,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tenantflow-webhook/1',
          'x-tenantflow-event': d.event,
          'x-tenantflow-delivery': d.delivery_id,
          'x-tenantflow-timestamp': timestamp,
          'x-tenantflow-signature': signWebhook(opened.secret, timestamp, d.payload),
        },
        timeoutMs: this.o.sendTimeoutMs,
        // The receiver's answer is its status: a 2xx with a large page is still delivered.
        discardBody: true,
      })
      if (res.status >= 200 && res.status < 300) return this.finish(d, { ok: true, status: res.status })
      return this.finish(d, { ok: false, code: 'HTTP_ERROR', status: res.status })
    } catch (err) {
      if (!(err instanceof EgressError)) throw err
      // A destination the policy refuses will not become allowed by retrying soon, but an operator may
      // fix the allow-list: it is retried like any failure.
      return this.finish(d, { ok: false, code: err.code === 'BLOCKED_DESTINATION' ? 'DESTINATION_NOT_ALLOWED' : err.code, status: null })
    } finally {
      release()
    }
  }

  /** The webhook's last outcome, shown by GET …/webhook. */
  private async noteOutcome(d: { org_slug: string; webhook_id: string }, now: number, status: WebhookDeliveryStatus, code: string | null): Promise<void> {
    await this.deps.db.kysely
      .updateTable('org_run_webhooks')
      .set({ last_delivery_at: now, last_delivery_status: status, last_error_code: code })
      .where('org_slug', '=', d.org_slug)
      .where('webhook_id', '=', d.webhook_id)
      .execute()
  }

  private async finish(
    d: Delivery,
    r: { ok: true; status: number } | { ok: false; code: string; status: number | null; final?: boolean },
  ): Promise<'delivered' | 'retried' | 'failed'> {
    const now = this.deps.clock.now()
    const k = this.deps.db.kysely
    let outcome: 'delivered' | 'retried' | 'failed'
    let set: Partial<OrgWebhookDeliveriesTable>
    if (r.ok) {
      outcome = 'delivered'
      set = { status: 'DELIVERED', delivered_at: now, last_status_code: r.status, last_error_code: null }
    } else if (!r.final && d.attempts < this.o.maxAttempts) {
      outcome = 'retried'
      const backoff = Math.min(this.o.retryBaseMs * 2 ** (d.attempts - 1), this.o.retryMaxMs)
      set = { status: 'PENDING', next_attempt_at: now + backoff + Math.floor(Math.random() * backoff * 0.1), last_status_code: r.status, last_error_code: r.code }
    } else {
      outcome = 'failed'
      set = { status: 'FAILED', last_status_code: r.status, last_error_code: r.code }
    }
    const done = await k
      .updateTable('org_webhook_deliveries')
      .set({ ...set, lease_owner: null, lease_expires_at: null, updated_at: now })
      .where('delivery_id', '=', d.delivery_id)
      .where('lease_owner', '=', this.id)
      .where('status', '=', 'DELIVERING')
      .returning('delivery_id')
      .executeTakeFirst()
    if (done) {
      await this.noteOutcome(d, now, set.status!, set.last_error_code ?? null)
    } else {
      this.deps.logger.warn({ delivery_id: d.delivery_id }, 'webhook delivery lease lost before its outcome was recorded')
    }
    return outcome
  }
}
