// The error catalogue (SPEC §5). Every error leaving the API is built here: problem+json with the
// standard detail for its status and a stable code. Nothing from an exception reaches a client.
export const STANDARD_DETAIL: Record<number, string> = {
  400: 'Invalid request format',
  401: 'Invalid or inactive API key',
  403: 'Cannot access another organization',
  404: 'Resource not found',
  405: 'Invalid request format',
  408: 'Request timeout',
  409: 'Conflict',
  413: 'Invalid request format',
  414: 'Invalid request format',
  415: 'Invalid request format',
  422: 'Invalid request format',
  429: 'Rate limit exceeded',
  431: 'Invalid request format',
  500: 'Internal error. Check server logs.',
  503: 'Service unavailable',
  504: 'Operation timed out',
}

/** Stable machine-readable codes, grouped by status. */
export const ERROR_CODES = {
  VALIDATION_FAILED: 400,
  INVALID_SLUG: 400,
  INVALID_JSON: 400,
  INVALID_URL: 400,
  MALFORMED_REQUEST: 400,
  CONFIRMATION_MISMATCH: 400,
  INTEGRATION_NOT_CONFIGURED: 400,
  CREDENTIAL_INVALID: 400,
  CREDENTIAL_PENDING: 400,
  INVALID_PARAMETERS: 400,
  INVALID_CREDENTIAL_FORMAT: 400,
  DESTINATION_NOT_ALLOWED: 400,
  INVALID_TEMPLATE: 400,
  INVALID_CURSOR: 400,
  SCHEDULE_INTERVAL_TOO_SHORT: 400,
  UNSUPPORTED_PROVIDER: 400,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  UNSUPPORTED_MEDIA_TYPE: 415,
  CREDENTIAL_REJECTED: 422,
  METHOD_NOT_ALLOWED: 405,
  MISSING_API_KEY: 401,
  INVALID_API_KEY: 401,
  MISSING_ROOT_KEY: 401,
  INVALID_ROOT_KEY: 401,
  SESSION_EXPIRED: 401,
  INVALID_METRICS_TOKEN: 401,
  ORG_MISMATCH: 403,
  ADMIN_REQUIRED: 403,
  CSRF_TOKEN_INVALID: 403,
  NOT_FOUND: 404,
  ORG_NOT_FOUND: 404,
  TEMPLATE_NOT_FOUND: 404,
  RUN_NOT_FOUND: 404,
  ORG_EXISTS: 409,
  IDEMPOTENCY_CONFLICT: 409,
  INVALID_STATE: 409,
  SCHEDULE_LIMIT_REACHED: 409,
  CREDENTIAL_UNUSABLE: 409,
  RATE_LIMITED: 429,
  ORG_RATE_LIMITED: 429,
  TRIGGER_RATE_LIMITED: 429,
  IP_RATE_LIMITED: 429,
  AUTH_RATE_LIMITED: 429,
  GLOBAL_RATE_LIMITED: 429,
  DAILY_QUOTA_EXCEEDED: 429,
  MONTHLY_QUOTA_EXCEEDED: 429,
  CONCURRENT_LIMIT_EXCEEDED: 429,
  EVENT_STREAM_LIMIT_EXCEEDED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
  DATASET_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  ROOT_KEY_NOT_CONFIGURED: 503,
  TOO_MANY_CONNECTIONS: 503,
  // A run step's error code (run and step error_code): template SQL stopped at its deadline.
  QUERY_TIMEOUT: 504,
} as const

export type ErrorCode = keyof typeof ERROR_CODES

/**
 * What happened, in plain words, per code (the problem's `title`; `detail` stays the standard
 * sentence per status). Typed over every code, so a code without a title does not compile;
 * docs/errors.md lists them all with what to do (a test keeps it in step).
 */
