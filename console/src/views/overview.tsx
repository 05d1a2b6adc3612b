// Tenant overview: quota gauges with reset times, recent runs, integration health.
import { api, enc, q } from '../api'
import type { Integration, Quota, Run } from '../types'
import { Badge, Empty, ErrorBox, Gauge, Loading, PageHeader, Time, useAsync } from '../ui'
import { codeTitle } from '../titles'

export function Overview({ org }: { org: string }) {
  const quota = useAsync(() => api<Quota>('GET', `/api/v1/organizations/${enc(org)}/quota`), [org])
  const runs = useAsync(() => api<{ runs: Run[] }>('GET', `/api/v1/pipelines/${enc(org)}/runs${q({ limit: 5 })}`), [org])
  const integ = useAsync(() => api<{ integrations: Integration[] }>('GET', `/api/v1/integrations/${enc(org)}`), [org])
  return (
    <section>
      <PageHeader title="Overview">
        <a class="button primary" href="#/pipelines">
          Run a pipeline
        </a>
      </PageHeader>
      <h2>Quota</h2>
      {quota.loading && !quota.data ? <Loading /> : null}
      <ErrorBox error={quota.error} />
      {quota.data ? (
        <div class="gauges" data-testid="quota">
          <Gauge label="Runs today" used={quota.data.daily.used} limit={quota.data.daily.limit} caption={<>resets <Time iso={quota.data.daily.resets_at} /></>} />
          <Gauge label="Runs this month" used={quota.data.monthly.used} limit={quota.data.monthly.limit} caption={<>resets <Time iso={quota.data.monthly.resets_at} /></>} />
          <Gauge label="Running now" used={quota.data.concurrent.running} limit={quota.data.concurrent.limit} caption="concurrent runs" />
          <div class="plan">
            <p>
              Plan <strong>{quota.data.plan_name}</strong>
            </p>
            <p>
              Today: {quota.data.succeeded_today} succeeded, {quota.data.failed_today} failed
            </p>
          </div>
        </div>
      ) : null}
      <div class="two-col">
        <div>
          <h2>Recent runs</h2>
          <ErrorBox error={runs.error} />
          {runs.data && runs.data.runs.length === 0 ? (
            <Empty title="No runs yet">
              <a href="#/pipelines">Pick a pipeline and run it</a>.
            </Empty>
          ) : null}
          {runs.data && runs.data.runs.length > 0 ? (
            <ul class="list">
              {runs.data.runs.map((r) => (
                <li key={r.run_id}>
                  <a href={`#/runs/${enc(r.run_id)}`}>{r.pipeline_id}</a> <Badge value={r.status} /> <Time iso={r.created_at} />
                  {r.error_code ? <span class="error-text"> {codeTitle(r.error_code)}</span> : null}
                </li>
              ))}
            </ul>
          ) : null}
        </div>
        <div>
          <h2>Integrations</h2>
          <ErrorBox error={integ.error} />
          {integ.data ? <IntegrationHealth list={integ.data.integrations} /> : null}
        </div>
      </div>
    </section>
  )
}

function IntegrationHealth({ list }: { list: Integration[] }) {
  const configured = list.filter((i) => i.status !== 'NOT_CONFIGURED')
  if (configured.length === 0) {
    return (
      <Empty title="No integration yet">
        <a href="#/integrations">Set up OpenAI</a>, Anthropic or GCP to load their usage and cost.
      </Empty>
    )
  }
  return (
    <ul class="list">
      {configured.map((i) => (
        <li key={i.provider}>
          <strong>{i.provider}</strong> <Badge value={i.status} /> checked <Time iso={i.last_validated_at} />
          {i.last_error_code ? <span class="error-text"> {codeTitle(i.last_error_code)}</span> : null}
        </li>
      ))}
    </ul>
  )
}
