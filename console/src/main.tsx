// The console shell: restores the session (cookie → GET /console/api/session), shows sign-in
// otherwise, and routes between tenant or operator views. The key typed at sign-in goes to the
// server once and is dropped; nothing is written to localStorage, sessionStorage, IndexedDB or URLs.
import { render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, ApiFailure, onSignedOut, setCsrf } from './api'
import { match, navigate, useRoute } from './router'
import type { Session } from './types'
import { ErrorBox, Loading } from './ui'
import { Overview } from './views/overview'
import { RunDetail, Runs } from './views/runs'
import { Pipelines, TriggerForm } from './views/pipelines'
import { Integrations } from './views/integrations'
import { Schedules } from './views/schedules'
import { DataTables, TableRows } from './views/data'
import { Cost } from './views/cost'
import { AllAudit, OrgAudit } from './views/audit'
import { OrgDetail, Orgs, SystemHealth } from './views/operator'

const TENANT_NAV = [
  ['/overview', 'Overview'],
  ['/runs', 'Runs'],
  ['/pipelines', 'Pipelines'],
  ['/integrations', 'Integrations'],
  ['/schedules', 'Schedules'],
  ['/data', 'Data'],
  ['/cost', 'Cost'],
  ['/audit', 'Audit log'],
] as const
const OPERATOR_NAV = [
  ['/orgs', 'Organizations'],
  ['/system', 'System health'],
  ['/audit-all', 'Audit log'],
] as const

function SignIn({ onSignedIn, reason }: { onSignedIn: (s: Session) => void; reason: string | null }) {
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    const input = (e.currentTarget as HTMLFormElement).elements.namedItem('key') as HTMLInputElement
    const key = input.value.trim()
    input.value = ''
    if (!key) return
    setBusy(true)
    setError(null)
    try {
      onSignedIn(await api<Session>('POST', '/console/api/session', { key }))
    } catch (err) {
      setError(err)
      input.focus()
    } finally {
      setBusy(false)
    }
  }
  return (
    <main id="main" class="signin">
      <form class="card signin-card" onSubmit={submit} autoComplete="off">
        <h1>Sign in to tenantflow</h1>
        {reason ? (
          <p class="notice" role="status">
            {reason}
          </p>
        ) : null}
        <ErrorBox error={error} />
        <div class="field">
          <label for="key">Organization API key or root key</label>
          <input id="key" name="key" type="password" autoComplete="off" spellcheck={false} required autoFocus aria-describedby="key-help" />
          <p class="help" id="key-help">
            The key is sent once to this server, which opens a short session. The console never stores it.
          </p>
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  )
}

function TenantView({ org, path }: { org: string; path: string }) {
  let m: Record<string, string> | null
  if ((m = match('/runs/:id', path))) return <RunDetail org={org} runId={m.id!} />
  if (path === '/runs') return <Runs org={org} />
  if ((m = match('/pipelines/:p/:d/:n', path))) return <TriggerForm org={org} id={`${m.p}/${m.d}/${m.n}`} />
  if (path === '/pipelines') return <Pipelines />
  if (path === '/integrations') return <Integrations org={org} />
  if (path === '/schedules') return <Schedules org={org} />
  if ((m = match('/data/:table', path))) return <TableRows org={org} table={m.table!} />
  if (path === '/data') return <DataTables org={org} />
  if (path === '/cost') return <Cost org={org} />
  if (path === '/audit') return <OrgAudit org={org} />
  return <Overview org={org} />
}

function OperatorView({ path }: { path: string }) {
  let m: Record<string, string> | null
  if ((m = match('/orgs/:slug', path))) return <OrgDetail slug={m.slug!} />
  if (path === '/system') return <SystemHealth />
  if (path === '/audit-all') return <AllAudit />
  return <Orgs />
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined)
  const [reason, setReason] = useState<string | null>(null)
  const [bootError, setBootError] = useState<unknown>(null)
  const path = useRoute()
  const mainRef = useRef<HTMLElement>(null)

  const accept = (s: Session | null) => {
    setCsrf(s?.csrf_token ?? null)
    setSession(s)
  }
  useEffect(() => {
    api<Session>('GET', '/console/api/session').then(accept, (err) => {
      if (err instanceof ApiFailure && (err.status === 401 || err.status === 404)) accept(null)
      else setBootError(err)
    })
    return onSignedOut(() => {
      setReason('Your session has ended. Sign in again to continue.')
      accept(null)
    })
  }, [])
  // Move focus to the page heading on navigation (keyboard and screen-reader users).
  useEffect(() => {
    mainRef.current?.querySelector('h1')?.focus()
  }, [path, session])

  if (bootError) return <main id="main"><ErrorBox error={bootError} /></main>
  if (session === undefined) return <main id="main"><Loading label="Loading the console…" /></main>
  if (session === null) return <SignIn reason={reason} onSignedIn={(s) => (setReason(null), accept(s), navigate(s.principal === 'admin' ? '/orgs' : '/overview'))} />

  const signOut = async () => {
    try {
      await api('DELETE', '/console/api/session', {})
    } catch {
      // The session may already be over; either way we are signed out here.
    }
    setReason('You are signed out.')
    accept(null)
  }
  const nav = session.principal === 'admin' ? OPERATOR_NAV : TENANT_NAV
  const here = '/' + (path.split('/')[1] ?? '')
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), mainRef.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">tenantflow</span>
        <span class="who" data-testid="who">
          {session.principal === 'admin' ? 'Operator' : session.company_name ?? session.org_slug}
          {session.principal === 'org' ? <span class="muted"> ({session.org_slug})</span> : null}
        </span>
        <button type="button" class="signout" onClick={signOut}>
          Sign out
        </button>
      </header>
      <nav class="side" aria-label="Main">
        <ul>
          {nav.map(([href, label]) => (
            <li>
              <a href={`#${href}`} aria-current={here === href || (here === '/' && href === nav[0][0]) ? 'page' : undefined}>
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" ref={mainRef} tabIndex={-1}>
        {session.principal === 'admin' ? <OperatorView path={path} /> : <TenantView org={session.org_slug!} path={path} />}
      </main>
    </div>
  )
}

const root = document.getElementById('app')!
// Replace the static "Loading" placeholder rather than rendering next to it.
root.replaceChildren()
render(<App />, root)
