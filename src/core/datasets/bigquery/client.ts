// A thin BigQuery v2 REST client: every call through the egress client (connect/total timeouts, no
// redirects, host policy), a bearer token from the platform service account, retries of 429/5xx and
// rateLimitExceeded/backendError with jittered exponential backoff bounded by the caller's signal and
// deadline, and errors mapped onto dataset error codes. Upstream text (messages, SQL echoes, values)
// never leaves this file: only the HTTP status and a reason from a fixed list.
import { randomBytes } from 'node:crypto'
import type { EgressClient, EgressResponse } from '../../http/types.js'
import { EgressError } from '../../http/types.js'
import { DatasetError, type DatasetErrorCode } from '../errors.js'
import { TokenRefusedError, type TokenSource } from './auth.js'

const RETRY_STATUS = new Set([429, 500, 502, 503, 504])
const RETRY_REASONS = new Set(['rateLimitExceeded', 'backendError', 'internalError'])
/** Reasons the documentation lists; only these are ever named in an error message. */
const KNOWN_REASONS = new Set([
  'accessDenied', 'backendError', 'billingNotEnabled', 'billingTierLimitExceeded', 'blocked', 'bytesBilledLimitExceeded',
  'duplicate', 'internalError', 'invalid', 'invalidQuery', 'invalidUser', 'jobBackendError', 'jobInternalError',
  'notFound', 'notImplemented', 'quotaExceeded', 'rateLimitExceeded', 'resourceInUse', 'resourcesExceeded',
  'responseTooLarge', 'stopped', 'tableUnavailable', 'timeout',
])
const DEFAULT_TIMEOUT_MS = 30_000
const MAX_RESPONSE_BYTES = 20 * 1024 * 1024

export interface BigQueryClientOptions {
  http: EgressClient
  tokens: TokenSource
  /** e.g. https://bigquery.googleapis.com (BIGQUERY_API_ENDPOINT in tests). */
  endpoint: string
  project: string
  maxAttempts?: number
  baseDelayMs?: number
  now?: () => number
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

export interface CallOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  /** Under /bigquery/v2/projects/{project}; already encoded. */
  path: string
  query?: Record<string, string>
  body?: unknown
  /** A multipart upload (jobs.insert with media): the job resource and the NDJSON data. */
  upload?: { resource: unknown; data: string }
  signal?: AbortSignal
  /** Epoch ms after which no retry starts. */
  deadline?: number
  timeoutMs?: number
  /** The code for a 404 (default DATASET_NOT_FOUND). */
  notFound?: DatasetErrorCode
  /** The code for a 409 (default QUERY_FAILED). */
  conflict?: DatasetErrorCode
  /** A 409 on a retried insert means the first attempt landed (client-chosen job ids). */
  duplicateIsSuccess?: boolean
}

export interface BigQueryErrorInfo {
  status: number
  reason: string | null
}

/** The first error reason of a v2 error body ({error:{code,message,errors:[{reason}]}}), only if known. */
export function errorInfo(res: EgressResponse): BigQueryErrorInfo {
  let reason: string | null = null
  try {
    const b = res.json<{ error?: { errors?: { reason?: unknown }[] } }>()
    const r = b?.error?.errors?.[0]?.reason
    if (typeof r === 'string' && KNOWN_REASONS.has(r)) reason = r
  } catch {
    // not JSON: status only
  }
  return { status: res.status, reason }
}

/** A job's errorResult ({reason, message}) as a dataset error; the message is never used. */
export function jobError(errorResult: unknown): DatasetError {
  const r = (errorResult as { reason?: unknown } | null)?.reason
  const reason = typeof r === 'string' && KNOWN_REASONS.has(r) ? r : null
  return mapFailure({ status: 400, reason })
}

function mapFailure(info: BigQueryErrorInfo, opts: Pick<CallOptions, 'notFound' | 'conflict'> = {}): DatasetError {
  const { status, reason } = info
  if (reason === 'bytesBilledLimitExceeded' || reason === 'billingTierLimitExceeded') {
    return new DatasetError('LIMIT_EXCEEDED', 'query would bill more bytes than BIGQUERY_MAX_BYTES_BILLED allows')
  }
  if (reason === 'responseTooLarge' || reason === 'resourcesExceeded') return new DatasetError('LIMIT_EXCEEDED', `bigquery refused the query (${reason})`)
  if (status === 404 || reason === 'notFound') return new DatasetError(opts.notFound ?? 'DATASET_NOT_FOUND', opts.notFound === 'TABLE_NOT_FOUND' ? 'table not found' : 'dataset does not exist')
  if (status === 409 || reason === 'duplicate') {
    return opts.conflict ? new DatasetError(opts.conflict, 'dataset already exists') : new DatasetError('QUERY_FAILED', 'bigquery request failed (duplicate)')
  }
  if (status === 401 || status === 403 || reason === 'quotaExceeded' || reason === 'billingNotEnabled' || RETRY_STATUS.has(status) || (reason && RETRY_REASONS.has(reason))) {
    return new DatasetError('DATASET_UNAVAILABLE', `bigquery unavailable (HTTP ${status}${reason ? `, ${reason}` : ''})`)
  }
  return new DatasetError('QUERY_FAILED', `bigquery request failed (HTTP ${status}${reason ? `, ${reason}` : ''})`)
}

