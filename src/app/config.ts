// Reads and validates configuration from the environment. Values are never echoed in errors:
// a ConfigError names the variable only.
import v8 from 'node:v8'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import { heartbeatFor, LEASE_HEARTBEATS } from '../core/pipelines/lease.js'
import type { BigQueryConfig, Config, ConsoleConfig, DatasetsConfig, Environment, HttpTransportConfig } from '../core/config.js'
import { parseServiceAccount } from '../core/integrations/providers/gcp.js'

export type { Config, ConsoleConfig, Environment, HttpTransportConfig }

function loadHttpTransportConfig(env: Env): HttpTransportConfig {
  const requestTimeoutMs = int(env, 'HTTP_REQUEST_TIMEOUT_MS', 60_000, 1_000, 600_000)
  const headersTimeoutMs = int(env, 'HTTP_HEADERS_TIMEOUT_MS', Math.min(30_000, requestTimeoutMs), 1_000, 600_000)
  if (headersTimeoutMs > requestTimeoutMs) report(new ConfigError('HTTP_HEADERS_TIMEOUT_MS', 'must not exceed HTTP_REQUEST_TIMEOUT_MS'))
  return {
    requestTimeoutMs,
    headersTimeoutMs,
    maxConnections: int(env, 'HTTP_MAX_CONNECTIONS', 4096, 1, 1_000_000),
    maxConnectionsPerIp: int(env, 'HTTP_MAX_CONNECTIONS_PER_IP', 256, 1, 1_000_000),
  }
}

// ---- console (issue 11): its own block so other helpers' edits do not collide ----
function loadConsoleConfig(env: Env, production: boolean): ConsoleConfig {
  return {
    enabled: bool(env, 'CONSOLE_ENABLED', !production),
    idleMs: int(env, 'CONSOLE_SESSION_IDLE_MINUTES', 30, 1, 24 * 60) * 60_000,
    absoluteMs: int(env, 'CONSOLE_SESSION_MAX_HOURS', 12, 1, 7 * 24) * 3_600_000,
    forceSecureCookie: bool(env, 'CONSOLE_COOKIE_SECURE', production),
  }
}

export class ConfigError extends Error {
  /** Every problem found in one load (this one first); `variable` is the first problem's. */
  readonly problems: { variable: string; reason: string }[]
  constructor(public readonly variable: string, reason: string, more: { variable: string; reason: string }[] = []) {
    super(`invalid configuration: ${[{ variable, reason }, ...more].map((p) => `${p.variable} ${p.reason}`).join('; ')}`)
    this.name = 'ConfigError'
    this.problems = [{ variable, reason }, ...more]
  }
}

// loadConfig collects problems instead of stopping at the first, so an operator sees all of them in
// one run. Set only during a (synchronous) loadConfig call.
let problemSink: ConfigError[] | null = null

/** Records a configuration problem; outside loadConfig it throws. Callers continue with a fallback. */
function report(err: ConfigError): void {
  if (!problemSink) throw err
  problemSink.push(err)
}

type Env = Record<string, string | undefined>

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const v = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off'].includes(v)) return false
  report(new ConfigError(name, 'must be true or false'))
  return fallback
}

/**
 * Cached keys per process when AUTH_CACHE_MAX is not set: about 2.5 % of the V8 heap limit at ~1 KiB per
 * entry (identity + LRU bookkeeping, measured), between 10,000 and 1,000,000 — 50,000 orgs fit at a
 * 2 GiB heap (about 100,000 at Node's usual 4 GiB), so the cache does not thrash as tenants grow.
 * (At 1 % a 4 GiB heap held 41,000 keys and 50,000 orgs cost 33 % more CPU per request.)
 */
export function defaultAuthCacheMax(heapLimitBytes = v8.getHeapStatistics().heap_size_limit): number {
  return Math.min(1_000_000, Math.max(10_000, Math.floor((heapLimitBytes * 0.025) / 1024)))
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!/^-?\d+$/.test(raw.trim())) report(new ConfigError(name, 'must be an integer'))
  else if (n < min || n > max) report(new ConfigError(name, `must be between ${min} and ${max}`))
  else return n
  return fallback
}

