// Kysely table types for the system tables (SPEC §9). Conventions, identical on both backends:
// times are epoch milliseconds (BIGINT), calendar dates are 'YYYY-MM-DD' text, booleans are 0/1,
// JSON is stored as text. One code path reads both backends.
export interface PlansTable {
  plan_name: string
  daily_limit: number
  monthly_limit: number
  concurrent_limit: number
  requests_per_minute: number
  triggers_per_minute: number
  min_schedule_interval_seconds: number
}

export interface OrgProfilesTable {
  org_slug: string
  company_name: string
  admin_email: string
  /** OFFBOARDING: offboarding started and has not finished (retrying DELETE completes it). */
  status: 'ACTIVE' | 'SUSPENDED' | 'OFFBOARDING'
  dataset_id: string
  created_at: number
  updated_at: number
}

export interface OrgApiKeysTable {
  key_id: string
  org_slug: string
  key_hash: string
  encrypted_key: string
  fingerprint: string
  created_at: number
  expires_at: number | null
  revoked_at: number | null
  last_used_at: number | null
}

export type SubscriptionStatus = 'ACTIVE' | 'TRIAL' | 'SUSPENDED' | 'CANCELLED' | 'EXPIRED'

export interface OrgSubscriptionsTable {
  org_slug: string
  subscription_id: string
  plan_name: string
  status: SubscriptionStatus
  daily_limit: number
  monthly_limit: number
  concurrent_limit: number
  requests_per_minute: number
  triggers_per_minute: number
  trial_end_at: number | null
  created_at: number
  updated_at: number
}

/** Run counters per (org, period): period 'day' with period_start 'YYYY-MM-DD', or 'month' with 'YYYY-MM'. */
export interface OrgUsageQuotasTable {
  org_slug: string
  period: 'day' | 'month'
  period_start: string
  runs_started: number
  runs_succeeded: number
  runs_failed: number
  updated_at: number
}

/** The org's concurrency counter: one row per org, locked by every admission. */
export interface OrgRunSlotsTable {
  org_slug: string
  running: number
  updated_at: number
}

export interface OrgIntegrationCredentialsTable {
  credential_id: string
  org_slug: string
  provider: string
  credential_name: string | null
  ciphertext: string | null
  wrapped_key: string | null
  kms_provider: string
  kms_key_version: string
  fingerprint: string
  status: 'VALID' | 'INVALID' | 'PENDING'
  last_validated_at: number | null
  last_error_code: string | null
  metadata: string
  is_active: number
  created_at: number
  updated_at: number
  destroyed_at: number | null
}

export type RunStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'TIMEOUT' | 'CANCELLED'

export interface OrgPipelineRunsTable {
  run_id: string
  run_date: string
  org_slug: string
  pipeline_id: string
  status: RunStatus
  parameters: string
  dedup_key: string
  trigger_type: 'api' | 'schedule'
  triggered_by: string
  schedule_id: string | null
  created_at: number
  started_at: number | null
  finished_at: number | null
  duration_ms: number | null
  error_code: string | null
  error_message: string | null
  attempt: number
  max_attempts: number
  available_at: number
  lease_owner: string | null
  lease_expires_at: number | null
  cancel_requested: number
  slot_released: number
  outcome_counted: number
}

export interface OrgStepLogsTable {
  log_id: string
  log_date: string
  run_id: string
  org_slug: string
  step_id: string
  processor: string
  attempt: number
  status: 'RUNNING' | 'COMPLETED' | 'FAILED' | 'TIMEOUT' | 'CANCELLED' | 'SKIPPED'
  started_at: number
  finished_at: number | null
  duration_ms: number | null
  rows_processed: number
  error_code: string | null
  error_message: string | null
  result: string | null
  /** Live counters while RUNNING (JSON text), e.g. {"pages":2,"records":150}. */
  progress: string | null
}

export interface OrgSchedulesTable {
  schedule_id: string
  name: string | null
  org_slug: string
  pipeline_id: string
  cron: string
  timezone: string
  parameters: string
  is_active: number
  next_run_at: number
  last_run_at: number | null
  last_run_id: string | null
  last_status: string | null
  last_error_code: string | null
  created_at: number
  updated_at: number
}

