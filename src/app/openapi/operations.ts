// The OpenAPI description of every route, in one place keyed by "METHOD /url" (the Fastify URL).
// Routers stay free of documentation; the docs plugin applies these entries when it builds the
// document. `errors` lists only the codes the HANDLER can throw: the guard's and input validation's
// codes are derived from the route table (route-errors.ts). test/core/openapi.test.ts fails when a
// visible route has no entry here, or when an entry's `errors` differ from what the handler throws.
import type { ErrorCode } from '../errors.js'

export const TAGS = [
  { name: 'Health', description: 'Liveness, readiness and Prometheus metrics for operators and load balancers.' },
  { name: 'Admin', description: 'Operator endpoints (root key): bootstrap, organization listing, audit logs of any org.' },
  { name: 'Organizations', description: 'Onboarding, subscription, quota, API key rotation, audit log, model prices and offboarding.' },
  { name: 'Integrations', description: 'Provider credentials of an org: setup (envelope-encrypted), validation, status, deletion.' },
  { name: 'Pipelines', description: 'The pipeline catalogue and triggering a run.' },
  { name: 'Runs', description: 'Runs of an org: list, detail, steps, cancel.' },
  { name: 'Schedules', description: 'Cron schedules that trigger pipelines.' },
  { name: 'Data', description: "The org's own dataset: tables and rows written by its pipelines." },
  { name: 'Console', description: 'The web console at /console: its page and hashed assets, and the session sign-in that exchanges a key for an HttpOnly cookie (mutations with the cookie need X-TF-CSRF).' },
] as const

export type Tag = (typeof TAGS)[number]['name']

export interface OperationDoc {
  operationId: string
  summary: string
  description: string
  tag: Tag
  /** Error codes the handler itself can throw (the guard's and validation's are added automatically). */
  errors: ErrorCode[]
  /** Description of each success status the route declares. */
  responses: Record<number, string>
  /** An example request body (routes with a body). */
  example?: Record<string, unknown>
  /** Component names for the request body and success response (default: derived from operationId). */
  schemas?: { request?: string; response?: string }
  /** Media type of a non-JSON success response (e.g. /metrics). */
  produces?: string
}

/** Every credential-service failure the integration routes map onto the catalogue (integrations.ts `mapped`). */
const CREDENTIAL_ERRORS: ErrorCode[] = ['INVALID_CREDENTIAL_FORMAT', 'UNSUPPORTED_PROVIDER', 'NOT_FOUND', 'CREDENTIAL_UNUSABLE', 'SERVICE_UNAVAILABLE']
/** The use-time credential check (dependencies/credential-check.ts): a PENDING credential is validated then. */
const USABLE_CREDENTIAL: ErrorCode[] = [
  'INTEGRATION_NOT_CONFIGURED', 'CREDENTIAL_INVALID', 'CREDENTIAL_REJECTED', 'DESTINATION_NOT_ALLOWED', 'CREDENTIAL_UNUSABLE', 'SERVICE_UNAVAILABLE',
]
const QUOTA_REFUSALS: ErrorCode[] = ['DAILY_QUOTA_EXCEEDED', 'MONTHLY_QUOTA_EXCEEDED', 'CONCURRENT_LIMIT_EXCEEDED']

