// Shapes of the API responses the console reads (a subset of each route's response schema).
export interface Session {
  principal: 'org' | 'admin'
  org_slug: string | null
  company_name: string | null
  csrf_token: string
  expires_at: string
  idle_timeout_seconds: number
}

export interface Usage {
  used: number
  limit: number
  remaining: number
  resets_at: string
}
export interface Quota {
  org_slug: string
  plan_name: string
  daily: Usage
  monthly: Usage
  concurrent: { running: number; limit: number; remaining: number }
  succeeded_today: number
  failed_today: number
}

export interface Run {
  run_id: string
  pipeline_id: string
  status: string
  parameters: Record<string, string | number>
  trigger_type: string
  triggered_by: string
  created_at: string
  started_at: string | null
  finished_at: string | null
  duration_ms: number | null
  error_code: string | null
  error_message: string | null
  attempt: number
  max_attempts: number
  cancel_requested: boolean
}

export interface Step {
  log_id: string
  step_id: string
  processor: string
  attempt: number
  status: string
  started_at: string
  finished_at: string | null
  duration_ms: number | null
  rows_processed: number
  error_code: string | null
  error_message: string | null
  result?: unknown
  progress?: Record<string, unknown> | null
}

export interface ParamSpec {
  type: 'date' | 'string' | 'integer' | 'enum' | string
  description?: string
  required: boolean
  default?: string | number
  min?: number
  max?: number
  max_length?: number
  values?: string[]
}

export interface Template {
  id: string
  provider: string
  domain: string
  pipeline: string
  description: string
  required_integration: string | null
  timeout_seconds: number
  parameters: Record<string, ParamSpec>
  steps: { id: string; processor: string }[]
}

export interface Integration {
  provider: string
  status: string
  credential_id: string | null
  credential_name: string | null
  fingerprint: string | null
  last_validated_at: string | null
  last_error_code: string | null
  updated_at: string | null
}

export interface Schedule {
  schedule_id: string
  pipeline_id: string
  cron: string
  timezone: string
  parameters: Record<string, string | number>
  is_active: boolean
  next_run_at: string | null
  last_run_at: string | null
  last_status: string | null
  created_at: string
  name?: string | null
}

export interface TableInfo {
  name: string
  columns: { name: string; type: string }[]
  natural_key: string[]
  date_column: string | null
  row_count: number
  updated_at: string | null
}

export interface CostSummary {
  from: string
  to: string
  points: { date: string; provider: string; model: string; cost: number }[]
  totals: { total: number; by_provider: Record<string, number> }
  sources: string[]
}

export interface AuditEntry {
  audit_id: string
  org_slug?: string
  actor: string
  action: string
  resource_type: string
  resource_id: string | null
  created_at: string
}
