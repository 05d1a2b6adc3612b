// Operator views (root key): organizations (search, paging, today's usage, last run), one
// organization (subscription and limit overrides, suspend/resume, offboard with typed confirmation),
// and system health.
import { useState } from 'preact/hooks'
import { api, ApiFailure, enc, q } from '../api'
import { navigate } from '../router'
import { Badge, Empty, ErrorBox, Loading, PageHeader, Pager, Time, useAsync, useCursorStack } from '../ui'

interface OrgRow {
  org_slug: string
  company_name: string
  status: string
  plan_name: string | null
  subscription_status: string | null
  runs_today: number
  daily_limit: number | null
  last_run_at: string | null
}

export function Orgs() {
  const [search, setSearch] = useState('')
  const [applied, setApplied] = useState('')
  const pages = useCursorStack()
  const list = useAsync(() => api<{ organizations: OrgRow[]; next_cursor: string | null }>('GET', `/api/v1/admin/overview/organizations${q({ limit: 20, cursor: pages.cursor, q: applied })}`), [pages.cursor, applied])
  return (
    <section>
      <PageHeader title="Organizations" />
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault()
          pages.reset()
          setApplied(search.trim())
        }}
      >
        <label>
          Search by slug or company
          <input type="search" value={search} maxLength={100} onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.organizations.length === 0 ? (
        <Empty title={applied ? 'No organization matches' : 'No organizations yet'}>{applied ? 'Try another search.' : 'Onboard one with POST /api/v1/organizations/onboard (see docs/guide.md).'}</Empty>
      ) : null}
      {list.data && list.data.organizations.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Organizations</caption>
            <thead>
              <tr>
                <th scope="col">Organization</th>
                <th scope="col">Status</th>
                <th scope="col">Plan</th>
                <th scope="col" class="num">Runs today</th>
                <th scope="col">Last run</th>
              </tr>
            </thead>
            <tbody>
              {list.data.organizations.map((o) => (
                <tr key={o.org_slug}>
                  <td>
                    <a href={`#/orgs/${enc(o.org_slug)}`}>{o.org_slug}</a>
                    <div class="muted company">{o.company_name}</div>
                  </td>
                  <td>
                    <Badge value={o.status === 'ACTIVE' ? o.subscription_status ?? o.status : o.status} />
                  </td>
                  <td>{o.plan_name ?? '—'}</td>
                  <td class="num">
                    {o.runs_today}
                    {o.daily_limit !== null ? <span class="muted"> / {o.daily_limit}</span> : null}
                  </td>
                  <td>
                    <Time iso={o.last_run_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager hasPrev={pages.hasPrev} next={list.data?.next_cursor ?? null} onPrev={pages.pop} onNext={() => list.data?.next_cursor && pages.push(list.data.next_cursor)} />
    </section>
  )
}

interface OrgDetailData {
  org_slug: string
  company_name: string
  admin_email: string
  status: string
  created_at: string
  subscription: { plan_name: string; status: string; daily_limit: number; monthly_limit: number; concurrent_limit: number; trial_end_date: string | null }
  usage_today: { runs: number; succeeded: number; failed: number; running: number }
  active_key_count: number
  run_count: number
}

const LIMITS = ['daily_limit', 'monthly_limit', 'concurrent_limit'] as const
const PLANS = ['STARTER', 'PROFESSIONAL', 'SCALE', 'ENTERPRISE']

export function OrgDetail({ slug }: { slug: string }) {
  const detail = useAsync(() => api<OrgDetailData>('GET', `/api/v1/admin/organizations/${enc(slug)}`), [slug])
  const [error, setError] = useState<unknown>(null)
  const [notice, setNotice] = useState('')
  const [limits, setLimits] = useState<Record<string, string>>({})
  const [confirm, setConfirm] = useState('')
  const [plan, setPlan] = useState('')
  const [busy, setBusy] = useState(false)
  const d = detail.data
  const put = async (body: Record<string, unknown>, done: string) => {
    setBusy(true)
    setError(null)
    setNotice('')
    try {
      await api('PUT', `/api/v1/organizations/${enc(slug)}/subscription`, body)
      setNotice(done)
      detail.reload()
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  const offboard = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await api('DELETE', `/api/v1/organizations/${enc(slug)}`, { confirm_org_slug: confirm })
      navigate('/orgs')
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  if (!d) {
    return (
      <section>
        <PageHeader title={slug} />
        <ErrorBox error={detail.error} />
        {detail.loading ? <Loading /> : null}
      </section>
    )
  }
  const suspended = d.subscription.status === 'SUSPENDED'
  const fe = error instanceof ApiFailure ? error.fieldErrors() : {}
  return (
    <section>
      <PageHeader title={d.org_slug}>
        <button type="button" class={suspended ? 'primary' : 'danger'} disabled={busy} onClick={() => put({ status: suspended ? 'ACTIVE' : 'SUSPENDED' }, suspended ? 'Resumed.' : 'Suspended: its key and sessions stop working now.')}>
          {suspended ? 'Resume' : 'Suspend'}
        </button>
      </PageHeader>
      <p class="company">{d.company_name}</p>
      <ErrorBox error={error} />
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      <dl class="facts">
        <div>
          <dt>Status</dt>
          <dd>
            <Badge value={d.subscription.status} />
          </dd>
        </div>
        <div>
          <dt>Plan</dt>
          <dd>{d.subscription.plan_name}</dd>
        </div>
        <div>
          <dt>Admin email</dt>
          <dd>{d.admin_email}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Time iso={d.created_at} />
          </dd>
        </div>
        <div>
          <dt>Today</dt>
          <dd>
            {d.usage_today.runs} runs ({d.usage_today.succeeded} ok, {d.usage_today.failed} failed, {d.usage_today.running} running)
          </dd>
        </div>
        <div>
          <dt>Runs kept</dt>
          <dd>{d.run_count}</dd>
        </div>
        <div>
          <dt>Active keys</dt>
          <dd>{d.active_key_count}</dd>
        </div>
      </dl>
      <h2>Subscription</h2>
      <form
        class="form row-form"
        onSubmit={(e) => {
          e.preventDefault()
          if (plan && plan !== d.subscription.plan_name) void put({ plan_name: plan }, `Plan changed to ${plan}.`)
        }}
      >
        <div class="field">
          <label for="plan">Plan</label>
          <select id="plan" value={plan || d.subscription.plan_name} onChange={(e) => setPlan(e.currentTarget.value)}>
            {PLANS.map((p) => (
              <option value={p}>{p}</option>
            ))}
          </select>
        </div>
        <div class="form-actions">
          <button type="submit" disabled={busy}>
            Change plan
          </button>
        </div>
      </form>
      <h2>Limit overrides</h2>
      <form
        class="form row-form"
        onSubmit={(e) => {
          e.preventDefault()
          const body: Record<string, number> = {}
          for (const k of LIMITS) if ((limits[k] ?? '').trim() !== '') body[k] = Number(limits[k])
          if (Object.keys(body).length > 0) void put(body, 'Limits saved.')
        }}
      >
        {LIMITS.map((k) => (
          <div class="field">
            <label for={`lim-${k}`}>{k.replace('_', ' ')}</label>
            <input id={`lim-${k}`} type="number" min={0} placeholder={String(d.subscription[k])} value={limits[k] ?? ''} onInput={(e) => setLimits({ ...limits, [k]: e.currentTarget.value })} />
            {fe[k] ? <p class="field-error">{fe[k]}</p> : null}
          </div>
        ))}
        <div class="form-actions">
          <button type="submit" disabled={busy}>
            Save limits
          </button>
        </div>
      </form>
      <h2>Offboard</h2>
      <form class="form danger-zone" onSubmit={offboard}>
        <p>Offboarding deletes the organization, its keys, credentials, runs and dataset. It cannot be undone.</p>
        <div class="field">
          <label for="confirm-slug">
            Type <code>{d.org_slug}</code> to confirm
          </label>
          <input id="confirm-slug" value={confirm} autoComplete="off" onInput={(e) => setConfirm(e.currentTarget.value)} />
        </div>
        <div class="form-actions">
          <button type="submit" class="danger" disabled={busy || confirm !== d.org_slug}>
            Offboard {d.org_slug}
          </button>
        </div>
      </form>
    </section>
  )
}

interface SystemData {
  database: { dialect: string; ok: boolean }
  queue: { pending: number; running: number }
  processes: { process_id: string; role: string; host: string; pid: number; worker_slots: number; runs_in_flight: number; scheduler: boolean; started_at: string; last_seen_at: string }[]
  workers: { worker_id: string; lease_until: string; active_runs: number }[]
  this_process_workers: number
  rate_limits: { enabled: boolean; backend: string }
  kms: { provider: string; key_version: string; ok: boolean }
  console_sessions: number
  checked_at: string
}

export function SystemHealth() {
  const s = useAsync(() => api<SystemData>('GET', '/api/v1/admin/system'), [])
  return (
    <section>
      <PageHeader title="System health">
        <button type="button" onClick={s.reload}>
          Check again
        </button>
      </PageHeader>
      <ErrorBox error={s.error} />
      {s.loading && !s.data ? <Loading label="Checking…" /> : null}
      {s.data ? (
        <>
          <ul class="cards">
            <li class="card">
              <h2 class="card-title">
                Database <Badge value={s.data.database.ok ? 'VALID' : 'FAILED'} />
              </h2>
              <p>{s.data.database.dialect === 'postgres' ? 'PostgreSQL' : 'Embedded (SQLite)'}</p>
            </li>
            <li class="card">
              <h2 class="card-title">Queue</h2>
              <p>
                <strong>{s.data.queue.pending}</strong> waiting · <strong>{s.data.queue.running}</strong> running
              </p>
            </li>
            <li class="card">
              <h2 class="card-title">
                Rate limits <Badge value={s.data.rate_limits.enabled ? 'ACTIVE' : 'SUSPENDED'} />
              </h2>
              <p>Counters in {s.data.rate_limits.backend}</p>
            </li>
            <li class="card">
              <h2 class="card-title">
                KMS <Badge value={s.data.kms.ok ? 'VALID' : 'FAILED'} />
              </h2>
              <p>
                {s.data.kms.provider} key {s.data.kms.key_version} — wrap/unwrap check {s.data.kms.ok ? 'passed' : 'failed'}
              </p>
            </li>
            <li class="card">
              <h2 class="card-title">Console sessions</h2>
              <p>{s.data.console_sessions} signed in</p>
            </li>
          </ul>
          <h2>Processes seen in the last minute</h2>
          {s.data.processes.length === 0 ? (
            <Empty title="No process has checked in">Servers and workers report here every 15 seconds while they run. Start workers with `tenantflow worker`.</Empty>
          ) : (
            <div class="table-wrap">
              <table data-testid="processes">
                <caption class="sr-only">Processes seen in the last minute</caption>
                <thead>
                  <tr>
                    <th scope="col">Process</th>
                    <th scope="col">Role</th>
                    <th scope="col">Host</th>
                    <th scope="col" class="num">Worker slots</th>
                    <th scope="col" class="num">Running</th>
                    <th scope="col">Started</th>
                    <th scope="col">Last seen</th>
                  </tr>
                </thead>
                <tbody>
                  {s.data.processes.map((p) => (
                    <tr key={p.process_id}>
                      <td>
                        <code>{p.process_id}</code>
                      </td>
                      <td>
                        {p.role}
                        {p.scheduler ? ' + scheduler' : ''}
                      </td>
                      <td>
                        {p.host} <span class="muted">pid {p.pid}</span>
                      </td>
                      <td class="num">{p.worker_slots}</td>
                      <td class="num">{p.runs_in_flight}</td>
                      <td>
                        <Time iso={p.started_at} />
                      </td>
                      <td>
                        <Time iso={p.last_seen_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {s.data.workers.some((w) => !s.data!.processes.some((p) => p.process_id === w.worker_id)) ? (
            <>
              <h2>Leases held by processes that stopped checking in</h2>
              <p class="muted">The reaper hands these runs back once their lease lapses.</p>
              <div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Worker</th>
                      <th scope="col">Lease until</th>
                      <th scope="col" class="num">Running</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.data.workers
                      .filter((w) => !s.data!.processes.some((p) => p.process_id === w.worker_id))
                      .map((w) => (
                        <tr key={w.worker_id}>
                          <td>
                            <code>{w.worker_id}</code>
                          </td>
                          <td>
                            <Time iso={w.lease_until} />
                          </td>
                          <td class="num">{w.active_runs}</td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </div>
            </>
          ) : null}
          <p class="muted">
            Checked <Time iso={s.data.checked_at} />
          </p>
        </>
      ) : null}
    </section>
  )
}