export const OPERATIONS: Record<string, OperationDoc> = {
  'GET /health': {
    operationId: 'getHealth',
    summary: 'Service health',
    description: 'Always answers while the process runs: status, version and environment name. No key needed.',
    tag: 'Health',
    errors: [],
    responses: { 200: 'The service is up' },
  },
  'GET /health/live': {
    operationId: 'getLiveness',
    summary: 'Liveness probe',
    description: '200 while the process is alive and not shutting down; 503 `SHUTTING_DOWN` during graceful shutdown.',
    tag: 'Health',
    errors: ['SHUTTING_DOWN'],
    responses: { 200: 'The process is alive' },
  },
  'GET /health/ready': {
    operationId: 'getReadiness',
    summary: 'Readiness probe',
    description: 'Checks the database (5 s bound). 503 when the database does not answer or the process is shutting down.',
    tag: 'Health',
    errors: ['SHUTTING_DOWN', 'SERVICE_UNAVAILABLE'],
    responses: { 200: 'Ready to serve traffic' },
  },
  'GET /metrics': {
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    description: 'Prometheus text exposition of request, rate-limit, auth-failure, run and worker metrics. Root key.',
    tag: 'Health',
    errors: [],
    responses: { 200: 'Metrics in the Prometheus text format' },
    produces: 'text/plain',
  },
  'POST /api/v1/admin/bootstrap': {
    operationId: 'bootstrap',
    summary: 'Create or upgrade the schema',
    description: 'Runs the pending migrations and lists the tables created and the tables that already existed. Idempotent.',
    tag: 'Admin',
    errors: [],
    responses: { 200: 'Migrations applied' },
    example: {},
  },
  'GET /api/v1/admin/organizations': {
    operationId: 'listOrganizations',
    summary: 'List organizations',
    description: 'Every org with its plan and subscription status, by slug, keyset-paged (`limit` ≤ 100, `cursor` from `next_cursor`).',
    tag: 'Admin',
    errors: ['INVALID_CURSOR'],
    responses: { 200: 'A page of organizations' },
  },
  'GET /api/v1/admin/organizations/:org_slug': {
    operationId: 'getOrganization',
    summary: 'Organization detail',
    description: "An org's profile, subscription limits, today's usage, active key count and total runs.",
    tag: 'Admin',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'The organization' },
  },
  'GET /api/v1/admin/audit-logs/:org_slug': {
    operationId: 'adminListAuditLogs',
    summary: "Any org's audit log (operator)",
    description: 'Audit entries of the org, newest first, keyset-paged (`limit` ≤ 100).',
    tag: 'Admin',
    errors: ['INVALID_CURSOR'],
    responses: { 200: 'A page of audit entries' },
    schemas: { response: 'AuditLogPage' },
  },
  'GET /api/v1/admin/organizations/:org_slug/egress-hosts': {
    operationId: 'getOrgEgressHosts',
    summary: "An org's egress allow-list (operator)",
    description:
      'The extra hosts this org\'s credential checks, pipeline runs and run webhooks may reach in production, on top of `EGRESS_ALLOWED_HOSTS` and the provider hosts. Root key.',
    tag: 'Admin',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'The allow-list' },
    schemas: { response: 'OrgEgressHosts' },
  },
  'PUT /api/v1/admin/organizations/:org_slug/egress-hosts': {
    operationId: 'replaceOrgEgressHosts',
    summary: "Replace an org's egress allow-list (operator)",
    description:
      'Replaces the whole list (at most 100 entries: DNS names or `*.suffix`; `[]` clears it). Every bad entry is listed in `errors[]` ' +
      '(IP addresses, ports, paths, `localhost` and internal/metadata names are refused). Applies at once on every instance, without a restart; ' +
      'private, loopback and metadata addresses stay blocked whatever the list says. Audited as `egress_hosts.replaced`.',
    tag: 'Admin',
    errors: ['VALIDATION_FAILED', 'ORG_NOT_FOUND'],
    responses: { 200: 'The new list, with the hosts added and removed' },
    example: { hosts: ['api.partner.example', '*.eu.partner.example'] },
    schemas: { request: 'OrgEgressHostsReplacement', response: 'OrgEgressHostsChange' },
  },
  'POST /api/v1/organizations/dryrun': {
    operationId: 'dryRunOnboarding',
    summary: 'Check an onboarding without doing it',
    description: 'Runs the onboarding checks (slug free, plan known, email valid, ...) and reports each; writes nothing.',
    tag: 'Organizations',
    errors: [],
    responses: { 200: 'The checks and whether onboarding would succeed' },
    example: { org_slug: 'acme', company_name: 'Acme Inc', admin_email: 'admin@acme.example.com', subscription_plan: 'STARTER' },
    schemas: { request: 'OnboardRequest' },
  },
  'POST /api/v1/organizations/onboard': {
    operationId: 'onboardOrganization',
    summary: 'Onboard an organization',
    description:
      'Creates the org, its subscription, its dataset and its first API key (returned once, never again). ' +
      'Send `Idempotency-Key` to retry safely: the same key and body replay the first answer (`Idempotent-Replayed: true`); another body is a 409.',
    tag: 'Organizations',
    errors: ['ORG_EXISTS', 'IDEMPOTENCY_CONFLICT'],
    responses: { 201: 'Created; the body holds the API key (shown once)', 200: 'Replay of an earlier onboarding with the same Idempotency-Key' },
    example: { org_slug: 'acme', company_name: 'Acme Inc', admin_email: 'admin@acme.example.com', subscription_plan: 'STARTER', trial_days: 14 },
    schemas: { request: 'OnboardRequest', response: 'OnboardResult' },
  },
  'GET /api/v1/organizations/:org_slug/subscription': {
    operationId: 'getSubscription',
    summary: 'Read the subscription',
    description: "The org's plan, status and limits. The org's key or the root key.",
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'The subscription' },
    schemas: { response: 'Subscription' },
  },
  'PUT /api/v1/organizations/:org_slug/subscription': {
    operationId: 'updateSubscription',
    summary: 'Change plan, status or limits',
    description: 'Root key only. Fields left out keep their value; a plan change applies that plan\'s limits unless limits are given too.',
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'The updated subscription' },
    example: { plan_name: 'PROFESSIONAL', status: 'ACTIVE' },
    schemas: { request: 'SubscriptionUpdate', response: 'Subscription' },
  },
  'GET /api/v1/organizations/:org_slug/quota': {
    operationId: 'getQuota',
    summary: 'Quota usage',
    description: 'Runs used and remaining today and this month, running runs against the concurrency limit, request limits.',
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'Current usage against the limits' },
  },
  'GET /api/v1/organizations/:org_slug/api-key': {
    operationId: 'getApiKeyInfo',
    summary: 'Current API key metadata',
    description: 'Key id, fingerprint (last characters), creation, last use and expiry. Never the key itself.',
    tag: 'Organizations',
    errors: ['NOT_FOUND'],
    responses: { 200: 'The active key' },
  },
  'POST /api/v1/organizations/:org_slug/api-key/rotate': {
    operationId: 'rotateApiKey',
    summary: 'Rotate the API key',
    description:
      'Issues a new key (returned once). The previous key keeps working for `grace_seconds` and stops at `previous_key_expires_at`.',
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'The new key' },
    example: { grace_seconds: 3600 },
  },
  'DELETE /api/v1/organizations/:org_slug': {
    operationId: 'offboardOrganization',
    summary: 'Offboard an organization',
    description:
      'Root key. Revokes every key, cancels runs, destroys credentials (crypto-shredded), drops the dataset and deletes the org\'s rows. ' +
      '`confirm_org_slug` must repeat the slug.',
    tag: 'Organizations',
    errors: ['CONFIRMATION_MISMATCH', 'ORG_NOT_FOUND'],
    responses: { 200: 'What was removed' },
    example: { confirm_org_slug: 'acme' },
  },
  'GET /api/v1/organizations/:org_slug/audit-logs': {
    operationId: 'listAuditLogs',
    summary: "The org's own audit log",
    description:
      'What happened to the org, newest first: onboarding, key rotations, credential setup/validation/deletion, triggers, cancels, ' +
      'price changes, and every decrypt of its credentials (`credential.decrypted`, with the run and step in `details`). ' +
      'Filter with `action`; keyset-paged (`limit` ≤ 100). Never another org\'s entries.',
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND', 'INVALID_CURSOR'],
    responses: { 200: 'A page of audit entries' },
    schemas: { response: 'AuditLogPage' },
  },
  'GET /api/v1/organizations/:org_slug/model-prices': {
    operationId: 'getModelPrices',
    summary: 'Read the model prices',
    description: "The org's `model_prices` table used by the OpenAI/Anthropic cost steps, per provider, model and effective date (USD per 1M tokens).",
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND'],
    responses: { 200: 'The price table' },
    schemas: { response: 'ModelPrices' },
  },
  'PUT /api/v1/organizations/:org_slug/webhook': {
    operationId: 'putOrgWebhook',
    summary: 'Set the run-completion webhook',
    description:
      'Every finished run (COMPLETED, FAILED, TIMEOUT, CANCELLED) is POSTed to `url` as secret-free JSON (run id, pipeline, status, error code, timestamps), ' +
      'signed like `notify.webhook`: `X-Tenantflow-Signature: sha256=<HMAC-SHA256 over "{X-Tenantflow-Timestamp}.{body}">`, plus `X-Tenantflow-Delivery` (dedupe on it: delivery is at least once). ' +
      'The signing secret is generated on creation (201) and returned **once**; `rotate_secret: true` makes a new one. Retried with backoff on non-2xx or no answer. ' +
      'The egress policy applies (`DESTINATION_NOT_ALLOWED`). See docs/webhooks.md.',
    tag: 'Organizations',
    errors: ['VALIDATION_FAILED', 'DESTINATION_NOT_ALLOWED', 'SERVICE_UNAVAILABLE'],
    responses: { 201: 'Created; `signing_secret` is shown this once', 200: 'Updated (`signing_secret` only with rotate_secret)' },
    example: { url: 'https://hooks.acme.example.com/tenantflow' },
    schemas: { request: 'OrgWebhookRequest', response: 'OrgWebhookSet' },
  },
  'GET /api/v1/organizations/:org_slug/webhook': {
    operationId: 'getOrgWebhook',
    summary: 'Read the run-completion webhook',
    description: 'The URL, the last delivery outcome and the most recent deliveries (newest first, `limit` ≤ 100, optional `status`). Never the signing secret.',
    tag: 'Organizations',
    errors: ['NOT_FOUND'],
    responses: { 200: 'The webhook and its recent deliveries' },
    schemas: { response: 'OrgWebhook' },
  },
  'DELETE /api/v1/organizations/:org_slug/webhook': {
    operationId: 'deleteOrgWebhook',
    summary: 'Delete the run-completion webhook',
    description: 'Deletes the webhook and its secret; deliveries not sent yet are marked FAILED (`WEBHOOK_DELETED`).',
    tag: 'Organizations',
    errors: ['NOT_FOUND'],
    responses: { 200: 'Deleted' },
    example: {},
  },
  'PUT /api/v1/organizations/:org_slug/model-prices': {
    operationId: 'replaceModelPrices',
    summary: 'Replace the model prices',
    description:
      'Replaces the whole table atomically (at most 2000 rows; one row per provider, model and effective_date). ' +
      'A cost step running meanwhile sees the old table or the new one, never a mix. Audited as `model_prices.replaced`.',
    tag: 'Organizations',
    errors: ['ORG_NOT_FOUND', 'VALIDATION_FAILED'],
    responses: { 200: 'The table as stored' },
    example: {
      prices: [
        { provider: 'openai', model: 'gpt-4o', input_per_1m: 2.5, output_per_1m: 10, cached_input_per_1m: 1.25, effective_date: '2026-01-01' },
        { provider: 'anthropic', model: 'claude-sonnet-4', input_per_1m: 3, output_per_1m: 15, cached_input_per_1m: 0.3, cache_write_5m_per_1m: 3.75, cache_write_1h_per_1m: 6, effective_date: '2026-01-01' },
      ],
    },
    schemas: { request: 'ModelPricesReplacement', response: 'ModelPrices' },
  },
  'POST /api/v1/integrations/:org_slug/:provider/setup': {
    operationId: 'setupIntegration',
    summary: 'Store a provider credential',
    description:
      'Encrypts the credential (envelope encryption), validates it live against the provider unless `skip_validation`, and makes it the active one. ' +
      'A credential the provider refuses is not stored: 422 `CREDENTIAL_REJECTED` with `reason` (UNAUTHORIZED, TIMEOUT, UNREACHABLE, UPSTREAM_ERROR) and the active credential, if any, stays in place; ' +
      '`store_invalid: true` stores it anyway as INVALID. `skip_validation: true` stores it PENDING; it is validated at its first use (trigger, schedule) or by `validate`. ' +
      'In production a URL whose host the egress policy refuses is 400 `DESTINATION_NOT_ALLOWED` (a malformed one is `INVALID_CREDENTIAL_FORMAT`). See docs/credentials.md. ' +
      'OpenAI and Anthropic usage pipelines need ADMIN keys (`sk-admin-…`, `sk-ant-admin…`); gcp takes a service-account JSON with `metadata.project_id` ' +
      '(and `metadata.billing_table` for billing); http takes a bearer token with `metadata.base_url`.',
    tag: 'Integrations',
    errors: [...CREDENTIAL_ERRORS, 'DESTINATION_NOT_ALLOWED', 'CREDENTIAL_REJECTED'],
    responses: { 200: 'Stored; `status` is VALID, PENDING (not checked yet) or INVALID (only with `store_invalid`)' },
    example: { credential: 'sk-admin-REPLACE_ME_with_your_admin_key', credential_name: 'usage reader' },
  },
  'POST /api/v1/integrations/:org_slug/:provider/validate': {
    operationId: 'validateIntegration',
    summary: 'Re-validate the stored credential',
    description: 'Decrypts the active credential, checks it with the provider and records the result (status and sanitized error code).',
    tag: 'Integrations',
    errors: [...CREDENTIAL_ERRORS, 'DESTINATION_NOT_ALLOWED'],
    responses: { 200: 'The credential status after validation' },
    example: {},
    schemas: { response: 'IntegrationStatus' },
  },
  'GET /api/v1/integrations/:org_slug': {
    operationId: 'listIntegrations',
    summary: 'Status of every provider',
    description: 'One entry per provider (NOT_CONFIGURED when none is stored): status, fingerprint, last validation and error code.',
    tag: 'Integrations',
    errors: [],
    responses: { 200: 'All providers' },
  },
  'GET /api/v1/integrations/:org_slug/:provider': {
    operationId: 'getIntegration',
    summary: 'Status of one provider',
    description: 'The active credential of the provider: status, name, fingerprint, last validation, last error code.',
    tag: 'Integrations',
    errors: CREDENTIAL_ERRORS,
    responses: { 200: 'The credential status' },
    schemas: { response: 'IntegrationStatus' },
  },
  'DELETE /api/v1/integrations/:org_slug/:provider': {
    operationId: 'deleteIntegration',
    summary: 'Delete a provider credential',
    description: 'Retires and crypto-shreds the credential; pipelines needing it stop being triggerable.',
    tag: 'Integrations',
    errors: CREDENTIAL_ERRORS,
    responses: { 200: 'Deleted' },
    example: {},
  },
  'GET /api/v1/pipelines': {
    operationId: 'listPipelines',
    summary: 'Pipeline catalogue',
    description: 'Every loaded template: id, required integration, parameters (type, bounds, defaults) and steps.',
    tag: 'Pipelines',
    errors: ['SERVICE_UNAVAILABLE'],
    responses: { 200: 'The catalogue' },
  },
  'POST /api/v1/pipelines/run/:org_slug/:provider/:domain/:pipeline': {
    operationId: 'triggerPipeline',
    summary: 'Trigger a run',
    description:
      'Checks the parameters, the integration (VALID, or PENDING and validated now: 422 `CREDENTIAL_REJECTED` with `reason` when the provider refuses it) and the quota atomically, then queues the run (202). ' +
      'An identical run already queued or running is returned instead (200, `deduplicated: true`). ' +
      '`Idempotency-Key` makes retries safe for 24 h: same key + same body replays the first answer; another body is a 409.',
    tag: 'Pipelines',
    errors: [
      'INVALID_API_KEY',
      'TRIGGER_RATE_LIMITED',
      'TEMPLATE_NOT_FOUND',
      'INVALID_PARAMETERS',
      ...USABLE_CREDENTIAL,
      'IDEMPOTENCY_CONFLICT',
      ...QUOTA_REFUSALS,
    ],
    responses: { 202: 'Run admitted and queued', 200: 'An identical active run (deduplicated) or an Idempotency-Key replay' },
    example: { parameters: { date: '2026-11-30' } },
  },
  'GET /api/v1/plans': {
    operationId: 'listPlans',
    summary: 'Plan catalogue',
    description:
      'Every plan with its default limits (runs per day / month, concurrent runs, requests and triggers per minute), its minimum schedule interval and whether onboarding offers it. Any valid key (org or root). From configs/plans.yaml or PLANS_FILE; see docs/plans.md.',
    tag: 'Organizations',
    errors: [],
    responses: { 200: 'The plans' },
  },
  'GET /api/v1/pipelines/:org_slug/runs': {
    operationId: 'listRuns',
    summary: 'List runs',
    description: 'Runs of the org, newest first, filtered by `status` and `pipeline_id`, keyset-paged.',
    tag: 'Runs',
    errors: ['INVALID_CURSOR'],
    responses: { 200: 'A page of runs' },
  },
  'GET /api/v1/pipelines/:org_slug/runs/:run_id': {
    operationId: 'getRun',
    summary: 'Run detail',
    description:
      'Status, timing, attempts, rows processed and the sanitized error of one run. With `wait=SECONDS` (1–30) the request long-polls: it answers as soon as the status differs from `since` (default: the status when the request arrived), or after `wait` seconds with the unchanged run. See docs/runs.md.',
    tag: 'Runs',
    errors: ['RUN_NOT_FOUND'],
    responses: { 200: 'The run (after its status changed, or when the wait ran out)' },
    schemas: { response: 'Run' },
  },
  'GET /api/v1/pipelines/:org_slug/runs/:run_id/events': {
    operationId: 'streamRunEvents',
    summary: 'Run event stream (SSE)',
    description:
      'Server-Sent Events for one run: `run` (the run, as in Run detail), `step` (one step attempt, as in Steps of a run, with live `progress`), then `end` `{run_id,status}` and the server closes the stream. Starts with a snapshot of the current state; `: keep-alive` comments as heartbeats. At most RUN_EVENTS_MAX_STREAMS_PER_ORG open streams per org per instance (429 `EVENT_STREAM_LIMIT_EXCEEDED`). A stream counts as one request against the rate limit. See docs/runs.md.',
    tag: 'Runs',
    errors: ['RUN_NOT_FOUND', 'EVENT_STREAM_LIMIT_EXCEEDED'],
    responses: { 200: 'The event stream (text/event-stream)' },
    produces: 'text/event-stream',
  },
  'GET /api/v1/pipelines/:org_slug/runs/:run_id/steps': {
    operationId: 'listRunSteps',
    summary: 'Steps of a run',
    description: 'Each step attempt of the run with its status, timing and error, in start order, keyset-paged. `rows_processed` and `progress` (e.g. `{"pages":2,"records":150}`) move while a step runs (stored at most once per second per step); `result` is the finished step\'s summary (e.g. `{"pages":3,"records":25}`, `unpriced_models`).',
    tag: 'Runs',
    errors: ['RUN_NOT_FOUND', 'INVALID_CURSOR'],
    responses: { 200: 'A page of steps' },
  },
  'POST /api/v1/pipelines/:org_slug/runs/:run_id/cancel': {
    operationId: 'cancelRun',
    summary: 'Cancel a run',
    description: 'A queued run is cancelled at once; a running one is asked to stop (CANCEL_REQUESTED). A finished run is a 409.',
    tag: 'Runs',
    errors: ['SERVICE_UNAVAILABLE', 'RUN_NOT_FOUND', 'INVALID_STATE'],
    responses: { 202: 'Cancelled or cancellation requested' },
    example: {},
  },
  'GET /api/v1/scheduler/:org_slug/schedules': {
    operationId: 'listSchedules',
    summary: 'List schedules',
    description: 'The org\'s schedules with their next and last run.',
    tag: 'Schedules',
    errors: ['INVALID_CURSOR'],
    responses: { 200: 'The schedules' },
  },
  'POST /api/v1/scheduler/:org_slug/schedules': {
    operationId: 'createSchedule',
    summary: 'Create a schedule',
    description:
      "A 5-field cron expression in an IANA timezone that triggers a pipeline with fixed parameters (quota applies to each run). Refused when the cron fires more often than the org's plan allows (400 `SCHEDULE_INTERVAL_TOO_SHORT`, the message names the minimum; see GET /api/v1/plans) or when the pipeline's integration is not usable (`INTEGRATION_NOT_CONFIGURED`, `CREDENTIAL_INVALID`; a PENDING credential is validated now, `CREDENTIAL_REJECTED` when refused). `last_status` shows ADMITTED/DEDUPLICATED at a fire, then the run's outcome (COMPLETED, FAILED, TIMEOUT, CANCELLED), or REFUSED/ERROR with `last_error_code`.",
    tag: 'Schedules',
    errors: [...USABLE_CREDENTIAL, 'ORG_NOT_FOUND', 'TEMPLATE_NOT_FOUND', 'NOT_FOUND', 'INVALID_STATE', 'SCHEDULE_LIMIT_REACHED', 'INVALID_PARAMETERS', 'SCHEDULE_INTERVAL_TOO_SHORT', 'VALIDATION_FAILED'],
    responses: { 201: 'The schedule' },
    example: { pipeline_id: 'openai/usage/daily', cron: '0 6 * * *', timezone: 'UTC', parameters: {}, name: 'daily usage' },
    schemas: { response: 'Schedule' },
  },
  'PATCH /api/v1/scheduler/:org_slug/schedules/:schedule_id': {
    operationId: 'updateSchedule',
    summary: 'Edit, pause or resume a schedule',
    description:
      'Changes any of name, cron, timezone, parameters; `is_active: false` pauses it, `true` resumes it from the next cron time. Checked like a new schedule (plan minimum interval, usable integration when it stays or becomes active). A concurrent edit or fire of the same schedule is a 409; retry.',
    tag: 'Schedules',
    errors: [...USABLE_CREDENTIAL, 'ORG_NOT_FOUND', 'TEMPLATE_NOT_FOUND', 'NOT_FOUND', 'INVALID_STATE', 'SCHEDULE_LIMIT_REACHED', 'INVALID_PARAMETERS', 'SCHEDULE_INTERVAL_TOO_SHORT', 'VALIDATION_FAILED'],
    responses: { 200: 'The schedule after the change' },
    example: { is_active: false },
    schemas: { response: 'Schedule' },
  },
  'DELETE /api/v1/scheduler/:org_slug/schedules/:schedule_id': {
    operationId: 'deleteSchedule',
    summary: 'Delete a schedule',
    description: 'Stops future triggers; runs already admitted continue.',
    tag: 'Schedules',
    errors: ['NOT_FOUND'],
    responses: { 200: 'Deleted' },
    example: {},
  },
  'GET /api/v1/data/:org_slug/tables': {
    operationId: 'listDataTables',
    summary: 'Tables of the dataset',
    description: "The org's dataset tables with their columns, natural key, date column and row count.",
    tag: 'Data',
    errors: ['INVALID_API_KEY', 'NOT_FOUND', 'INVALID_CURSOR', 'VALIDATION_FAILED', 'DATASET_UNAVAILABLE'],
    responses: { 200: 'The tables' },
  },
  'GET /api/v1/data/:org_slug/tables/:table/rows': {
    operationId: 'listDataRows',
    summary: 'Rows of a table',
    description: 'Rows ordered by natural key, filtered by `date_from`/`date_to` on the date column, keyset-paged (`limit` ≤ 1000).',
    tag: 'Data',
    errors: ['INVALID_API_KEY', 'NOT_FOUND', 'INVALID_CURSOR', 'VALIDATION_FAILED', 'DATASET_UNAVAILABLE'],
    responses: { 200: 'A page of rows' },
  },
  // ---- console (issue 11) ----
  'POST /console/api/session': {
    operationId: 'consoleSignIn',
    summary: 'Sign in to the console',
    description: 'Takes an org API key or the root key once, verifies it like the guards do and sets a short-lived HttpOnly SameSite=Strict session cookie. The key is not echoed; the response carries the per-session CSRF token the console sends in X-TF-CSRF. A request from another origin is refused.',
    tag: 'Console',
    errors: ['CSRF_TOKEN_INVALID', 'INVALID_API_KEY', 'ORG_RATE_LIMITED'],
    responses: { 201: 'Signed in; the session cookie is set' },
    example: { key: 'tf_live_...' },
    schemas: { response: 'ConsoleSession' },
  },
  'GET /console/api/session': {
    operationId: 'consoleSession',
    summary: 'The current console session',
    description: 'The principal, org and CSRF token of the session cookie presented. 404 when the request authenticated with a key header instead of a cookie.',
    tag: 'Console',
    errors: ['NOT_FOUND'],
    responses: { 200: 'The session' },
    schemas: { response: 'ConsoleSession' },
  },
  'DELETE /console/api/session': {
    operationId: 'consoleSignOut',
    summary: 'Sign out of the console',
    description: 'Deletes the session server-side and clears the cookie. Needs X-TF-CSRF like every cookie mutation.',
    tag: 'Console',
    errors: ['NOT_FOUND'],
    responses: { 200: 'Signed out' },
    example: {},
  },
  'GET /console': {
    operationId: 'consolePage',
    summary: 'The console page',
    description: 'The single-page console (index.html, not cached), with a strict Content-Security-Policy. Public: it holds no data.',
    tag: 'Console',
    errors: [],
    responses: { 200: 'The page' },
    produces: 'text/html',
  },
  'GET /console/': {
    operationId: 'consolePageSlash',
    summary: 'The console page (trailing slash)',
    description: 'Same as GET /console.',
    tag: 'Console',
    errors: [],
    responses: { 200: 'The page' },
    produces: 'text/html',
  },
  'GET /console/assets/:file': {
    operationId: 'consoleAsset',
    summary: 'A console asset',
    description: 'A content-hashed script or stylesheet of the built console, cached for a year (immutable). Only files built into dist/console exist.',
    tag: 'Console',
    errors: ['NOT_FOUND'],
    responses: { 200: 'The asset' },
    produces: 'application/octet-stream',
  },
  'GET /api/v1/data/:org_slug/cost-summary': {
    operationId: 'getCostSummary',
    summary: 'Daily cost by provider and model',
    description: "Sums the org's cost tables (openai_cost_daily, anthropic_cost_daily, gcp_billing_daily net cost) per UTC day and model over the last `days` (1–90, default 30), with totals per provider.",
    tag: 'Data',
    errors: ['INVALID_API_KEY', 'DATASET_UNAVAILABLE'],
    responses: { 200: 'Cost points and totals' },
  },
  'GET /api/v1/admin/overview/organizations': {
    operationId: 'listOrganizationOverview',
    summary: 'Organizations with usage',
    description: "Organizations ordered by slug with status, plan, today's run count and the last run time; `q` searches slug and company name; keyset-paged.",
    tag: 'Admin',
    errors: ['INVALID_CURSOR'],
    responses: { 200: 'A page of organizations' },
  },
  'GET /api/v1/admin/audit-logs': {
    operationId: 'listAllAuditLogs',
    summary: 'Audit log across organizations',
    description: 'Audit entries of every org, newest first, keyset-paged (`limit` ≤ 100). Details are left out; read one org for them.',
    tag: 'Admin',
    errors: ['INVALID_CURSOR'],
    responses: { 200: 'A page of audit entries' },
  },
  'GET /api/v1/admin/system': {
    operationId: 'getSystemHealth',
    summary: 'System health',
    description: 'Database check, queue depth, workers holding a run lease now and this process\'s worker count, the rate-limit backend, a KMS wrap/unwrap check and the number of console sessions.',
    tag: 'Admin',
    errors: [],
    responses: { 200: 'The checks' },
  },
}

/** The key a route is listed under. */
export const operationKey = (method: string, url: string) => `${method.toUpperCase()} ${url}`
