// The contract every integration provider module implements, and the sanitized outcome of a live check.
import type { Config } from '../../config.js'
import type { EgressClient } from '../../http/types.js'
import type { IntegrationProvider } from '../../processors/types.js'

export type ValidationErrorCode = 'UNAUTHORIZED' | 'TIMEOUT' | 'UNREACHABLE' | 'UPSTREAM_ERROR'

export interface ValidationResult {
  status: 'VALID' | 'INVALID' | 'PENDING'
  error_code?: ValidationErrorCode
}

/**
 * A credential or its metadata is malformed (`format`), or names a destination the egress policy
 * refuses (`destination`). Names the field, never the value.
 */
export class CredentialFormatError extends Error {
  constructor(readonly field: string, reason: string, readonly kind: 'format' | 'destination' = 'format') {
    super(`${field}: ${reason}`)
    this.name = 'CredentialFormatError'
  }
}

/** A provider call failed; `code` is safe to store and show (no upstream text). */
export class ProviderCallError extends Error {
  constructor(readonly code: ValidationErrorCode) {
    super(`provider call failed: ${code}`)
    this.name = 'ProviderCallError'
  }
}

export type ProviderConfig = Pick<Config, 'providers' | 'egress' | 'environment'> & {
  /** The org's operator-managed extra egress hosts (production host rule), when known. */
  orgAllowedHosts?: readonly string[]
}

export interface ProviderModule {
  readonly name: IntegrationProvider
  /** Checks shape only (no I/O). Returns the metadata to store: caller's metadata plus safe derived fields. */
  checkFormat(credential: string, metadata: Record<string, unknown>, cfg: ProviderConfig): Record<string, unknown>
  /** One live, cheap, authenticated call. Never throws for upstream failures; rethrows only caller aborts. */
  validate(
    credential: string,
    metadata: Record<string, unknown>,
    http: EgressClient,
    cfg: ProviderConfig,
    signal?: AbortSignal,
  ): Promise<ValidationResult>
}
