// The provider registry: name → module. Route schemas use PROVIDER_NAMES for the path enum.
import type { IntegrationProvider } from '../../processors/types.js'
import { anthropicProvider } from './anthropic.js'
import { gcpProvider } from './gcp.js'
import { httpProvider } from './http.js'
import { openaiProvider } from './openai.js'
import type { ProviderModule } from './types.js'

export const PROVIDERS: Readonly<Record<IntegrationProvider, ProviderModule>> = {
  openai: openaiProvider,
  anthropic: anthropicProvider,
  gcp: gcpProvider,
  http: httpProvider,
}

export const PROVIDER_NAMES = Object.keys(PROVIDERS) as IntegrationProvider[]

export function isProviderName(name: string): name is IntegrationProvider {
  return Object.prototype.hasOwnProperty.call(PROVIDERS, name)
}

export function providerModule(name: IntegrationProvider): ProviderModule {
  return PROVIDERS[name]
}

export * from './types.js'
export { gcpAccessToken, parseServiceAccount, type ServiceAccountKey } from './gcp.js'
export { httpAuthHeaders, parseHttpMetadata, type HttpCredentialMetadata } from './http.js'
export { ANTHROPIC_VERSION } from './anthropic.js'
