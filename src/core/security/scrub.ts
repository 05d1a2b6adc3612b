// Value-based secret scrubbing (SPEC §11). Redaction by field path (pino `redact`) misses a secret
// that ends up inside an error message, an upstream echo or a free-text field; so every secret that is
// decrypted is registered here for as long as it is in use, and every log line (and any text headed for
// storage, such as step-log error messages) is scrubbed of those values and of anything shaped like a
// known secret. Tracked values live only in this process's memory, never in logs, and are dropped when
// their use ends.

export const REDACTED = '[REDACTED]'

/** Secrets shorter than this are not tracked: replacing them would shred ordinary text. */
const MIN_TRACKED_LENGTH = 8
/** Upper bound on values tracked at once; the oldest registration is dropped first. */
const MAX_TRACKED = 512

// value → live registrations (two steps may use the same credential at once) and its text forms
const active = new Map<string, { count: number; forms: string[] }>()
// Process-lifetime secrets from configuration (root key, signing secret) → their text forms.
const pinned = new Map<string, string[]>()

const PATTERNS: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, REDACTED],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[^"]*/g, REDACTED], // truncated PEM
  [/\btfroot_[A-Za-z0-9_-]{16,}/g, REDACTED],
  [/\btf_[0-9A-Za-z]{20,}/g, REDACTED],
  [/\bsk-[A-Za-z0-9_-]{8,}/g, REDACTED],
  [/\bya29\.[A-Za-z0-9._-]{8,}/g, REDACTED],
  [/\bwhsec_[A-Za-z0-9_-]{20,}/g, REDACTED], // run-webhook signing secrets (webhooks/store.ts)
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/gi, `$1 ${REDACTED}`],
]

/** The forms a value takes in text: raw and JSON-escaped (log lines are JSON). */
function forms(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1)
  return escaped === value ? [value] : [value, escaped]
}

/** Tracks a decrypted value until the returned release function is called. */
export function registerSecret(value: string): () => void {
  if (typeof value !== 'string' || value.length < MIN_TRACKED_LENGTH) return () => {}
  const entry = active.get(value)
  if (entry) entry.count++
  else active.set(value, { count: 1, forms: forms(value) })
  while (active.size > MAX_TRACKED) active.delete(active.keys().next().value as string)
  let released = false
  return () => {
    if (released) return
    released = true
    const e = active.get(value)
    if (e === undefined) return
    if (e.count <= 1) active.delete(value)
    else e.count--
  }
}

/** Runs fn while `values` are tracked; they are released when fn settles. */
export async function withSecret<T>(values: string | string[], fn: () => Promise<T> | T): Promise<T> {
  const releases = (Array.isArray(values) ? values : [values]).map(registerSecret)
  try {
    return await fn()
  } finally {
    for (const release of releases) release()
  }
}

/** Scrubs a configuration secret for the life of the process (root key, webhook signing secret). */
export function pinSecret(value: string | null | undefined): void {
  if (value && value.length >= MIN_TRACKED_LENGTH) pinned.set(value, forms(value))
}

/** Number of values tracked right now (tests check that nothing outlives its use). */
export function trackedSecretCount(): number {
  return active.size
}

export function scrubText(text: string): string {
  let out = text
  for (const valueForms of pinned.values()) {
    for (const form of valueForms) if (out.includes(form)) out = out.split(form).join(REDACTED)
  }
  for (const e of active.values()) {
    for (const form of e.forms) if (out.includes(form)) out = out.split(form).join(REDACTED)
  }
  for (const [re, replacement] of PATTERNS) out = out.replace(re, replacement)
  return out
}

/** Deep copy of a JSON-like value with every string scrubbed. */
export function scrubValue<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return scrubText(value) as T
  if (depth > 8 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1)) as T
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = scrubValue(v, depth + 1)
  return out as T
}

const SECRET_FIELDS = ['credential', 'api_key', 'apiKey', 'private_key', 'secret', 'password', 'token', 'access_token', 'client_secret']
const SECRET_HEADERS = ['authorization', '"x-api-key"', '"x-ca-root-key"', 'cookie', '"set-cookie"', '"proxy-authorization"']

/** Field paths pino censors before serializing (request/response headers and credential-like body fields). */
export const pinoRedactPaths: string[] = [
  ...SECRET_HEADERS.flatMap((h) => {
    const p = h.startsWith('"') ? `[${h}]` : `.${h}`
    return [`req.headers${p}`, `res.headers${p}`, `headers${p}`, `request.headers${p}`]
  }),
  ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `body.${f}`, `req.body.${f}`, `body.metadata.${f}`]),
]
