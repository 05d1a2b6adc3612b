// Registers the processors tenantflow ships. Provider base URLs come from configuration (never from
// a template), so tests and self-hosters can point them at local or regional endpoints.
import { createAnthropicCostProcessor, createAnthropicUsageProcessor } from './anthropic/index.js'
import { createGcpBillingProcessor, serviceAccountTokens, type TokenSource } from './gcp/index.js'
import { createHttpExtractProcessor, createSqlTransformProcessor } from './generic/index.js'
import { createWebhookProcessor } from './notify/index.js'
import { createOpenAiCostProcessor, createOpenAiUsageProcessor } from './openai/index.js'
import type { ProcessorRegistry } from './registry.js'

export interface BuiltinProcessorOptions {
  /** OPENAI_BASE_URL, default https://api.openai.com */
  openaiBaseUrl: string
  /** ANTHROPIC_BASE_URL, default https://api.anthropic.com */
  anthropicBaseUrl: string
  /** BigQuery REST base, default https://bigquery.googleapis.com */
  bigqueryBaseUrl?: string
  /** GCP_TOKEN_URI override for the service-account token exchange (null: the key's own token_uri). */
  gcpTokenUri?: string | null
  /** Replaces the GCP token exchange (tests). */
  gcpTokens?: TokenSource
}

export const DEFAULT_BIGQUERY_BASE_URL = 'https://bigquery.googleapis.com'

export function registerBuiltinProcessors(reg: ProcessorRegistry, opts: BuiltinProcessorOptions): ProcessorRegistry {
  return reg
    .register(createOpenAiUsageProcessor({ baseUrl: opts.openaiBaseUrl }))
    .register(createOpenAiCostProcessor())
    .register(createAnthropicUsageProcessor({ baseUrl: opts.anthropicBaseUrl }))
    .register(createAnthropicCostProcessor())
    .register(
      createGcpBillingProcessor({
        bigqueryBaseUrl: opts.bigqueryBaseUrl ?? DEFAULT_BIGQUERY_BASE_URL,
        tokens: opts.gcpTokens ?? serviceAccountTokens(opts.gcpTokenUri ?? null),
      }),
    )
    .register(createHttpExtractProcessor())
    .register(createSqlTransformProcessor())
    .register(createWebhookProcessor())
}
export { seedDefaultPrices, MODEL_PRICES_SPEC } from './shared/pricing.js'