function url(env: Env, name: string, fallback: string | null, protocols: string[]): string | null {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    report(new ConfigError(name, 'must be a URL'))
    return fallback
  }
  if (!protocols.includes(parsed.protocol)) {
    report(new ConfigError(name, `must use ${protocols.join(' or ')}`))
    return fallback
  }
  return raw.replace(/\/+$/, '')
}

/** `version:base64,...`: retired 32-byte master keys, each with a distinct version label. */
function previousKeys(env: Env, name: string, currentVersion: string): { version: string; key: Buffer }[] {
  const raw = (env[name] ?? '').trim()
  if (!raw) return []
  const seen = new Set([currentVersion])
  return raw.split(',').map((entry) => {
    const sep = entry.indexOf(':')
    const version = entry.slice(0, sep).trim()
    const b64 = entry.slice(sep + 1).trim()
    if (sep < 1 || !/^[A-Za-z0-9._-]{1,32}$/.test(version)) throw new ConfigError(name, 'must be version:base64 pairs separated by commas')
    if (seen.has(version)) throw new ConfigError(name, 'must not repeat a key version or reuse the current one')
    seen.add(version)
    const key = Buffer.from(b64, 'base64')
    if (key.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new ConfigError(name, 'keys must be base64 of exactly 32 bytes')
    return { version, key }
  })
}

/** Reads a secret file created in development, or creates it (mode 0600). */
function devSecret(dataDir: string, file: string, make: () => string): { value: string; created: boolean } {
  const path = join(dataDir, file)
  if (existsSync(path)) return { value: readFileSync(path, 'utf8').trim(), created: false }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const value = make()
  writeFileSync(path, value + '\n', { mode: 0o600, flag: 'wx' })
  chmodSync(path, 0o600)
  return { value, created: true }
}

export interface LoadOptions {
  /** Allow creating dev secrets on disk (true for `serve`; tests pass explicit values). */
  persistDevSecrets?: boolean
}

// --- h-timing: worker lease and heartbeat -------------------------------------------------------
/**
 * A lease must outlive several heartbeats, or live runs lose it between two renewals (the provider
 * is then called twice and runs end WORKER_LOST). Without WORKER_HEARTBEAT_MS the heartbeat is
 * derived from the lease; an explicit pair that breaks the rule refuses to start.
 */
function workerLease(env: Env): { leaseMs: number; heartbeatMs: number } {
  const leaseMs = int(env, 'WORKER_LEASE_MS', 30_000, 500, 3_600_000)
  const explicit = env.WORKER_HEARTBEAT_MS !== undefined && env.WORKER_HEARTBEAT_MS !== ''
  const heartbeatMs = explicit ? int(env, 'WORKER_HEARTBEAT_MS', 10_000, 100, 600_000) : heartbeatFor(leaseMs)
  if (heartbeatMs * LEASE_HEARTBEATS > leaseMs) {
    report(new ConfigError('WORKER_HEARTBEAT_MS', `must be at most WORKER_LEASE_MS / ${LEASE_HEARTBEATS}`))
  }
  return { leaseMs, heartbeatMs }
}
function rateLimitStore(env: Env): Config['rateLimitStore'] {
  const fallback = (env.RATE_LIMIT_STORE_FALLBACK || 'memory').trim().toLowerCase()
  if (fallback !== 'memory' && fallback !== 'deny') throw new ConfigError('RATE_LIMIT_STORE_FALLBACK', 'must be memory or deny')
  return {
    fallback,
    redisConnectTimeoutMs: int(env, 'REDIS_CONNECT_TIMEOUT_MS', 3000, 50, 60_000),
    redisCommandTimeoutMs: int(env, 'REDIS_COMMAND_TIMEOUT_MS', 1000, 10, 60_000),
  }
}
// --- end h-timing ---------------------------------------------------------------------------------

/** Reads the configuration; throws one ConfigError listing every problem found. */
export function loadConfig(env: Env = process.env, opts: LoadOptions = {}): Config {
  const problems: ConfigError[] = []
  problemSink = problems
  let config: Config | null = null
  try {
    config = readConfig(env, opts)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(err)
  } finally {
    problemSink = null
  }
  if (problems.length > 0) {
    const [first, ...rest] = problems.flatMap((p) => p.problems)
    throw new ConfigError(first!.variable, first!.reason, rest)
  }
  return config!
}

function readConfig(env: Env, opts: LoadOptions): Config {
  const envName = (env.ENVIRONMENT ?? 'development').trim().toLowerCase()
  if (!['development', 'staging', 'production'].includes(envName)) {
    throw new ConfigError('ENVIRONMENT', 'must be development, staging or production')
  }
  const environment = envName as Environment
  const production = environment === 'production'
  const dataDir = resolve(env.DATA_DIR || './.tenantflow')

  if (bool(env, 'DISABLE_AUTH', false)) {
    report(new ConfigError('DISABLE_AUTH', 'is not supported: tenantflow has no auth bypass'))
  }
  const rateLimitEnabled = bool(env, 'RATE_LIMIT_ENABLED', true)
  if (production && !rateLimitEnabled) report(new ConfigError('RATE_LIMIT_ENABLED', 'must be true in production'))

  // Processes sharing one database must share one key set: no per-DATA_DIR generated secrets (op-runtime).
  const sharedDatabase = Boolean(env.DATABASE_URL)
  let rootApiKey = env.CA_ROOT_API_KEY ?? ''
  let rootKeyGenerated = false
  if (!rootApiKey) {
    // Only development generates secrets; a staging deploy that forgot one must not get a fresh one.
    if (production) report(new ConfigError('CA_ROOT_API_KEY', 'must be set in production'))
    else if (!opts.persistDevSecrets || environment !== 'development') report(new ConfigError('CA_ROOT_API_KEY', 'must be set'))
    else if (sharedDatabase) report(new ConfigError('CA_ROOT_API_KEY', SHARED_KEY_REASON))
    else {
      const s = devSecret(dataDir, 'root-key', () => 'tfroot_' + randomBytes(32).toString('base64url'))
      rootApiKey = s.value
      rootKeyGenerated = s.created
    }
  }
  if (rootApiKey && rootApiKey.length < 32) report(new ConfigError('CA_ROOT_API_KEY', 'must be at least 32 characters'))
  if (rootApiKey.length > 512) report(new ConfigError('CA_ROOT_API_KEY', 'must be at most 512 characters'))

  const kmsProvider = (env.KMS_PROVIDER ?? 'local').trim().toLowerCase()
  if (kmsProvider !== 'local' && kmsProvider !== 'gcp') report(new ConfigError('KMS_PROVIDER', 'must be local or gcp'))
  let localMasterKey: Buffer | null = null
  if (kmsProvider === 'local') {
    let raw = env.KMS_LOCAL_MASTER_KEY ?? ''
    if (!raw) {
      if (production) report(new ConfigError('KMS_LOCAL_MASTER_KEY', 'must be set explicitly in production'))
      else if (!opts.persistDevSecrets || environment !== 'development') report(new ConfigError('KMS_LOCAL_MASTER_KEY', 'must be set'))
      else if (sharedDatabase) report(new ConfigError('KMS_LOCAL_MASTER_KEY', SHARED_KEY_REASON))
      else raw = devSecret(dataDir, 'kms-master-key', () => randomBytes(32).toString('base64')).value
    }
    if (raw) {
      localMasterKey = Buffer.from(raw, 'base64')
      if (localMasterKey.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(raw.trim())) {
        report(new ConfigError('KMS_LOCAL_MASTER_KEY', 'must be base64 of exactly 32 bytes'))
      }
    }
  }
  const localMasterKeyVersion = (env.KMS_LOCAL_KEY_VERSION || 'v1').slice(0, 32)
  let localPreviousKeys: { version: string; key: Buffer }[] = []
  try {
    localPreviousKeys = previousKeys(env, 'KMS_LOCAL_PREVIOUS_KEYS', localMasterKeyVersion)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    report(err)
  }
  const gcpKeyName = env.GCP_KMS_KEY_NAME || null
  if (kmsProvider === 'gcp') {
    if (!gcpKeyName) report(new ConfigError('GCP_KMS_KEY_NAME', 'must be set when KMS_PROVIDER=gcp'))
    else if (!/^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/.test(gcpKeyName)) {
      report(new ConfigError('GCP_KMS_KEY_NAME', 'must be projects/*/locations/*/keyRings/*/cryptoKeys/*'))
    }
  }

  const enableApiDocs = bool(env, 'ENABLE_API_DOCS', !production)
  const allowLoopback = bool(env, 'EGRESS_ALLOW_LOOPBACK', false)
  if (production && allowLoopback) report(new ConfigError('EGRESS_ALLOW_LOOPBACK', 'must not be true in production'))

  const databaseUrl = url(env, 'DATABASE_URL', null, ['postgres:', 'postgresql:'])
  const redisUrl = url(env, 'REDIS_URL', null, ['redis:', 'rediss:'])
  const logLevel = (env.LOG_LEVEL ?? 'info').trim()
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    report(new ConfigError('LOG_LEVEL', 'must be a pino level'))
  }
  const hostList = (env.EGRESS_ALLOWED_HOSTS ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean)
  const webhookSigningSecret = env.WEBHOOK_SIGNING_SECRET || null
  if (webhookSigningSecret !== null && webhookSigningSecret.length < 32) {
    report(new ConfigError('WEBHOOK_SIGNING_SECRET', 'must be at least 32 characters'))
  }

  return {
    environment,
    host: env.HOST || '127.0.0.1',
    port: int(env, 'PORT', 8080, 0, 65535),
    dataDir,
    databaseUrl,
    redisUrl,
    rootApiKey,
    rootKeyGenerated,
    rateLimitEnabled,
    enableApiDocs,
    logLevel,
    kms: {
      provider: kmsProvider === 'gcp' ? 'gcp' : 'local',
      localMasterKey,
      localMasterKeyVersion,
      localPreviousKeys,
      gcpKeyName,
      gcpEndpoint: url(env, 'GCP_KMS_ENDPOINT', null, ['https:', 'http:']),
      timeoutMs: int(env, 'KMS_TIMEOUT_MS', 30_000, 100, 120_000),
    },
    egress: {
      allowLoopback,
      allowedHosts: hostList,
      timeoutMs: int(env, 'EGRESS_TIMEOUT_MS', 30_000, 100, 120_000),
      maxSockets: int(env, 'EGRESS_MAX_SOCKETS', 64, 1, 4096),
    },
    providers: {
      openaiBaseUrl: url(env, 'OPENAI_BASE_URL', 'https://api.openai.com', ['https:', 'http:'])!,
      anthropicBaseUrl: url(env, 'ANTHROPIC_BASE_URL', 'https://api.anthropic.com', ['https:', 'http:'])!,
      gcpTokenUri: url(env, 'GCP_TOKEN_URI', null, ['https:', 'http:']),
      gcpApiBaseUrl: url(env, 'GCP_API_BASE_URL', 'https://cloudresourcemanager.googleapis.com', ['https:', 'http:'])!,
      bigqueryBaseUrl: url(env, 'GCP_BIGQUERY_BASE_URL', 'https://bigquery.googleapis.com', ['https:', 'http:'])!,
    },
    auth: {
      cacheTtlMs: int(env, 'AUTH_CACHE_TTL_MS', 30_000, 0, 300_000),
      negativeCacheTtlMs: int(env, 'AUTH_NEGATIVE_CACHE_TTL_MS', 10_000, 0, 300_000),
      cacheMax: int(env, 'AUTH_CACHE_MAX', defaultAuthCacheMax(), 10, 5_000_000),
      lastUsedFlushMs: int(env, 'AUTH_LAST_USED_FLUSH_MS', 10_000, 100, 600_000),
      failedAuthPerMinute: int(env, 'FAILED_AUTH_PER_MINUTE', 30, 1, 100_000),
    },
    rateLimit: {
      globalPerMinute: int(env, 'RATE_LIMIT_GLOBAL_PER_MINUTE', 100_000, 1, 100_000_000),
      unauthenticatedPerMinute: int(env, 'RATE_LIMIT_IP_PER_MINUTE', 600, 1, 10_000_000),
    },
    workers: {
      concurrency: int(env, 'WORKER_CONCURRENCY', 4, 0, 256),
      ...workerLease(env),
      pollMs: int(env, 'WORKER_POLL_MS', 500, 10, 60_000),
      reaperMs: int(env, 'WORKER_REAPER_MS', 5_000, 100, 600_000),
      // Unset: derived from the (possibly overridden) concurrency when the pool is built.
      ...(env.WORKER_MAX_PER_ORG !== undefined && env.WORKER_MAX_PER_ORG !== '' ? { maxPerOrg: int(env, 'WORKER_MAX_PER_ORG', 3, 1, 256) } : {}),
    },
    scheduler: { enabled: bool(env, 'SCHEDULER_ENABLED', true), tickMs: int(env, 'SCHEDULER_TICK_MS', 1000, 50, 3_600_000) },
    pipelineConfigDirs: (env.PIPELINE_CONFIG_DIRS ?? '').split(':').map((d) => d.trim()).filter(Boolean).map((d) => resolve(d)),
    retentionDays: int(env, 'RUN_RETENTION_DAYS', 90, 1, 3650),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 25_000, 0, 600_000),
    webhookSigningSecret,
    console: loadConsoleConfig(env, production),
    // --- api-runs (issue 10) ---
    runWatch: {
      pollMs: int(env, 'RUN_WATCH_POLL_MS', 2_000, 50, 60_000),
      // Below the 60 s socket inactivity timeout, so an idle stream is never cut.
      heartbeatMs: int(env, 'RUN_EVENTS_HEARTBEAT_MS', 15_000, 100, 50_000),
      maxStreamsPerOrg: int(env, 'RUN_EVENTS_MAX_STREAMS_PER_ORG', 5, 1, 1000),
      maxStreamSeconds: int(env, 'RUN_EVENTS_MAX_STREAM_SECONDS', 3_600, 1, 86_400),
    },
    plansFile: env.PLANS_FILE ? resolve(env.PLANS_FILE) : null,
    rateLimitStore: rateLimitStore(env),
    http: loadHttpTransportConfig(env),
    ...opsConfig(env),
    datasets: { ...datasetsConfig(env, Boolean(databaseUrl)), sqlTimeoutMs: int(env, 'TEMPLATE_SQL_TIMEOUT_MS', 60_000, 100, 300_000) },
  }
}

