// Maps HTTP statuses and egress failures onto the four sanitized validation codes.
import { EgressError, type EgressResponse } from '../../http/types.js'
import { ProviderCallError, type ValidationErrorCode, type ValidationResult } from './types.js'

/** Validation calls get a short bound: a user is waiting on the setup request. */
export const VALIDATION_TIMEOUT_MS = 15_000
/** Validation responses are small lists; anything larger is not the documented shape. */
export const VALIDATION_MAX_BYTES = 2 * 1024 * 1024

export function statusCode(status: number): ValidationErrorCode | null {
  if (status >= 200 && status < 300) return null
  if (status === 401 || status === 403) return 'UNAUTHORIZED'
  return 'UPSTREAM_ERROR'
}

/** Egress failure → code. A caller abort is not a provider outcome and is rethrown. */
export function egressCode(err: unknown): ValidationErrorCode {
  if (err instanceof ProviderCallError) return err.code
  if (!(err instanceof EgressError)) throw err
  switch (err.code) {
    case 'ABORTED':
      throw err
    case 'TIMEOUT':
      return 'TIMEOUT'
    case 'BLOCKED_DESTINATION':
    case 'INVALID_URL':
    case 'UNREACHABLE':
      return 'UNREACHABLE'
    case 'REDIRECT_REFUSED':
    case 'TOO_LARGE':
    case 'MALFORMED_RESPONSE':
      return 'UPSTREAM_ERROR'
  }
}

/** Runs a live check; every failure becomes INVALID with a code, success VALID. */
export async function outcome(check: () => Promise<void>): Promise<ValidationResult> {
  try {
    await check()
    return { status: 'VALID' }
  } catch (err) {
    return { status: 'INVALID', error_code: egressCode(err) }
  }
}

/** Throws the code for a non-2xx response. */
export function expectOk(res: EgressResponse): void {
  const code = statusCode(res.status)
  if (code) throw new ProviderCallError(code)
}

/** Parses JSON and checks it is an object whose `key` is an array (the list shapes providers document). */
export function expectList(res: EgressResponse, key = 'data'): void {
  expectOk(res)
  const body = res.json<Record<string, unknown> | null>()
  if (!body || typeof body !== 'object' || !Array.isArray(body[key])) throw new ProviderCallError('UPSTREAM_ERROR')
}

export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path
}
