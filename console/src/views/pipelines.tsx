// Pipeline catalogue and the trigger form generated from each template's parameter schema. The
// client checks mirror the server's (type, required, min/max, max_length, enum values); the
// server's own refusals are shown next to the field they name.
import { useState } from 'preact/hooks'
import { api, ApiFailure, enc } from '../api'
import { navigate } from '../router'
import type { ParamSpec, Template } from '../types'
import { Empty, ErrorBox, Loading, PageHeader, useAsync } from '../ui'

export function Pipelines() {
  const catalog = useAsync(() => api<{ pipelines: Template[] }>('GET', '/api/v1/pipelines'), [])
  return (
    <section>
      <PageHeader title="Pipelines" />
      <ErrorBox error={catalog.error} />
      {catalog.loading && !catalog.data ? <Loading /> : null}
      {catalog.data && catalog.data.pipelines.length === 0 ? <Empty title="No pipeline templates are installed">Ask your operator to add templates under configs/pipelines.</Empty> : null}
      <ul class="cards">
        {(catalog.data?.pipelines ?? []).map((t) => (
          <li class="card" key={t.id}>
            <h2 class="card-title">{t.id}</h2>
            <p>{t.description}</p>
            <p class="muted">
              {t.steps.length} step{t.steps.length === 1 ? '' : 's'}
              {t.required_integration ? ` · needs the ${t.required_integration} integration` : ''}
            </p>
            <a class="button primary" href={`#/pipelines/${t.id}`} aria-label={`Run ${t.id}`}>
              Run…
            </a>
          </li>
        ))}
      </ul>
    </section>
  )
}

/** Mirrors the server's parameter checks; returns field → message. */
export function checkParameters(specs: Record<string, ParamSpec>, values: Record<string, string>): Record<string, string> {
  const errors: Record<string, string> = {}
  for (const [name, spec] of Object.entries(specs)) {
    const raw = (values[name] ?? '').trim()
    if (raw === '') {
      if (spec.required && spec.default === undefined) errors[name] = 'Required'
      continue
    }
    if (spec.type === 'integer') {
      if (!/^-?\d+$/.test(raw)) errors[name] = 'Must be a whole number'
      else if (spec.min !== undefined && Number(raw) < spec.min) errors[name] = `Must be at least ${spec.min}`
      else if (spec.max !== undefined && Number(raw) > spec.max) errors[name] = `Must be at most ${spec.max}`
    } else if (spec.type === 'date') {
      const d = new Date(raw + 'T00:00:00Z')
      if (!/^\d{4}-\d{2}-\d{2}$/.test(raw) || Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== raw) errors[name] = 'Must be a date (YYYY-MM-DD)'
    } else if (spec.type === 'enum') {
      if (!(spec.values ?? []).includes(raw)) errors[name] = 'Pick one of the listed values'
    } else if (raw.length > (spec.max_length ?? 256)) errors[name] = `At most ${spec.max_length ?? 256} characters`
  }
  return errors
}

export function TriggerForm({ org, id }: { org: string; id: string }) {
  const catalog = useAsync(() => api<{ pipelines: Template[] }>('GET', '/api/v1/pipelines'), [])
  const [values, setValues] = useState<Record<string, string>>({})
  const [errors, setErrors] = useState<Record<string, string>>({})
  const [failure, setFailure] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const t = catalog.data?.pipelines.find((p) => p.id === id)
  if (catalog.loading && !catalog.data) return <Loading />
  if (!t) return <Empty title="This pipeline does not exist">Go back to <a href="#/pipelines">the catalogue</a>.</Empty>
  const submit = async (e: Event) => {
    e.preventDefault()
    setFailure(null)
    const found = checkParameters(t.parameters, values)
    setErrors(found)
    if (Object.keys(found).length > 0) return
    const parameters: Record<string, string | number> = {}
    for (const [name, spec] of Object.entries(t.parameters)) {
      const raw = (values[name] ?? '').trim()
      if (raw !== '') parameters[name] = spec.type === 'integer' ? Number(raw) : raw
    }
    setBusy(true)
    try {
      const res = await api<{ run_id: string }>('POST', `/api/v1/pipelines/run/${enc(org)}/${enc(t.provider)}/${enc(t.domain)}/${enc(t.pipeline)}`, { parameters })
      navigate(`/runs/${res.run_id}`)
    } catch (err) {
      if (err instanceof ApiFailure) setErrors(err.fieldErrors())
      setFailure(err)
    } finally {
      setBusy(false)
    }
  }
  const names = Object.keys(t.parameters)
  return (
    <section>
      <PageHeader title={`Run ${t.id}`} />
      <p>{t.description}</p>
      {failure instanceof ApiFailure && failure.code === 'INTEGRATION_NOT_CONFIGURED' ? (
        <div class="error-box" role="alert">
          <strong>This pipeline needs a working {t.required_integration} integration.</strong> <a href="#/integrations">Set it up</a>, then run again.
        </div>
      ) : (
        <ErrorBox error={failure} />
      )}
      <form class="form" onSubmit={submit} noValidate>
        {names.length === 0 ? <p class="muted">This pipeline takes no parameters.</p> : null}
        {names.map((name) => {
          const spec = t.parameters[name]!
          const fid = `param-${name}`
          const err = errors[name]
          const common = {
            id: fid,
            name,
            value: values[name] ?? '',
            'aria-invalid': err ? ('true' as const) : undefined,
            'aria-describedby': `${fid}-help${err ? ` ${fid}-err` : ''}`,
            onInput: (e: Event) => setValues({ ...values, [name]: (e.currentTarget as HTMLInputElement).value }),
          }
          return (
            <div class="field" key={name}>
              <label for={fid}>
                {name}
                {spec.required && spec.default === undefined ? <span aria-hidden="true"> *</span> : null}
              </label>
              {spec.type === 'enum' ? (
                <select {...common} onChange={common.onInput}>
                  <option value="">{spec.default !== undefined ? `Default (${spec.default})` : 'Choose…'}</option>
                  {(spec.values ?? []).map((v) => (
                    <option value={v}>{v}</option>
                  ))}
                </select>
              ) : (
                <input
                  {...common}
                  type={(spec.type === 'date' ? 'date' : spec.type === 'integer' ? 'number' : 'text') as 'text'}
                  placeholder={spec.default !== undefined ? `Default: ${spec.default}` : ''}
                  min={spec.min}
                  max={spec.max}
                  maxLength={spec.max_length}
                  required={spec.required && spec.default === undefined}
                />
              )}
              <p class="help" id={`${fid}-help`}>
                {spec.description ?? spec.type}
              </p>
              {err ? (
                <p class="field-error" id={`${fid}-err`} role="alert">
                  {err}
                </p>
              ) : null}
            </div>
          )
        })}
        <div class="form-actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Starting…' : 'Start run'}
          </button>
          <a href="#/pipelines">Cancel</a>
        </div>
      </form>
    </section>
  )
}
