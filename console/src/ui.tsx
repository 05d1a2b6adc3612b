// Small shared pieces: timestamps (viewer's timezone, UTC on hover), status badges, empty states,
// error boxes, gauges, and a data-loading hook.
import type { ComponentChildren } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import { ApiFailure } from './api'
import { codeTitle } from './titles'

const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">—</span>
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return <span>{iso}</span>
  return (
    <time dateTime={d.toISOString()} title={d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}>
      {fmt.format(d)}
    </time>
  )
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—'
  if (ms < 1000) return `${ms} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  return `${m} min ${Math.round(s % 60)} s`
}

const TONE: Record<string, string> = {
  COMPLETED: 'ok', VALID: 'ok', ACTIVE: 'ok', RUNNING: 'info', PENDING: 'info', TRIAL: 'info',
  FAILED: 'bad', INVALID: 'bad', TIMEOUT: 'bad', SUSPENDED: 'warn', CANCELLED: 'warn', NOT_CONFIGURED: 'muted', PAUSED: 'warn',
}

export function Badge({ value }: { value: string }) {
  return <span class={`badge badge-${TONE[value] ?? 'muted'}`}>{value.replace(/_/g, ' ').toLowerCase()}</span>
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty" role="status">
      <p class="empty-title">{title}</p>
      {children ? <div class="empty-body">{children}</div> : null}
    </div>
  )
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null
  const f = error instanceof ApiFailure ? error : null
  const code = f?.code ?? 'ERROR'
  return (
    <div class="error-box" role="alert">
      <strong>{codeTitle(code)}</strong> <code>{code}</code>
      {f?.problem.reason ? (
        <span class="error-reason">
          {' '}
          ({codeTitle(f.problem.reason)}, <code>{f.problem.reason}</code>)
        </span>
      ) : null}
      {f?.problem.detail ? <span> — {f.problem.detail}</span> : null}
    </div>
  )
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}
    </p>
  )
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="page-header">
      <h1 tabIndex={-1}>{title}</h1>
      {children ? <div class="page-actions">{children}</div> : null}
    </div>
  )
}

/** A ring gauge: used / limit, labelled for screen readers. */
export function Gauge({ label, used, limit, caption }: { label: string; used: number; limit: number; caption?: ComponentChildren }) {
  const ratio = limit > 0 ? Math.min(1, used / limit) : 0
  const r = 42
  const c = 2 * Math.PI * r
  const tone = ratio >= 0.9 ? 'bad' : ratio >= 0.7 ? 'warn' : 'ok'
  return (
    <figure class="gauge" data-gauge={label}>
      <svg viewBox="0 0 100 100" role="img" aria-label={`${label}: ${used} of ${limit} used`}>
        <circle cx="50" cy="50" r={r} class="gauge-track" />
        {ratio > 0 ? <circle cx="50" cy="50" r={r} class={`gauge-fill gauge-${tone}`} stroke-dasharray={`${c * ratio} ${c}`} transform="rotate(-90 50 50)" /> : null}
        <text x="50" y="47" text-anchor="middle" class="gauge-value">{used}</text>
        <text x="50" y="63" text-anchor="middle" class="gauge-limit">of {limit}</text>
      </svg>
      <figcaption>
        <span class="gauge-label">{label}</span>
        {caption ? <span class="gauge-caption">{caption}</span> : null}
      </figcaption>
    </figure>
  )
}

export interface AsyncState<T> {
  data: T | null
  error: unknown
  loading: boolean
  reload: () => void
}

/** Loads data for a view; reload() re-runs the loader. Stale responses are ignored. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): AsyncState<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({ data: null, error: null, loading: true })
  const seq = useRef(0)
  const run = useCallback(() => {
    const mine = ++seq.current
    setState((s) => ({ ...s, loading: true }))
    load().then(
      (data) => mine === seq.current && setState({ data, error: null, loading: false }),
      (error) => mine === seq.current && setState({ data: null, error, loading: false }),
    )
  }, deps)
  useEffect(() => {
    run()
  }, [run])
  return { ...state, reload: run }
}

export function Pager({ hasPrev, next, onPrev, onNext }: { hasPrev: boolean; next: string | null; onPrev: () => void; onNext: () => void }) {
  if (!hasPrev && !next) return null
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" onClick={onPrev} disabled={!hasPrev}>
        ← Newer
      </button>
      <button type="button" onClick={onNext} disabled={!next}>
        Older →
      </button>
    </nav>
  )
}

/** Keyset paging state: a stack of cursors for "previous" and the current one. */
export function useCursorStack(): { cursor: string | undefined; hasPrev: boolean; push: (c: string) => void; pop: () => void; reset: () => void } {
  const [stack, setStack] = useState<(string | undefined)[]>([undefined])
  return {
    cursor: stack[stack.length - 1],
    hasPrev: stack.length > 1,
    push: (c) => setStack((s) => [...s, c]),
    pop: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    reset: () => setStack([undefined]),
  }
}
