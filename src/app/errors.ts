// The error catalogue (SPEC §5). Every error leaving the API is built here: problem+json with the
// standard detail for its status and a stable code. Nothing from an exception reaches a client.
export const STANDARD_DETAIL: Record<number, string> = {
  400: 'Invalid request format',
  401: 'Invalid or inactive API key',
  403: 'Cannot access another organization',
  404: 'Resource not found',
  405: 'Invalid request format',
  409: 'Conflict',
  413: 'Invalid request format',
  415: 'Invalid request format',
  429: 'Rate limit exceeded',
  500: 'Internal error. Check server logs.',
  503: 'Service unavailable',
}

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests',
  500: 'Internal Server Error', 503: 'Service Unavailable',
}

/** Stable machine-readable codes, grouped by status. */
export const ERROR_CODES = {
  VALIDATION_FAILED: 400,
  INVALID_SLUG: 400,
  INVALID_JSON: 400,
  CONFIRMATION_MISMATCH: 400,
  INTEGRATION_NOT_CONFIGURED: 400,
  INVALID_PARAMETERS: 400,
  INVALID_CREDENTIAL_FORMAT: 400,
  INVALID_TEMPLATE: 400,
  INVALID_CURSOR: 400,
  UNSUPPORTED_PROVIDER: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  METHOD_NOT_ALLOWED: 405,
  MISSING_API_KEY: 401,
  INVALID_API_KEY: 401,
  MISSING_ROOT_KEY: 401,
  INVALID_ROOT_KEY: 401,
  SESSION_EXPIRED: 401,
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
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  ROOT_KEY_NOT_CONFIGURED: 503,
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export class ApiError extends Error {
  readonly status: number
  constructor(
    readonly code: ErrorCode,
    readonly options: { fields?: string[]; retryAfterSeconds?: number; headers?: Record<string, string> } = {},
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
  errors?: { path: string }[]
}

export function problem(status: number, code: string, requestId: string, fields?: string[]): Problem {
  const body: Problem = {
    type: `https://tenantflow.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail: STANDARD_DETAIL[status] ?? STANDARD_DETAIL[500]!,
    code,
    request_id: requestId,
  }
  if (fields && fields.length > 0) body.errors = fields.slice(0, 20).map((path) => ({ path: path.slice(0, 200) }))
  return body
}