/** The org's optional run-completion webhook (one per org); its signing secret is stored envelope-encrypted. */
export interface OrgRunWebhooksTable {
  org_slug: string
  webhook_id: string
  url: string
  last_delivery_at: number | null
  last_delivery_status: string | null
  last_error_code: string | null
  /** The signing secret, envelope-encrypted (AAD: org, purpose webhook, webhook_id); null before 016. */
  ciphertext: string | null
  wrapped_key: string | null
  kms_provider: string | null
  kms_key_version: string | null
  created_at: number
  updated_at: number
}

export type WebhookDeliveryStatus = 'PENDING' | 'DELIVERING' | 'DELIVERED' | 'FAILED'

/** One run-completion webhook delivery; the payload is secret-free JSON, fixed at the run's end. */
export interface OrgWebhookDeliveriesTable {
  delivery_id: string
  org_slug: string
  webhook_id: string
  run_id: string
  event: string
  payload: string
  status: WebhookDeliveryStatus
  attempts: number
  next_attempt_at: number
  lease_owner: string | null
  lease_expires_at: number | null
  last_status_code: number | null
  last_error_code: string | null
  delivered_at: number | null
  created_at: number
  updated_at: number
}

export interface OrgAuditLogsTable {
  audit_id: string
  org_slug: string
  actor: string
  action: string
  resource_type: string
  resource_id: string | null
  details: string
  request_id: string | null
  created_at: number
}

export interface OrgIdempotencyKeysTable {
  scope: string
  idempotency_key: string
  request_hash: string
  status_code: number
  response: string
  created_at: number
  expires_at: number
  /** The org the record belongs to (deleted with it at offboarding); null for records from before 003. */
  org_slug: string | null
}

export interface OrgDatasetTablesTable {
  /** The org incarnation's dataset (org_profiles.dataset_id): the catalogue key, never the slug. */
  dataset_id: string
  org_slug: string
  table_name: string
  table_schema: string
  created_at: number
  updated_at: number
}

/** A console sign-in (issue 11). session_hash = SHA-256 of the cookie token; principal 'org' or 'admin'. */
export interface ConsoleSessionsTable {
  session_hash: string
  principal: 'org' | 'admin'
  org_slug: string | null
  key_id: string | null
  /** The org key's expires_at when the session began: a rotation (which sets it) ends the session. */
  key_expires_at: number | null
  /** Tag of the root key that signed in: a changed root key ends admin sessions. */
  root_tag: string | null
  created_at: number
  last_seen_at: number
  expires_at: number
}

export interface Database {
  plans: PlansTable
  org_profiles: OrgProfilesTable
  org_api_keys: OrgApiKeysTable
  org_subscriptions: OrgSubscriptionsTable
  org_usage_quotas: OrgUsageQuotasTable
  org_run_slots: OrgRunSlotsTable
  org_integration_credentials: OrgIntegrationCredentialsTable
  org_pipeline_runs: OrgPipelineRunsTable
  org_step_logs: OrgStepLogsTable
  org_schedules: OrgSchedulesTable
  org_audit_logs: OrgAuditLogsTable
  org_idempotency_keys: OrgIdempotencyKeysTable
  org_dataset_tables: OrgDatasetTablesTable
  console_sessions: ConsoleSessionsTable
  org_run_webhooks: OrgRunWebhooksTable
  org_webhook_deliveries: OrgWebhookDeliveriesTable
  tenantflow_kms_key_check: KmsKeyCheckTable
  org_egress_allowlist: OrgEgressAllowlistTable
  tenantflow_processes: ProcessesTable
}

/** One row per running engine instance, refreshed on its heartbeat (see core/observability/process-registry.ts). */
export interface ProcessesTable {
  process_id: string
  role: string
  host: string
  pid: number
  worker_slots: number
  runs_in_flight: number
  scheduler: number
  started_at: number
  last_seen_at: number
}

/** The KMS key-check envelope (one row, id 'current'): the current KMS key must unwrap it at startup. */
export interface KmsKeyCheckTable {
  id: string
  kms_provider: string
  kms_key_version: string
  ciphertext: string
  wrapped_key: string
  created_at: number
  updated_at: number
}

/** Extra egress hosts one org may reach (operator-managed through the root key). */
export interface OrgEgressAllowlistTable {
  org_slug: string
  host: string
  created_at: number
}
