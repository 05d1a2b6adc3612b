// Failures of the credential service, each with a stable code the API maps to a status
// (INVALID_CREDENTIAL_FORMAT / DESTINATION_NOT_ALLOWED 400, INTEGRATION_NOT_CONFIGURED 400/404,
// CREDENTIAL_INVALID 400, CREDENTIAL_REJECTED 422, CREDENTIAL_UNUSABLE 409, KMS_UNAVAILABLE 503).
// Messages never carry a secret or upstream text.
import type { ValidationErrorCode } from './providers/types.js'

export type CredentialErrorCode =
  | 'UNSUPPORTED_PROVIDER'
  | 'INVALID_CREDENTIAL_FORMAT'
  | 'DESTINATION_NOT_ALLOWED'
  | 'CREDENTIAL_REJECTED'
  | 'INTEGRATION_NOT_CONFIGURED'
  | 'CREDENTIAL_INVALID'
  | 'CREDENTIAL_PENDING'
  | 'CREDENTIAL_UNUSABLE'
  | 'KMS_UNAVAILABLE'

export class CredentialError extends Error {
  constructor(
    readonly code: CredentialErrorCode,
    /** For INVALID_CREDENTIAL_FORMAT: the failing field path (e.g. `metadata.base_url`). */
    readonly field?: string,
    /** For CREDENTIAL_REJECTED / CREDENTIAL_INVALID: the provider's sanitized verdict (UNAUTHORIZED, TIMEOUT, ...). */
    readonly reason?: ValidationErrorCode,
  ) {
    super(field ? `${code}: ${field}` : code)
    this.name = 'CredentialError'
  }
}
