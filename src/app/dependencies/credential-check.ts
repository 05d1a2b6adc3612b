// The use-time credential check of the trigger and schedule routes: a PENDING credential is validated
// now (ensureUsableCredential); every refusal becomes its catalogue code, with the provider's reason.
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { CredentialError } from '../../core/integrations/errors.js'
import { ensureUsableCredential } from '../../core/integrations/credentials.js'
import type { IntegrationProvider } from '../../core/processors/types.js'
import { credentialDeps } from '../routers/integrations.js'

/** Codes requireUsableCredential can answer with (operations.ts lists them for each route using it). */
export const USABLE_CREDENTIAL_ERRORS = [
  'INTEGRATION_NOT_CONFIGURED',
  'CREDENTIAL_INVALID',
  'CREDENTIAL_REJECTED',
  'DESTINATION_NOT_ALLOWED',
  'CREDENTIAL_UNUSABLE',
  'SERVICE_UNAVAILABLE',
] as const

export async function requireUsableCredential(
  ctx: AppContext,
  input: { org_slug: string; provider: IntegrationProvider; actor: string; request_id: string },
): Promise<void> {
  try {
    await ensureUsableCredential(credentialDeps(ctx), input)
  } catch (err) {
    if (!(err instanceof CredentialError)) throw err
    switch (err.code) {
      case 'CREDENTIAL_INVALID':
      case 'CREDENTIAL_REJECTED':
        throw new ApiError(err.code, { reason: err.reason })
      case 'DESTINATION_NOT_ALLOWED':
      case 'CREDENTIAL_UNUSABLE':
        throw new ApiError(err.code)
      case 'KMS_UNAVAILABLE':
        throw new ApiError('SERVICE_UNAVAILABLE')
      default:
        throw new ApiError('INTEGRATION_NOT_CONFIGURED')
    }
  }
}