// ---- op-runtime block ----

const SHARED_KEY_REASON = 'must be set explicitly when DATABASE_URL is set: every process on one database needs the same key'

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** TRUST_PROXY: off (default) | a hop count | comma-separated proxy IPs/CIDRs (or loopback, linklocal, uniquelocal). */
function trustProxy(env: Env): boolean | number | string[] {
  const raw = (env.TRUST_PROXY ?? '').trim().toLowerCase()
  if (raw === '' || ['0', 'false', 'off', 'no'].includes(raw)) return false
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw)
    if (hops > 32) throw new ConfigError('TRUST_PROXY', 'hop count must be at most 32')
    return hops
  }
  if (['true', 'on', 'yes', 'all'].includes(raw)) {
    throw new ConfigError('TRUST_PROXY', 'must be a hop count or the proxy addresses: trusting every sender lets any client forge its address')
  }
  const entries = raw.split(',').map((e) => e.trim()).filter(Boolean)
  for (const entry of entries) {
    if (PROXY_NAMES.has(entry)) continue
    const [addr = '', prefix, ...rest] = entry.split('/')
    const family = isIP(addr)
    const bits = family === 4 ? 32 : 128
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits)
    if (!family || !prefixOk || rest.length > 0) throw new ConfigError('TRUST_PROXY', 'must list IP addresses or CIDRs separated by commas')
  }
  if (entries.length === 0 || entries.length > 64) throw new ConfigError('TRUST_PROXY', 'must list between 1 and 64 addresses')
  return entries
}

