// Human titles for the codes the console shows: API problem codes and run/step error codes.
const TITLES: Record<string, string> = {
  // run and step outcomes
  UNAUTHORIZED: 'The provider refused the credential',
  TIMEOUT: 'The step took too long',
  STEP_TIMEOUT: 'A step took too long',
  PIPELINE_TIMEOUT: 'The run took too long',
  UNREACHABLE: 'The provider could not be reached',
  UPSTREAM_ERROR: 'The provider answered with an error',
  UPSTREAM_FAILED: 'An earlier step failed',
  RATE_LIMITED: 'The provider rate-limited the request',
  MALFORMED_RESPONSE: 'The provider sent an unexpected response',
  INTEGRATION_NOT_CONFIGURED: 'No working integration for this provider',
  CREDENTIAL_UNUSABLE: 'The stored credential cannot be used',
  BLOCKED_DESTINATION: 'The destination is not allowed',
  INVALID_DATA: 'The data did not match the table',
  LIMIT_EXCEEDED: 'More data than the step allows',
  CANCELLED: 'The run was cancelled',
  INTERRUPTED: 'The run was interrupted',
  PROCESSOR_ERROR: 'The step failed',
  DATASET_UNAVAILABLE: 'The dataset was unavailable',
  INTERNAL_ERROR: 'Internal error — check the server logs',
  TEMPLATE_NOT_FOUND: 'Pipeline not found',
  ORG_NOT_FOUND: 'Organization not found',
  // API problems
  VALIDATION_FAILED: 'Some fields are not valid',
  INVALID_PARAMETERS: 'Some parameters are not valid',
  INVALID_CREDENTIAL_FORMAT: 'The credential is not in the expected format',
  CONFIRMATION_MISMATCH: 'The confirmation does not match',
  MISSING_API_KEY: 'API key missing',
  INVALID_API_KEY: 'Invalid or inactive API key',
  SESSION_EXPIRED: 'Your session has ended',
  CSRF_TOKEN_INVALID: 'The request was not sent from the console',
  ORG_MISMATCH: 'Not your organization',
  ADMIN_REQUIRED: 'Operator access required',
  NOT_FOUND: 'Not found',
  RUN_NOT_FOUND: 'Run not found',
  INVALID_STATE: 'Not possible in the current state',
  IDEMPOTENCY_CONFLICT: 'Conflicting repeated request',
  DAILY_QUOTA_EXCEEDED: 'Daily run quota reached',
  MONTHLY_QUOTA_EXCEEDED: 'Monthly run quota reached',
  CONCURRENT_LIMIT_EXCEEDED: 'Too many runs at once',
  ORG_RATE_LIMITED: 'Too many requests — slow down',
  TRIGGER_RATE_LIMITED: 'Too many triggers — slow down',
  AUTH_RATE_LIMITED: 'Too many failed sign-ins — wait a minute',
  IP_RATE_LIMITED: 'Too many requests — slow down',
  SERVICE_UNAVAILABLE: 'Service unavailable',
  NETWORK_ERROR: 'The server could not be reached',
}

export function codeTitle(code: string | null | undefined): string {
  if (!code) return 'Error'
  return TITLES[code] ?? code.replace(/_/g, ' ').toLowerCase().replace(/^./, (c) => c.toUpperCase())
}
