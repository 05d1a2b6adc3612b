// The console's only way to talk to the server: same-origin fetch with the session cookie (HttpOnly,
// never visible here) and, on every mutation, the per-session CSRF token held in memory only.
export interface Problem {
  status: number
  code: string
  title?: string
  detail?: string
  /** A machine-readable why (CREDENTIAL_REJECTED: UNAUTHORIZED, TIMEOUT, ...). */
  reason?: string
  errors?: { path: string; message?: string }[]
}

export class ApiFailure extends Error {
  constructor(readonly problem: Problem) {
    super(problem.code)
  }
  get status(): number {
    return this.problem.status
  }
  get code(): string {
    return this.problem.code
  }
  /**
   * Field path → message, keyed by the path's last segment: schema errors use JSON pointers
   * (`/body/parameters/date`), the server's own checks dotted paths (`parameters.date`); both → `date`.
   */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const e of this.problem.errors ?? []) {
      const name = e.path.split(/[/.]/).filter(Boolean).pop() ?? e.path
      out[name] = e.message ?? 'Invalid value'
    }
    return out
  }
}

let csrfToken: string | null = null
const listeners = new Set<() => void>()

export function setCsrf(token: string | null): void {
  csrfToken = token
}

/** Called when the server says the session is over (401): the app returns to sign-in. */
export function onSignedOut(fn: () => void): () => void {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

export async function api<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (method !== 'GET' && csrfToken) headers['x-tf-csrf'] = csrfToken
  let res: Response
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) })
  } catch {
    throw new ApiFailure({ status: 0, code: 'NETWORK_ERROR', title: 'The server could not be reached' })
  }
  const text = await res.text()
  let data: unknown = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = null
    }
  }
  if (!res.ok) {
    const p = (data && typeof data === 'object' ? data : {}) as Partial<Problem>
    const problem: Problem = { status: res.status, code: typeof p.code === 'string' ? p.code : 'HTTP_' + res.status, title: p.title, detail: p.detail, reason: typeof p.reason === 'string' ? p.reason : undefined, errors: p.errors }
    if (res.status === 401 && !path.startsWith('/console/api/session')) for (const fn of listeners) fn()
    throw new ApiFailure(problem)
  }
  return data as T
}

export const q = (params: Record<string, string | number | undefined | null>): string => {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v))
  const s = u.toString()
  return s ? `?${s}` : ''
}

export const enc = encodeURIComponent