function retryable(info: BigQueryErrorInfo): boolean {
  return RETRY_STATUS.has(info.status) || (info.reason !== null && RETRY_REASONS.has(info.reason))
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new EgressError('ABORTED'))
    const onAbort = () => {
      clearTimeout(timer)
      reject(new EgressError('ABORTED'))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export class BigQueryClient {
  readonly project: string
  private readonly base: string
  private readonly maxAttempts: number
  private readonly baseDelayMs: number
  private readonly now: () => number
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>

  constructor(private readonly opts: BigQueryClientOptions) {
    this.project = opts.project
    this.base = opts.endpoint.replace(/\/+$/, '')
    this.maxAttempts = opts.maxAttempts ?? 6
    this.baseDelayMs = opts.baseDelayMs ?? 250
    this.now = opts.now ?? Date.now
    this.sleep = opts.sleep ?? abortableSleep
  }

  /** A fresh job id (client-chosen, so a retried jobs.insert can never start a second job). */
  static jobId(): string {
    return `tf_${randomBytes(12).toString('hex')}`
  }

  async call<T = Record<string, unknown>>(opts: CallOptions): Promise<T> {
    const prefix = opts.upload ? '/upload/bigquery/v2/projects/' : '/bigquery/v2/projects/'
    const q = new URLSearchParams(opts.upload ? { uploadType: 'multipart', ...opts.query } : opts.query)
    const url = `${this.base}${prefix}${encodeURIComponent(this.project)}${opts.path}${[...q.keys()].length ? `?${q}` : ''}`
    let body: string | undefined
    const headers: Record<string, string> = { accept: 'application/json' }
    if (opts.upload) {
      const boundary = `tf_${randomBytes(16).toString('hex')}`
      headers['content-type'] = `multipart/related; boundary=${boundary}`
      body =
        `--${boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n${JSON.stringify(opts.upload.resource)}\r\n` +
        `--${boundary}\r\ncontent-type: application/octet-stream\r\n\r\n${opts.upload.data}\r\n--${boundary}--\r\n`
    } else if (opts.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(opts.body)
    }
    let refreshed = false
    for (let attempt = 1; ; attempt++) {
      let failure: BigQueryErrorInfo | null = null
      try {
        const token = await this.opts.tokens.token(opts.signal)
        const res = await this.opts.http.request(url, {
          method: opts.method ?? (body === undefined ? 'GET' : 'POST'),
          headers: { ...headers, authorization: `Bearer ${token}` },
          body,
          signal: opts.signal,
          timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          maxBytes: MAX_RESPONSE_BYTES,
        })
        if (res.status >= 200 && res.status < 300) {
          if (res.body.length === 0) return {} as T
          try {
            return res.json<T>()
          } catch {
            throw new DatasetError('QUERY_FAILED', 'bigquery answered with malformed JSON')
          }
        }
        failure = errorInfo(res)
        if (failure.status === 409 && opts.duplicateIsSuccess && attempt > 1) return {} as T
        if (failure.status === 401 && !refreshed) {
          refreshed = true
          this.opts.tokens.invalidate()
          attempt--
          continue
        }
        if (!retryable(failure)) throw mapFailure(failure, opts)
      } catch (err) {
        if (err instanceof DatasetError) {
          if (err.code !== 'DATASET_UNAVAILABLE' || failure || err instanceof TokenRefusedError) throw err
          failure = { status: 0, reason: null }
        } else if (err instanceof EgressError) {
          if (err.code === 'ABORTED' || opts.signal?.aborted) throw new DatasetError('WRITE_FENCED', 'bigquery call stopped: the step was stopped or its run no longer holds its lease')
          if (err.code === 'TOO_LARGE' || err.code === 'MALFORMED_RESPONSE') throw new DatasetError('QUERY_FAILED', `bigquery request failed (${err.code})`)
          if (err.code === 'BLOCKED_DESTINATION' || err.code === 'INVALID_URL' || err.code === 'REDIRECT_REFUSED') {
            throw new DatasetError('DATASET_UNAVAILABLE', `bigquery unreachable (${err.code})`)
          }
          failure = { status: 0, reason: null } // TIMEOUT / UNREACHABLE: retried
        } else {
          throw err
        }
      }
      const delay = Math.min(this.baseDelayMs * 2 ** (attempt - 1), 8_000) * (0.5 + Math.random() / 2)
      const outOfTime = opts.deadline !== undefined && this.now() + delay >= opts.deadline
      if (attempt >= this.maxAttempts || outOfTime) {
        throw failure.status === 0 ? new DatasetError('DATASET_UNAVAILABLE', 'bigquery unreachable') : mapFailure(failure, opts)
      }
      try {
        await this.sleep(delay, opts.signal)
      } catch {
        throw new DatasetError('WRITE_FENCED', 'bigquery call stopped: the step was stopped or its run no longer holds its lease')
      }
    }
  }
}
