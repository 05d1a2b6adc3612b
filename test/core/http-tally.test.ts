// The HTTP tally (core/observability/http-tally.ts) prints exactly what prom-client's own counter and
// histogram print for the same requests, so /metrics and the dashboards built on it do not change.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Histogram, Registry } from 'prom-client'
import { HTTP_DURATION_BUCKETS, HttpTally } from '../../src/core/observability/http-tally.js'

test('the tally prints what prom-client prints for the same requests', async () => {
  const ours = new Registry()
  const tally = new HttpTally(ours)
  const theirs = new Registry()
  const counter = new Counter({ name: 'tenantflow_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [theirs] })
  const histogram = new Histogram({ name: 'tenantflow_http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['method', 'route'], buckets: [...HTTP_DURATION_BUCKETS], registers: [theirs] })
  const requests: [string, string, number, number][] = [
    ['GET', '/api/v1/pipelines', 200, 0.0004],
    ['GET', '/api/v1/pipelines', 200, 0.001], // on a bound: counted in that bucket (le is inclusive)
    ['GET', '/api/v1/pipelines', 429, 0.0031],
    ['POST', '/api/v1/pipelines/run/:org_slug/:provider/:domain/:pipeline', 202, 0.02],
    ['POST', '/api/v1/pipelines/run/:org_slug/:provider/:domain/:pipeline', 400, 7.5], // above every bound
    ['GET', 'unmatched', 404, 0.26],
  ]
  for (const [method, route, status, seconds] of requests) {
    tally.seriesOf(method, route, status).observe(seconds)
    counter.inc({ method, route, status: String(status) })
    histogram.observe({ method, route }, seconds)
  }
  const lines = (text: string) => text.split('\n').filter((l) => l.length > 0).sort()
  assert.deepEqual(lines(await ours.metrics()), lines(await theirs.metrics()))
  // And it keeps counting in place: a second request of one series is in the next scrape.
  tally.seriesOf('GET', 'unmatched', 404).observe(0.5)
  assert.match(await ours.metrics(), /tenantflow_http_requests_total\{method="GET",route="unmatched",status="404"\} 2/)
})
