// Failures of the credential service, each with a stable code the API maps to a status
// (INVALID_CREDENTIAL_FORMAT 400, INTEGRATION_NOT_CONFIGURED 400/404, CREDENTIAL_INVALID/PENDING 400, CREDENTIAL_UNUSABLE 409,
// KMS_UNAVAILABLE 503). Messages never carry a secret or upstream text.
export type CredentialErrorCode =
  | 'UNSUPPORTED_PROVIDER'
  | 'INVALID_CREDENTIAL_FORMAT'
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
  ) {
    super(field ? `${code}: ${field}` : code)
    this.name = 'CredentialError'
  }
}
