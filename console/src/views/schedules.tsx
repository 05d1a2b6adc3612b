// Schedules: list with next fire time in the schedule's own timezone, create, pause/resume, delete.
import { useState } from 'preact/hooks'
import { api, ApiFailure, enc, q } from '../api'
import type { Schedule, Template } from '../types'
import { Badge, Empty, ErrorBox, Loading, PageHeader, Pager, Time, useAsync, useCursorStack } from '../ui'

function inZone(iso: string | null, tz: string): string {
  if (!iso) return '—'
  try {
    return new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: tz, timeZoneName: 'short' }).format(new Date(iso))
  } catch {
    return iso
  }
}

export function Schedules({ org }: { org: string }) {
  const pages = useCursorStack()
  const list = useAsync(() => api<{ schedules: Schedule[]; next_cursor: string | null }>('GET', `/api/v1/scheduler/${enc(org)}/schedules${q({ limit: 20, cursor: pages.cursor })}`), [org, pages.cursor])
  const [actionError, setActionError] = useState<unknown>(null)
  const toggle = async (s: Schedule) => {
    setActionError(null)
    try {
      await api('PATCH', `/api/v1/scheduler/${enc(org)}/schedules/${enc(s.schedule_id)}`, { is_active: !s.is_active })
    } catch (err) {
      setActionError(err)
    }
    list.reload()
  }
  const remove = async (s: Schedule) => {
    if (!window.confirm(`Delete the schedule for ${s.pipeline_id}?`)) return
    try {
      await api('DELETE', `/api/v1/scheduler/${enc(org)}/schedules/${enc(s.schedule_id)}`, {})
    } catch (err) {
      setActionError(err)
    }
    list.reload()
  }
  return (
    <section>
      <PageHeader title="Schedules" />
      <CreateSchedule org={org} onCreated={() => (pages.reset(), list.reload())} />
      <ErrorBox error={list.error ?? actionError} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.schedules.length === 0 ? <Empty title="No schedules yet">Create one above to run a pipeline every day, hour or week.</Empty> : null}
      {list.data && list.data.schedules.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Schedules</caption>
            <thead>
              <tr>
                <th scope="col">Pipeline</th>
                <th scope="col">When</th>
                <th scope="col">Next run (schedule's timezone)</th>
                <th scope="col">Last run</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.schedules.map((s) => (
                <tr key={s.schedule_id}>
                  <td>
                    {s.name ? <strong class="schedule-name">{s.name}</strong> : null} {s.pipeline_id}
                  </td>
                  <td>
                    <code>{s.cron}</code> <span class="muted">{s.timezone}</span>
                  </td>
                  <td>{s.is_active ? inZone(s.next_run_at, s.timezone) : '—'}</td>
                  <td>
                    <Time iso={s.last_run_at} /> {s.last_status ? <Badge value={s.last_status} /> : null}
                  </td>
                  <td>
                    <Badge value={s.is_active ? 'ACTIVE' : 'PAUSED'} />
                  </td>
                  <td class="actions">
                    <button type="button" onClick={() => toggle(s)} aria-label={`${s.is_active ? 'Pause' : 'Resume'} ${s.name ?? s.pipeline_id}`}>
                      {s.is_active ? 'Pause' : 'Resume'}
                    </button>
                    <button type="button" class="danger" onClick={() => remove(s)}>
                      Delete
                    </button>
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

const ZONES = ['UTC', 'Europe/London', 'Europe/Paris', 'Europe/Berlin', 'America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Asia/Tokyo', 'Asia/Singapore', 'Australia/Sydney']

function CreateSchedule({ org, onCreated }: { org: string; onCreated: () => void }) {
  const catalog = useAsync(() => api<{ pipelines: Template[] }>('GET', '/api/v1/pipelines'), [])
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone
  const [pipeline, setPipeline] = useState('')
  const [name, setName] = useState('')
  const [cron, setCron] = useState('0 6 * * *')
  const [tz, setTz] = useState(ZONES.includes(local) ? local : 'UTC')
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(null)
    setBusy(true)
    try {
      await api('POST', `/api/v1/scheduler/${enc(org)}/schedules`, { pipeline_id: pipeline, cron: cron.trim(), timezone: tz, ...(name.trim() ? { name: name.trim() } : {}) })
      onCreated()
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  const fe = error instanceof ApiFailure ? error.fieldErrors() : {}
  return (
    <form class="form row-form" onSubmit={submit} aria-label="New schedule">
      <div class="field">
        <label for="sch-pipeline">Pipeline</label>
        <select id="sch-pipeline" value={pipeline} required onChange={(e) => setPipeline(e.currentTarget.value)}>
          <option value="">Choose…</option>
          {(catalog.data?.pipelines ?? []).map((t) => (
            <option value={t.id}>{t.id}</option>
          ))}
        </select>
        {fe.pipeline_id ? <p class="field-error">{fe.pipeline_id}</p> : null}
      </div>
      <div class="field">
        <label for="sch-name">Name (optional)</label>
        <input id="sch-name" value={name} maxLength={100} onInput={(e) => setName(e.currentTarget.value)} aria-invalid={fe.name ? 'true' : undefined} />
        {fe.name ? <p class="field-error">{fe.name}</p> : null}
      </div>
      <div class="field">
        <label for="sch-cron">Cron (min hour day month weekday)</label>
        <input id="sch-cron" value={cron} required maxLength={100} onInput={(e) => setCron(e.currentTarget.value)} aria-invalid={fe.cron ? 'true' : undefined} />
        {fe.cron ? <p class="field-error">{fe.cron}</p> : null}
      </div>
      <div class="field">
        <label for="sch-tz">Timezone</label>
        <select id="sch-tz" value={tz} onChange={(e) => setTz(e.currentTarget.value)}>
          {ZONES.map((z) => (
            <option value={z}>{z}</option>
          ))}
        </select>
      </div>
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy || !pipeline}>
          Create schedule
        </button>
      </div>
      <ErrorBox error={error} />
    </form>
  )
}
