// The processor contract (SPEC §8.5). A processor is a typed plugin a pipeline step names. It gets
// only what this context carries: the org, the run's parameters, its own step config, the credential
// it declared (decrypted for this step on demand), an egress-checked HTTP client and a dataset writer
// bound to this org. Nothing is shared between runs.
import type { EgressClient } from '../http/types.js'
import type { DatasetWriter } from '../datasets/types.js'

export type IntegrationProvider = 'openai' | 'anthropic' | 'gcp' | 'http'

export interface DecryptedCredential {
  provider: IntegrationProvider
  credential_id: string
  /** The secret. Use it for the call at hand; do not store it on objects that outlive the step. */
  secret: string
  metadata: Record<string, unknown>
}

export interface StepResult {
  rows_processed: number
  /** Small, secret-free summary written to the step log (and visible to later steps). */
  output?: Record<string, unknown>
}

export interface ProcessorContext {
  org: { slug: string; datasetId: string }
  run: { runId: string; pipelineId: string; triggerType: 'api' | 'schedule' }
  step: { stepId: string; attempt: number }
  /** The run's validated parameters (e.g. { date: '2026-11-27' }). */
  parameters: Readonly<Record<string, unknown>>
  signal: AbortSignal
  http: EgressClient
  dataset: DatasetWriter
  /** Outputs of steps that finished before this one, by step id (for notify.webhook summaries). */
  upstream: Readonly<Record<string, StepResult & { status: string }>>
  /** Decrypts the org's active credential for the processor's integration. Throws ProcessorError INTEGRATION_NOT_CONFIGURED. */
  getCredential(): Promise<DecryptedCredential>
  /** Clock in epoch ms (tests control it). */
  now(): number
  /**
   * Live progress while the step runs (e.g. after each page): `rows` so far and small counters such
   * as { pages, records }. Cheap to call often: the engine stores it at a bounded rate (≤ 1/s per step).
   */
  reportProgress?(p: { rows?: number; counters?: Record<string, number> }): void
}

export interface Processor<C = unknown> {
  /** Registry name, e.g. 'openai.usage'. */
  readonly name: string
  /** One line for the registry README / catalogue. */
  readonly description: string
  /** The integration whose credential getCredential() decrypts, if any. */
  readonly integration?: IntegrationProvider
  /** Checks a template's step config at load time; throws ProcessorConfigError naming the field. */
  validateConfig(config: unknown): C
  run(ctx: ProcessorContext, config: C): Promise<StepResult>
}

export type ProcessorErrorCode =
  | 'UNAUTHORIZED'
  | 'TIMEOUT'
  | 'UNREACHABLE'
  | 'UPSTREAM_ERROR'
  | 'RATE_LIMITED'
  | 'MALFORMED_RESPONSE'
  | 'INTEGRATION_NOT_CONFIGURED'
  | 'CREDENTIAL_UNUSABLE'
  /** This process could not decrypt the credential (KMS down or another key): infrastructure, retryable. */
  | 'KMS_UNAVAILABLE'
  /** The org dataset's warehouse (BigQuery) could not be reached or kept failing: infrastructure, retryable. */
  | 'DATASET_UNAVAILABLE'
  | 'BLOCKED_DESTINATION'
  | 'INVALID_DATA'
  | 'LIMIT_EXCEEDED'
  /** Template SQL ran past its deadline and was stopped. */
  | 'QUERY_TIMEOUT'
  | 'CANCELLED'
  | 'PROCESSOR_ERROR'

/** A failure a processor reports. `message` must be safe to store (no secrets, no upstream text). */
export class ProcessorError extends Error {
  constructor(
    readonly code: ProcessorErrorCode,
    message: string,
    readonly options: { retryable?: boolean; retryAfterMs?: number } = {},
  ) {
    super(message)
    this.name = 'ProcessorError'
  }
  get retryable(): boolean {
    return this.options.retryable ?? false
  }
}

export class ProcessorConfigError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`${field}: ${reason}`)
    this.name = 'ProcessorConfigError'
  }
}