/** Runs a parser that throws ConfigError; the problem is reported with the others and the fallback used. */
function reported<T>(parse: () => T, fallback: T): T {
  try {
    return parse()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    report(err)
    return fallback
  }
}

function opsConfig(env: Env): Pick<Config, 'trustProxy' | 'metricsToken' | 'workerHttpPort' | 'rotationGraceSeconds'> {
  const metricsToken = env.METRICS_TOKEN || null
  if (metricsToken !== null && (metricsToken.length < 32 || metricsToken.length > 512 || !/^[\x21-\x7e]+$/.test(metricsToken))) {
    report(new ConfigError('METRICS_TOKEN', 'must be 32 to 512 printable characters without spaces'))
  } else if (metricsToken !== null && metricsToken === env.CA_ROOT_API_KEY) {
    report(new ConfigError('METRICS_TOKEN', 'must differ from CA_ROOT_API_KEY'))
  }
  const rawPort = env.WORKER_HTTP_PORT
  const workerHttpPort = rawPort === undefined || rawPort === '' ? null : int(env, 'WORKER_HTTP_PORT', 0, 0, 65535)
  return {
    trustProxy: reported(() => trustProxy(env), false),
    metricsToken,
    workerHttpPort,
    rotationGraceSeconds: int(env, 'API_KEY_ROTATION_GRACE_SECONDS', 3600, 0, 86400),
  }
}

