// notify.webhook: POSTs a secret-free run summary as JSON to the configured URL through ctx.http (so
// egress rules apply), signed with HMAC-SHA256 keyed by the org's `http` integration secret:
//   X-Tenantflow-Timestamp: <unix seconds>
//   X-Tenantflow-Signature: sha256=<hex HMAC over "{timestamp}.{body}">
// Receivers recompute the HMAC over the raw body and reject stale timestamps (replay guard).
import { createHmac } from 'node:crypto'
import { asObject, reqString } from '../shared/config.js'
import { call } from '../shared/http.js'
import { ProcessorConfigError, type Processor, type ProcessorContext } from '../types.js'

export interface WebhookConfig {
  url: string
}

const LABEL = 'Webhook'
const MAX_STEPS = 100

export function validateWebhookConfig(config: unknown): WebhookConfig {
  const o = asObject(config, '', ['url'])
  const raw = reqString(o, 'url', 'url', { max: 2048 })
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ProcessorConfigError('url', 'must be an absolute http(s) URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ProcessorConfigError('url', 'must be an absolute http(s) URL')
  if (url.username || url.password) throw new ProcessorConfigError('url', 'must not embed credentials')
  if (url.hash) throw new ProcessorConfigError('url', 'must not have a fragment')
  return { url: url.toString() }
}

/** The summary: identifiers, statuses and row counts only (step outputs are not forwarded). */
export function runSummary(ctx: ProcessorContext): Record<string, unknown> {
  const steps = Object.entries(ctx.upstream)
    .slice(0, MAX_STEPS)
    .map(([stepId, r]) => ({ step_id: stepId, status: r.status, rows_processed: r.rows_processed }))
  const failed = steps.some((s) => s.status !== 'COMPLETED')
  return {
    event: 'pipeline.run.summary',
    org_slug: ctx.org.slug,
    run_id: ctx.run.runId,
    pipeline_id: ctx.run.pipelineId,
    trigger_type: ctx.run.triggerType,
    status: failed ? 'FAILED' : 'COMPLETED',
    rows_processed: steps.reduce((n, s) => n + (Number.isSafeInteger(s.rows_processed) ? s.rows_processed : 0), 0),
    steps,
    sent_at: new Date(ctx.now()).toISOString(),
  }
}

export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

export function createWebhookProcessor(): Processor<WebhookConfig> {
  return {
    name: 'notify.webhook',
    description: 'POST the run summary (no secrets) to a URL, HMAC-SHA256 signed with the org http integration secret',
    integration: 'http',
    validateConfig: validateWebhookConfig,
    async run(ctx, config) {
      const body = JSON.stringify(runSummary(ctx))
      const timestamp = String(Math.floor(ctx.now() / 1000))
      const signature = signWebhook((await ctx.getCredential()).secret, timestamp, body)
      const res = await call(ctx, config.url, {
        label: LABEL,
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'x-tenantflow-timestamp': timestamp,
          'x-tenantflow-signature': signature,
        },
        maxBytes: 64 * 1024,
      })
      return { rows_processed: 0, output: { delivered: true, http_status: res.status } }
    },
  }
}
