// Prometheus metrics for the HTTP layer. Each app instance has its own registry (tests run several).
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { HttpTally } from './http-tally.js'

export interface HttpMetrics {
  registry: Registry
  /** HTTP requests and their durations (tenantflow_http_requests_total, tenantflow_http_request_duration_seconds). */
  http: HttpTally
  authFailures: Counter<'guard' | 'code'>
  rateLimited: Counter<'reason'>
  kmsLatency: Histogram<'op'>
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): HttpMetrics {
  const registry = new Registry()
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'tenantflow_' })
  return {
    registry,
    http: new HttpTally(registry),
    authFailures: new Counter({
      name: 'tenantflow_auth_failures_total',
      help: 'Failed authentications by guard and code',
      labelNames: ['guard', 'code'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'tenantflow_rate_limited_total',
      help: '429 responses by reason code',
      labelNames: ['reason'],
      registers: [registry],
    }),
    kmsLatency: new Histogram({
      name: 'tenantflow_kms_duration_seconds',
      help: 'KMS wrap/unwrap latency',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    }),
  }
}