// ---- h-bq (issue 13): org datasets on BigQuery ----

const BQ_PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/
const BQ_LOCATION = /^[A-Za-z][A-Za-z0-9-]{1,40}$/

/** DATASET_BACKEND: sqlite | postgres (the system store's own, the default) or bigquery with its BIGQUERY_* settings. */
function datasetsConfig(env: Env, postgres: boolean): DatasetsConfig {
  const raw = (env.DATASET_BACKEND ?? '').trim().toLowerCase()
  if (raw === '' || raw === 'system') return { backend: 'system', bigquery: null }
  if (raw === 'sqlite' || raw === 'postgres') {
    if ((raw === 'postgres') !== postgres) report(new ConfigError('DATASET_BACKEND', 'sqlite and postgres keep datasets next to the system tables: use the one DATABASE_URL selects, or bigquery'))
    return { backend: 'system', bigquery: null }
  }
  if (raw !== 'bigquery') {
    report(new ConfigError('DATASET_BACKEND', 'must be sqlite, postgres or bigquery'))
    return { backend: 'system', bigquery: null }
  }
  return { backend: 'bigquery', bigquery: bigQueryConfig(env) }
}

function bigQueryConfig(env: Env): BigQueryConfig | null {
  const project = (env.BIGQUERY_PROJECT ?? '').trim()
  if (!BQ_PROJECT.test(project)) report(new ConfigError('BIGQUERY_PROJECT', 'must be set to a GCP project id when DATASET_BACKEND=bigquery'))
  const location = (env.BIGQUERY_LOCATION ?? 'US').trim()
  if (!BQ_LOCATION.test(location)) report(new ConfigError('BIGQUERY_LOCATION', 'must be a BigQuery location such as US, EU or europe-west1'))
  const file = env.BIGQUERY_CREDENTIALS_FILE || ''
  const inline = env.BIGQUERY_CREDENTIALS_JSON || ''
  let credentialsJson = ''
  if (file && inline) report(new ConfigError('BIGQUERY_CREDENTIALS_FILE', 'set either BIGQUERY_CREDENTIALS_FILE or BIGQUERY_CREDENTIALS_JSON, not both'))
  else if (file) {
    try {
      credentialsJson = readFileSync(resolve(file), 'utf8')
    } catch {
      report(new ConfigError('BIGQUERY_CREDENTIALS_FILE', 'cannot be read'))
    }
  } else if (inline) credentialsJson = inline
  else report(new ConfigError('BIGQUERY_CREDENTIALS_FILE', 'or BIGQUERY_CREDENTIALS_JSON must hold a service-account key when DATASET_BACKEND=bigquery'))
  const credVar = file ? 'BIGQUERY_CREDENTIALS_FILE' : 'BIGQUERY_CREDENTIALS_JSON'
  if (credentialsJson) {
    try {
      parseServiceAccount(credentialsJson)
    } catch (err) {
      // The parser names the failing field only, never a value.
      report(new ConfigError(credVar, `is not a usable service-account key (${(err as { field?: string }).field ?? 'credential'})`))
    }
  }
  const apiEndpoint = url(env, 'BIGQUERY_API_ENDPOINT', 'https://bigquery.googleapis.com', ['https:', 'http:'])!
  const tokenUrl = url(env, 'BIGQUERY_TOKEN_URL', null, ['https:', 'http:'])
  const maxBytesBilled = int(env, 'BIGQUERY_MAX_BYTES_BILLED', 10 * 1024 ** 3, 10 * 1024 ** 2, 2 ** 50)
  const jobTimeoutMs = int(env, 'BIGQUERY_JOB_TIMEOUT_MS', 120_000, 1_000, 6 * 3_600_000)
  return { project, location, credentialsJson, apiEndpoint, tokenUrl, maxBytesBilled, jobTimeoutMs }
}
