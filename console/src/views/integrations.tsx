// Integrations: status, last validation and reason; set up (credential field write-only), validate, delete.
import { useState } from 'preact/hooks'
import { api, ApiFailure, enc } from '../api'
import type { Integration } from '../types'
import { Badge, ErrorBox, Loading, PageHeader, Time, useAsync } from '../ui'
import { codeTitle } from '../titles'

const HELP: Record<string, string> = {
  openai: 'An OpenAI admin key (sk-admin-…) that can read the organization Usage API.',
  anthropic: 'An Anthropic admin key (sk-ant-admin…) that can read the usage report.',
  gcp: 'A service account key (JSON) with read access to the billing export.',
  http: 'A token for your JSON API; set base_url and auth_type through the API.',
}

export function Integrations({ org }: { org: string }) {
  const list = useAsync(() => api<{ integrations: Integration[] }>('GET', `/api/v1/integrations/${enc(org)}`), [org])
  const [open, setOpen] = useState<string | null>(null)
  const [actionError, setActionError] = useState<unknown>(null)
  const act = async (provider: string, what: 'validate' | 'delete') => {
    setActionError(null)
    if (what === 'delete' && !window.confirm(`Delete the ${provider} credential? Pipelines that need it will stop.`)) return
    try {
      if (what === 'validate') await api('POST', `/api/v1/integrations/${enc(org)}/${enc(provider)}/validate`, {})
      else await api('DELETE', `/api/v1/integrations/${enc(org)}/${enc(provider)}`, {})
    } catch (err) {
      setActionError(err)
    }
    list.reload()
  }
  return (
    <section>
      <PageHeader title="Integrations" />
      <ErrorBox error={list.error ?? actionError} />
      {list.loading && !list.data ? <Loading /> : null}
      <ul class="cards">
        {(list.data?.integrations ?? []).map((i) => (
          <li class="card" key={i.provider} data-provider={i.provider}>
            <h2 class="card-title">
              {i.provider} <Badge value={i.status} />
            </h2>
            {i.status === 'NOT_CONFIGURED' ? (
              <p class="muted">No credential yet — set one up to run {i.provider} pipelines.</p>
            ) : (
              <dl class="facts compact">
                <div>
                  <dt>Name</dt>
                  <dd>{i.credential_name ?? '—'}</dd>
                </div>
                <div>
                  <dt>Fingerprint</dt>
                  <dd>
                    <code>…{i.fingerprint}</code>
                  </dd>
                </div>
                <div>
                  <dt>Last validated</dt>
                  <dd>
                    <Time iso={i.last_validated_at} />
                  </dd>
                </div>
                {i.last_error_code ? (
                  <div>
                    <dt>Reason</dt>
                    <dd class="error-text">{codeTitle(i.last_error_code)}</dd>
                  </div>
                ) : null}
              </dl>
            )}
            <div class="card-actions">
              <button type="button" class={i.status === 'NOT_CONFIGURED' ? 'primary' : ''} onClick={() => setOpen(open === i.provider ? null : i.provider)} aria-expanded={open === i.provider}>
                {i.status === 'NOT_CONFIGURED' ? `Set up ${i.provider}` : 'Replace credential'}
              </button>
              {i.status !== 'NOT_CONFIGURED' ? (
                <>
                  <button type="button" onClick={() => act(i.provider, 'validate')}>
                    Validate
                  </button>
                  <button type="button" class="danger" onClick={() => act(i.provider, 'delete')}>
                    Delete
                  </button>
                </>
              ) : null}
            </div>
            {open === i.provider ? <SetupForm org={org} provider={i.provider} onDone={() => (setOpen(null), list.reload())} /> : null}
          </li>
        ))}
      </ul>
    </section>
  )
}

function SetupForm({ org, provider, onDone }: { org: string; provider: string; onDone: () => void }) {
  const [name, setName] = useState('')
  const [skip, setSkip] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    const form = e.currentTarget as HTMLFormElement
    const field = form.elements.namedItem('credential') as HTMLInputElement | HTMLTextAreaElement
    const credential = field.value
    // Write-only: the value leaves the field as soon as it is sent, and is never rendered back.
    field.value = ''
    setBusy(true)
    setError(null)
    try {
      await api('POST', `/api/v1/integrations/${enc(org)}/${enc(provider)}/setup`, { credential, ...(name ? { credential_name: name } : {}), ...(skip ? { skip_validation: true } : {}) })
      onDone()
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  const fieldErr = error instanceof ApiFailure ? error.fieldErrors() : {}
  const id = `cred-${provider}`
  return (
    <form class="form inline-form" onSubmit={submit} autoComplete="off">
      <ErrorBox error={error} />
      <div class="field">
        <label for={id}>Credential</label>
        {provider === 'gcp' ? (
          <textarea id={id} name="credential" rows={4} required spellcheck={false} autoComplete="off" aria-describedby={`${id}-help`} />
        ) : (
          <input id={id} name="credential" type="password" required autoComplete="new-password" spellcheck={false} aria-describedby={`${id}-help`} />
        )}
        <p class="help" id={`${id}-help`}>
          {HELP[provider] ?? 'The provider credential.'} It is encrypted on the server and never shown again.
        </p>
        {fieldErr.credential ? <p class="field-error">{fieldErr.credential}</p> : null}
      </div>
      <div class="field">
        <label for={`${id}-name`}>Name (optional)</label>
        <input id={`${id}-name`} value={name} maxLength={200} onInput={(e) => setName(e.currentTarget.value)} />
      </div>
      <div class="field checkbox">
        <input id={`${id}-skip`} type="checkbox" checked={skip} onChange={(e) => setSkip(e.currentTarget.checked)} />
        <label for={`${id}-skip`}>Save without checking it with the provider now</label>
      </div>
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Save credential'}
        </button>
      </div>
    </form>
  )
}
