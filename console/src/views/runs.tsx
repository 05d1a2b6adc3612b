// Runs: the filtered, keyset-paged list and one run's detail with a live step timeline.
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, ApiFailure, enc, q } from '../api'
import { navigate } from '../router'
import type { Run, Step, Template } from '../types'
import { Badge, duration, Empty, ErrorBox, Loading, PageHeader, Pager, Time, useAsync, useCursorStack } from '../ui'
import { codeTitle } from '../titles'

const STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'TIMEOUT', 'CANCELLED']
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'TIMEOUT', 'CANCELLED'])

export function Runs({ org }: { org: string }) {
  const [status, setStatus] = useState('')
  const [pipeline, setPipeline] = useState('')
  const pages = useCursorStack()
  const catalog = useAsync(() => api<{ pipelines: Template[] }>('GET', '/api/v1/pipelines'), [])
  const list = useAsync(
    () => api<{ runs: Run[]; next_cursor: string | null }>('GET', `/api/v1/pipelines/${enc(org)}/runs${q({ limit: 20, status, pipeline_id: pipeline, cursor: pages.cursor })}`),
    [org, status, pipeline, pages.cursor],
  )
  return (
    <section>
      <PageHeader title="Runs">
        <button type="button" onClick={list.reload}>
          Refresh
        </button>
      </PageHeader>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={status} onChange={(e) => (setStatus(e.currentTarget.value), pages.reset())}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option value={s}>{s.toLowerCase()}</option>
            ))}
          </select>
        </label>
        <label>
          Pipeline
          <select value={pipeline} onChange={(e) => (setPipeline(e.currentTarget.value), pages.reset())}>
            <option value="">Any pipeline</option>
            {(catalog.data?.pipelines ?? []).map((t) => (
              <option value={t.id}>{t.id}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.runs.length === 0 ? (
        <Empty title={status || pipeline ? 'No run matches these filters' : 'No runs yet'}>
          {status || pipeline ? 'Clear the filters to see every run.' : <a href="#/pipelines">Run a pipeline from the catalogue</a>}
        </Empty>
      ) : null}
      {list.data && list.data.runs.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Runs, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Pipeline</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Duration</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {list.data.runs.map((r) => (
                <tr key={r.run_id}>
                  <td>
                    <a href={`#/runs/${enc(r.run_id)}`}>{r.pipeline_id}</a>
                  </td>
                  <td>
                    <Badge value={r.status} />
                  </td>
                  <td>
                    <Time iso={r.created_at} />
                  </td>
                  <td>{duration(r.duration_ms)}</td>
                  <td>{r.error_code ? codeTitle(r.error_code) : ''}</td>
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

/**
 * Follows a run until it ends: the API's event stream (GET …/runs/{id}/events, Server-Sent Events)
 * when it can be opened, otherwise polling that backs off from every second to every 5 s.
 */
function useLiveRun(org: string, runId: string) {
  const [run, setRun] = useState<Run | null>(null)
  const [steps, setSteps] = useState<Step[]>([])
  const [error, setError] = useState<unknown>(null)
  const [tick, setTick] = useState(0)
  const delay = useRef(1000)
  useEffect(() => {
    let stopped = false
    let timer: number | undefined
    let source: EventSource | null = null
    delay.current = 1000
    const load = async () => {
      const [r, s] = await Promise.all([
        api<Run>('GET', `/api/v1/pipelines/${enc(org)}/runs/${enc(runId)}`),
        api<{ steps: Step[] }>('GET', `/api/v1/pipelines/${enc(org)}/runs/${enc(runId)}/steps${q({ limit: 200 })}`),
      ])
      if (stopped) return null
      setRun(r)
      setSteps(s.steps)
      setError(null)
      return r
    }
    const poll = async () => {
      try {
        const r = await load()
        if (!r || TERMINAL.has(r.status)) return
      } catch (err) {
        if (stopped) return
        setError(err)
        if (err instanceof ApiFailure && (err.status === 404 || err.status === 403 || err.status === 401)) return
      }
      delay.current = Math.min(5000, Math.round(delay.current * 1.5))
      timer = window.setTimeout(poll, delay.current)
    }
    const stream = () => {
      if (typeof EventSource === 'undefined') return void poll()
      source = new EventSource(`/api/v1/pipelines/${enc(org)}/runs/${enc(runId)}/events`)
      const upsert = (st: Step) =>
        setSteps((prev) => {
          const next = prev.filter((p) => p.log_id !== st.log_id)
          next.push(st)
          return next.sort((a, b) => a.started_at.localeCompare(b.started_at) || a.log_id.localeCompare(b.log_id))
        })
      source.addEventListener('run', (e) => !stopped && setRun(JSON.parse((e as MessageEvent).data) as Run))
      source.addEventListener('step', (e) => !stopped && upsert(JSON.parse((e as MessageEvent).data) as Step))
      source.addEventListener('end', () => source?.close())
      // A stream the server refuses or drops (limit reached, older server, proxy): fall back to polling.
      source.onerror = () => {
        if (!source || source.readyState === EventSource.CLOSED || source.readyState === EventSource.CONNECTING) {
          source?.close()
          source = null
          if (!stopped) void poll()
        }
      }
    }
    // The first read also tells a missing run (404) apart before any stream is opened.
    load().then(
      (r) => {
        if (r && !TERMINAL.has(r.status)) stream()
      },
      (err) => !stopped && setError(err),
    )
    return () => {
      stopped = true
      window.clearTimeout(timer)
      source?.close()
    }
  }, [org, runId, tick])
  return { run, steps, error, refresh: () => setTick((t) => t + 1) }
}

export function RunDetail({ org, runId }: { org: string; runId: string }) {
  const { run, steps, error, refresh } = useLiveRun(org, runId)
  const [actionError, setActionError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  if (!run) {
    return (
      <section>
        <PageHeader title="Run" />
        <ErrorBox error={error} />
        {!error ? <Loading label="Loading the run…" /> : null}
      </section>
    )
  }
  const cancel = async () => {
    setBusy(true)
    setActionError(null)
    try {
      await api('POST', `/api/v1/pipelines/${enc(org)}/runs/${enc(runId)}/cancel`, {})
      refresh()
    } catch (err) {
      setActionError(err)
    } finally {
      setBusy(false)
    }
  }
  const rerun = async () => {
    setBusy(true)
    setActionError(null)
    try {
      const [provider, domain, pipeline] = run.pipeline_id.split('/')
      const res = await api<{ run_id: string }>('POST', `/api/v1/pipelines/run/${enc(org)}/${enc(provider!)}/${enc(domain!)}/${enc(pipeline!)}`, { parameters: run.parameters })
      navigate(`/runs/${res.run_id}`)
    } catch (err) {
      setActionError(err)
    } finally {
      setBusy(false)
    }
  }
  const live = !TERMINAL.has(run.status)
  const longest = Math.max(1, ...steps.map((s) => s.duration_ms ?? 0))
  return (
    <section>
      <PageHeader title={run.pipeline_id}>
        {live ? (
          <button type="button" onClick={cancel} disabled={busy || run.cancel_requested}>
            {run.cancel_requested ? 'Cancelling…' : 'Cancel run'}
          </button>
        ) : (
          <button type="button" class="primary" onClick={rerun} disabled={busy}>
            Run again
          </button>
        )}
      </PageHeader>
      <ErrorBox error={actionError} />
      <dl class="facts">
        <div>
          <dt>Status</dt>
          <dd data-testid="run-status" aria-live="polite">
            <Badge value={run.status} /> {live ? <span class="muted">updating live</span> : null}
          </dd>
        </div>
        <div>
          <dt>Run</dt>
          <dd>
            <code>{run.run_id}</code>
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Time iso={run.created_at} />
          </dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{duration(run.duration_ms)}</dd>
        </div>
        <div>
          <dt>Attempt</dt>
          <dd>
            {run.attempt} of {run.max_attempts}
          </dd>
        </div>
        <div>
          <dt>Triggered by</dt>
          <dd>
            {run.trigger_type} ({run.triggered_by})
          </dd>
        </div>
        <div>
          <dt>Parameters</dt>
          <dd>
            {Object.entries(run.parameters).map(([k, v]) => (
              <span class="chip">
                {k}={String(v)}
              </span>
            ))}
          </dd>
        </div>
      </dl>
      {run.error_code ? (
        <div class="error-box" role="alert" data-testid="run-error">
          <strong>{codeTitle(run.error_code)}</strong> <code>{run.error_code}</code>
          {run.error_message ? <p class="error-message">{run.error_message}</p> : null}
        </div>
      ) : null}
      <h2>Steps</h2>
      {steps.length === 0 ? <Empty title={live ? 'Waiting for the first step to start…' : 'This run has no recorded steps'} /> : null}
      <ol class="timeline" data-testid="steps">
        {steps.map((s) => (
          <li key={s.log_id} class="step">
            <div class="step-head">
              <strong>{s.step_id}</strong> <span class="muted">{s.processor}</span> <Badge value={s.status} />
              {s.attempt > 1 ? <span class="chip">retry {s.attempt - 1}</span> : null}
            </div>
            <div class="bar-row">
              <span class="bar" style={{ width: `${Math.max(2, ((s.duration_ms ?? 0) / longest) * 100)}%` }} data-status={s.status} aria-hidden="true" />
              <span class="bar-label">
                {duration(s.duration_ms)} · {s.rows_processed} rows
              </span>
            </div>
            {s.error_code ? (
              <p class="error-text">
                {codeTitle(s.error_code)} <code>{s.error_code}</code>
                {s.error_message ? <> — {s.error_message}</> : null}
              </p>
            ) : null}
            {s.status === 'RUNNING' && s.progress ? <ResultSummary result={s.progress} /> : null}
            {s.result !== undefined && s.result !== null ? <ResultSummary result={s.result} /> : null}
          </li>
        ))}
      </ol>
      <p>
        <a href="#/runs">← All runs</a> · <a href="#/data">See loaded data</a>
      </p>
    </section>
  )
}

function ResultSummary({ result }: { result: unknown }) {
  if (typeof result !== 'object' || result === null) return <p class="muted">{String(result)}</p>
  const entries = Object.entries(result as Record<string, unknown>).slice(0, 12)
  return (
    <dl class="result">
      {entries.map(([k, v]) => (
        <div>
          <dt>{k}</dt>
          <dd>{typeof v === 'object' ? JSON.stringify(v).slice(0, 200) : String(v)}</dd>
        </div>
      ))}
    </dl>
  )
}
