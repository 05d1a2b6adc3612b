// HTTP request counts and durations, tallied in plain numbers per (method, route, status) and read by
// the registry when it is scraped (issue 12). prom-client's labelled children validate and hash their
// labels on every inc and observe, even when the child is held: on a route that does little else that
// was a fifth of its time. What /metrics shows is unchanged: the counter
// tenantflow_http_requests_total{method,route,status} and the histogram
// tenantflow_http_request_duration_seconds{method,route}, in prom-client's own format.
import type { Registry } from 'prom-client'

export const HTTP_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const

/** One (method, route, status): what its requests took. Held by the caller and updated in place. */
export class HttpSeries {
  count = 0
  sum = 0
  /** Requests per bucket (not cumulative); the last slot is above the largest bound. */
  readonly perBucket = new Float64Array(HTTP_DURATION_BUCKETS.length + 1)

  constructor(
    readonly method: string,
    readonly route: string,
    readonly status: string,
  ) {}

  observe(seconds: number): void {
    this.count++
    this.sum += seconds
    let i = 0
    while (i < HTTP_DURATION_BUCKETS.length && seconds > HTTP_DURATION_BUCKETS[i]!) i++
    this.perBucket[i]!++
  }
}

type Value = { value: number; labels: Record<string, string | number>; metricName?: string }

const REQUESTS = { name: 'tenantflow_http_requests_total', help: 'HTTP requests by route and status', type: 'counter', aggregator: 'sum' } as const
const DURATION = { name: 'tenantflow_http_request_duration_seconds', help: 'HTTP request duration', type: 'histogram', aggregator: 'sum' } as const

/** The tally and its two registry views. Series are per route template and status: a bounded set. */
export class HttpTally {
  private readonly series = new Map<string, HttpSeries>()

  constructor(registry: Registry) {
    // Objects the registry reads like its own metrics: what get() returns is what prom-client's return.
    const reset = () => this.series.clear()
    registry.registerMetric({ ...REQUESTS, get: () => ({ ...REQUESTS, values: this.counterValues() }), reset } as never)
    registry.registerMetric({ ...DURATION, get: () => ({ ...DURATION, values: this.histogramValues() }), reset } as never)
  }

  /** The series of one (method, route, status), created on first use. */
  seriesOf(method: string, route: string, status: number): HttpSeries {
    const key = `${method} ${route} ${status}`
    let s = this.series.get(key)
    if (!s) this.series.set(key, (s = new HttpSeries(method, route, String(status))))
    return s
  }

  private counterValues(): Value[] {
    return [...this.series.values()].map((s) => ({ value: s.count, labels: { method: s.method, route: s.route, status: s.status } }))
  }

  private histogramValues(): Value[] {
    // The histogram's labels are method and route: its statuses are summed.
    const byRoute = new Map<string, { method: string; route: string; count: number; sum: number; perBucket: Float64Array }>()
    for (const s of this.series.values()) {
      const k = `${s.method} ${s.route}`
      let r = byRoute.get(k)
      if (!r) byRoute.set(k, (r = { method: s.method, route: s.route, count: 0, sum: 0, perBucket: new Float64Array(HTTP_DURATION_BUCKETS.length + 1) }))
      r.count += s.count
      r.sum += s.sum
      for (let i = 0; i < r.perBucket.length; i++) r.perBucket[i]! += s.perBucket[i]!
    }
    const name = DURATION.name
    const values: Value[] = []
    for (const r of byRoute.values()) {
      let cumulative = 0
      HTTP_DURATION_BUCKETS.forEach((le, i) => {
        cumulative += r.perBucket[i]!
        values.push({ value: cumulative, labels: { le, method: r.method, route: r.route }, metricName: `${name}_bucket` })
      })
      values.push({ value: r.count, labels: { le: '+Inf', method: r.method, route: r.route }, metricName: `${name}_bucket` })
      values.push({ value: r.sum, labels: { method: r.method, route: r.route }, metricName: `${name}_sum` })
      values.push({ value: r.count, labels: { method: r.method, route: r.route }, metricName: `${name}_count` })
    }
    return values
  }
}
