// The outbound HTTP contract shared by integrations and processors. The implementation
// (src/core/http/egress.ts) enforces timeouts, socket bounds, no redirects and the address rules.
export interface EgressRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD'
  headers?: Record<string, string>
  body?: string | Buffer
  /** Cancels the call (run cancellation, step timeout). */
  signal?: AbortSignal
  /** Total time bound; defaults to the configured 30 s and can only be lowered. */
  timeoutMs?: number
  /** Response body cap; larger bodies fail with TOO_LARGE. Default 10 MiB. */
  maxBytes?: number
  /** Only the status and headers matter (a webhook send): the body is dropped unread, whatever its size. */
  discardBody?: boolean
  /**
   * Host names this call may also reach in production (an org's operator-managed allow-list). They
   * widen the host rule only: scheme, metadata names and address checks still apply.
   */
  extraAllowedHosts?: readonly string[]
}

export interface EgressResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  text(): string
  /** Parses JSON; throws EgressError('MALFORMED_RESPONSE') on bad JSON. */
  json<T = unknown>(): T
}

export type EgressErrorCode =
  | 'BLOCKED_DESTINATION'
  | 'INVALID_URL'
  | 'TIMEOUT'
  | 'UNREACHABLE'
  | 'REDIRECT_REFUSED'
  | 'TOO_LARGE'
  | 'MALFORMED_RESPONSE'
  | 'ABORTED'

export class EgressError extends Error {
  constructor(readonly code: EgressErrorCode) {
    super(`egress: ${code}`)
    this.name = 'EgressError'
  }
}

export interface EgressClient {
  request(url: string, req?: EgressRequest): Promise<EgressResponse>
}