export const ERROR_TITLES: Record<ErrorCode, string> = {
  VALIDATION_FAILED: 'Request fields are invalid',
  INVALID_SLUG: 'Organization slug is invalid',
  INVALID_JSON: 'Request body is not valid JSON',
  INVALID_URL: 'Request URL is malformed',
  MALFORMED_REQUEST: 'Malformed HTTP request',
  CONFIRMATION_MISMATCH: 'Confirmation slug does not match',
  INTEGRATION_NOT_CONFIGURED: 'Integration not configured',
  CREDENTIAL_INVALID: 'Credential is INVALID',
  CREDENTIAL_PENDING: 'Credential is PENDING validation',
  INVALID_PARAMETERS: 'Pipeline parameters are invalid',
  INVALID_CREDENTIAL_FORMAT: 'Credential format is invalid',
  DESTINATION_NOT_ALLOWED: 'Destination not allowed by egress policy',
  INVALID_TEMPLATE: 'Pipeline template is invalid',
  INVALID_CURSOR: 'Pagination cursor is invalid',
  SCHEDULE_INTERVAL_TOO_SHORT: 'Schedule fires more often than the plan allows',
  UNSUPPORTED_PROVIDER: 'Provider is not supported',
  REQUEST_TIMEOUT: 'Request took too long to arrive',
  PAYLOAD_TOO_LARGE: 'Request body too large',
  URI_TOO_LONG: 'Request URL too long',
  HEADERS_TOO_LARGE: 'Request headers too large',
  UNSUPPORTED_MEDIA_TYPE: 'Content type not supported',
  CREDENTIAL_REJECTED: 'Credential rejected by the provider',
  METHOD_NOT_ALLOWED: 'Method not allowed',
  MISSING_API_KEY: 'API key missing',
  INVALID_API_KEY: 'API key invalid or inactive',
  MISSING_ROOT_KEY: 'Root key missing',
  INVALID_ROOT_KEY: 'Root key invalid',
  INVALID_METRICS_TOKEN: 'Metrics token invalid',
  SESSION_EXPIRED: 'Console session expired',
  ORG_MISMATCH: 'Key belongs to another organization',
  ADMIN_REQUIRED: 'Admin key required',
  CSRF_TOKEN_INVALID: 'CSRF token missing or invalid',
  NOT_FOUND: 'Resource not found',
  ORG_NOT_FOUND: 'Organization not found',
  TEMPLATE_NOT_FOUND: 'Pipeline template not found',
  RUN_NOT_FOUND: 'Run not found',
  ORG_EXISTS: 'Organization already exists',
  IDEMPOTENCY_CONFLICT: 'Idempotency-Key reused for a different request',
  INVALID_STATE: 'Not allowed in the current state',
  SCHEDULE_LIMIT_REACHED: 'Schedule limit reached',
  CREDENTIAL_UNUSABLE: 'Stored credential cannot be used',
  RATE_LIMITED: 'Rate limit exceeded',
  ORG_RATE_LIMITED: 'Organization request rate exceeded',
  TRIGGER_RATE_LIMITED: 'Trigger rate exceeded',
  IP_RATE_LIMITED: 'Too many requests from this address',
  AUTH_RATE_LIMITED: 'Too many failed authentication attempts',
  GLOBAL_RATE_LIMITED: 'Server request rate exceeded',
  DAILY_QUOTA_EXCEEDED: 'Daily run quota exhausted',
  MONTHLY_QUOTA_EXCEEDED: 'Monthly run quota exhausted',
  CONCURRENT_LIMIT_EXCEEDED: 'Concurrent run limit reached',
  EVENT_STREAM_LIMIT_EXCEEDED: 'Too many open run event streams',
  INTERNAL_ERROR: 'Internal error',
  SERVICE_UNAVAILABLE: 'Service unavailable',
  DATASET_UNAVAILABLE: 'Dataset warehouse unavailable',
  SHUTTING_DOWN: 'Server is shutting down',
  ROOT_KEY_NOT_CONFIGURED: 'Root key not configured on the server',
  TOO_MANY_CONNECTIONS: 'Too many open connections',
  QUERY_TIMEOUT: 'Template SQL ran past its deadline',
}

/** One failing input field: where (`body/limit`) and the rule it broke (`must be <= 1000`), never its value. */
export interface FieldError {
  path: string
  message: string
}

/** A failing field given as a bare path gets this message. */
const DEFAULT_FIELD_MESSAGE = 'is invalid'
export const MAX_FIELD_ERRORS = 20

export interface ApiErrorOptions {
  /** Failing fields: `{path, message}` or a bare path (message "is invalid"). */
  fields?: (string | FieldError)[]
  retryAfterSeconds?: number
  headers?: Record<string, string>
  /** A sanitized machine-readable reason (e.g. the provider verdict `UNAUTHORIZED` of CREDENTIAL_REJECTED). */
  reason?: string
}

export class ApiError extends Error {
  readonly status: number
  constructor(
    readonly code: ErrorCode,
    readonly options: ApiErrorOptions = {},
  ) {
    super(code)
    this.name = 'ApiError'
    this.status = ERROR_CODES[code]
  }
}

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  code: string
  request_id: string
  reason?: string
  errors?: FieldError[]
}

/** Builds the problem+json body for a catalogue code (status, title and detail all come from the catalogue). */
export function problem(code: ErrorCode, requestId: string, fields?: (string | FieldError)[], reason?: string): Problem {
  const status = ERROR_CODES[code]
  const body: Problem = {
    type: `https://tenantflow.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: ERROR_TITLES[code],
    status,
    detail: STANDARD_DETAIL[status] ?? STANDARD_DETAIL[500]!,
    code,
    request_id: requestId,
  }
  if (reason) body.reason = reason.slice(0, 32)
  if (fields && fields.length > 0) {
    body.errors = fields.slice(0, MAX_FIELD_ERRORS).map((f) => {
      const e = typeof f === 'string' ? { path: f, message: DEFAULT_FIELD_MESSAGE } : f
      return { path: e.path.slice(0, 200), message: e.message.slice(0, 200) }
    })
  }
  return body
}
