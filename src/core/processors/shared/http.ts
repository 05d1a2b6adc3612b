// Provider calls from processors: one request through ctx.http with the shared failure mapping.
// 429 (and 503/529) with a short enough Retry-After are retried inside the step with backoff,
// bounded by ctx.signal; otherwise the step fails RATE_LIMITED (retryable, retryAfterMs) so the
// engine can retry it. Messages carry the label and status only: never upstream text or secrets.
import { setTimeout as sleep } from 'node:timers/promises'
import { EgressError, type EgressRequest, type EgressResponse } from '../../http/types.js'
import { ProcessorError, type ProcessorContext } from '../types.js'

export interface CallOptions {
  /** Human label for messages, e.g. "OpenAI usage API". */
  label: string
  method?: EgressRequest['method']
  headers?: Record<string, string>
  body?: string
  maxBytes?: number
  timeoutMs?: number
  /** In-step retries for 429/5xx (default 3). */
  maxRetries?: number
  /** Longest Retry-After honoured inside the step (default 60 s); longer waits go back to the engine. */
  maxWaitMs?: number
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504, 529])
const BASE_BACKOFF_MS = 1000
const MAX_BACKOFF_MS = 30_000

/** Retry-After as delta-seconds or an HTTP date; null when absent or unusable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (!value) return null
  const v = value.trim()
  if (/^\d{1,7}(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000)
  const at = Date.parse(v)
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs)
}

export function egressToProcessorError(err: unknown, label: string): ProcessorError {
  if (err instanceof ProcessorError) return err
  if (!(err instanceof EgressError)) return new ProcessorError('UPSTREAM_ERROR', `${label}: request failed`, { retryable: true })
  switch (err.code) {
    case 'ABORTED':
      return new ProcessorError('CANCELLED', `${label}: request cancelled`)
    case 'TIMEOUT':
      return new ProcessorError('TIMEOUT', `${label}: request timed out`, { retryable: true })
    case 'UNREACHABLE':
      return new ProcessorError('UNREACHABLE', `${label}: host unreachable`, { retryable: true })
    case 'BLOCKED_DESTINATION':
    case 'INVALID_URL':
      return new ProcessorError('BLOCKED_DESTINATION', `${label}: destination not allowed`)
    case 'REDIRECT_REFUSED':
      return new ProcessorError('UPSTREAM_ERROR', `${label}: redirect refused`)
    case 'TOO_LARGE':
      return new ProcessorError('LIMIT_EXCEEDED', `${label}: response too large`)
    case 'MALFORMED_RESPONSE':
      return new ProcessorError('MALFORMED_RESPONSE', `${label}: malformed response`)
  }
}

async function wait(ms: number, signal: AbortSignal, label: string): Promise<void> {
  try {
    await sleep(ms, undefined, { signal })
  } catch {
    throw new ProcessorError('CANCELLED', `${label}: cancelled while waiting to retry`)
  }
}

/** One HTTP exchange with retries; resolves only for 2xx. */
export async function call(ctx: ProcessorContext, url: string, opts: CallOptions): Promise<EgressResponse> {
  const maxRetries = opts.maxRetries ?? 3
  const maxWaitMs = opts.maxWaitMs ?? 60_000
  for (let attempt = 0; ; attempt++) {
    if (ctx.signal.aborted) throw new ProcessorError('CANCELLED', `${opts.label}: cancelled`)
    let res: EgressResponse
    try {
      res = await ctx.http.request(url, {
        method: opts.method ?? 'GET',
        headers: opts.headers,
        body: opts.body,
        signal: ctx.signal,
        timeoutMs: opts.timeoutMs,
        maxBytes: opts.maxBytes,
      })
    } catch (err) {
      throw egressToProcessorError(err, opts.label)
    }
    if (res.status >= 200 && res.status < 300) return res
    if (res.status === 401 || res.status === 403) {
      throw new ProcessorError('UNAUTHORIZED', `${opts.label}: credential rejected (HTTP ${res.status})`)
    }
    if (RETRY_STATUSES.has(res.status)) {
      const backoff = Math.min(BASE_BACKOFF_MS * 2 ** attempt, MAX_BACKOFF_MS)
      const hinted = parseRetryAfter(res.headers['retry-after'], ctx.now())
      const delay = hinted ?? backoff
      if (attempt < maxRetries && delay <= maxWaitMs) {
        await wait(delay, ctx.signal, opts.label)
        continue
      }
      if (res.status === 429) {
        throw new ProcessorError('RATE_LIMITED', `${opts.label}: rate limited (HTTP 429)`, { retryable: true, retryAfterMs: delay })
      }
      throw new ProcessorError('UPSTREAM_ERROR', `${opts.label}: upstream error (HTTP ${res.status})`, {
        retryable: true,
        ...(hinted !== null ? { retryAfterMs: hinted } : {}),
      })
    }
    throw new ProcessorError('UPSTREAM_ERROR', `${opts.label}: upstream answered HTTP ${res.status}`)
  }
}

/** call() and parse the JSON body (MALFORMED_RESPONSE when it is not JSON). */
export async function callJson(ctx: ProcessorContext, url: string, opts: CallOptions): Promise<unknown> {
  const res = await call(ctx, url, { ...opts, headers: { accept: 'application/json', ...opts.headers } })
  try {
    return JSON.parse(res.body.toString('utf8')) as unknown
  } catch {
    throw new ProcessorError('MALFORMED_RESPONSE', `${opts.label}: response is not JSON`)
  }
}

export function malformed(label: string, what: string): ProcessorError {
  return new ProcessorError('MALFORMED_RESPONSE', `${label}: malformed response (${what})`)
}

/**
 * The next page token of a `{has_more, next_page}` list (OpenAI and Anthropic usage APIs): null on the
 * last page; a missing, oversized or repeated token is a malformed response (never an endless loop).
 */
export function nextPageToken(body: Record<string, unknown>, current: string | null, label: string): string | null {
  if (body.has_more !== true) return null
  const next = body.next_page
  if (typeof next !== 'string' || next.length === 0 || next.length > 1024 || next === current) throw malformed(label, 'next_page')
  return next
}

export function joinBase(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path
}
