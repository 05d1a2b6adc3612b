// The validated configuration's shape. Core modules take it (or a Pick of it); src/app/config.ts reads
// and validates it from the environment. Types only, so core never imports from app.

export type Environment = 'development' | 'staging' | 'production'

export interface Config {
  environment: Environment
  host: string
  port: number
  dataDir: string
  databaseUrl: string | null // null = embedded SQLite under dataDir
  redisUrl: string | null
  rootApiKey: string
  rootKeyGenerated: boolean
  rateLimitEnabled: boolean
  enableApiDocs: boolean
  logLevel: string
  kms: {
    provider: 'local' | 'gcp'
    localMasterKey: Buffer | null
    localMasterKeyVersion: string
    /** Retired local master keys kept only to unwrap (KMS_LOCAL_PREVIOUS_KEYS="v0:base64,..."); `kms rewrap` moves data off them. */
    localPreviousKeys?: { version: string; key: Buffer }[]
    gcpKeyName: string | null
    gcpEndpoint: string | null
    timeoutMs: number
  }
  egress: { allowLoopback: boolean; allowedHosts: string[]; timeoutMs: number; maxSockets: number }
  providers: { openaiBaseUrl: string; anthropicBaseUrl: string; gcpTokenUri: string | null; gcpApiBaseUrl: string; bigqueryBaseUrl: string }
  auth: { cacheTtlMs: number; negativeCacheTtlMs: number; cacheMax: number; lastUsedFlushMs: number; failedAuthPerMinute: number }
  rateLimit: { globalPerMinute: number; unauthenticatedPerMinute: number }
  workers: {
    concurrency: number; leaseMs: number; heartbeatMs: number; pollMs: number; reaperMs: number
    /** WORKER_MAX_PER_ORG: slots of one process one org may hold; unset = concurrency - 1 (at least 1). */
    maxPerOrg?: number
  }
  scheduler: { enabled: boolean; tickMs: number }
  pipelineConfigDirs: string[]
  retentionDays: number
  shutdownGraceMs: number
  webhookSigningSecret: string | null
  // ---- console (issue 11) ----
  console: ConsoleConfig
  // --- api-runs (issue 10): run watching (?wait=, SSE /events) and the plan catalogue ---
  runWatch: { pollMs: number; heartbeatMs: number; maxStreamsPerOrg: number; maxStreamSeconds: number }
  /** Plan catalogue file (YAML); null = the shipped configs/plans.yaml. */
  plansFile: string | null
  /** h-timing: shared rate-limit store timeouts and what limits do while it fails. */
  rateLimitStore: { fallback: 'memory' | 'deny'; redisConnectTimeoutMs: number; redisCommandTimeoutMs: number }
  // ---- HTTP transport (issue 8 item 12, h-errors) ----
  http: HttpTransportConfig
  // ---- op-runtime: proxy, metrics scraping, worker HTTP port, key rotation, credentials ----
  /** Fastify `trustProxy`: false, a hop count, or the proxies' addresses/CIDRs. */
  trustProxy: boolean | number | string[]
  /** Bearer token that may read /metrics (besides the root key); null = root key only. */
  metricsToken: string | null
  /** `tenantflow worker` serves health and metrics on this port; null = no HTTP listener. */
  workerHttpPort: number | null
  /** Default grace for the old key after `api-key/rotate` without `grace_seconds`. */
  rotationGraceSeconds: number
  // ---- h-bq (issue 13): where org datasets live ----
  datasets: DatasetsConfig
}

/** Org datasets: next to the system tables (SQLite file / PostgreSQL schema), or in BigQuery. */
export interface DatasetsConfig {
  backend: 'system' | 'bigquery'
  bigquery: BigQueryConfig | null
  /** TEMPLATE_SQL_TIMEOUT_MS: deadline of one generic.sql_transform query (default 60 s). */
  sqlTimeoutMs?: number
}

export interface BigQueryConfig {
  /** The platform's project that holds every org dataset (BIGQUERY_PROJECT). */
  project: string
  location: string
  /** The service-account JSON key (from BIGQUERY_CREDENTIALS_FILE or _JSON). A secret: never logged. */
  credentialsJson: string
  /** `https://bigquery.googleapis.com` unless BIGQUERY_API_ENDPOINT (tests, private endpoints). */
  apiEndpoint: string
  /** OAuth token endpoint override (BIGQUERY_TOKEN_URL); null = the key's token_uri. */
  tokenUrl: string | null
  /** Every query job carries maximumBytesBilled: a bigger query fails instead of being billed. */
  maxBytesBilled: number
  /** configuration.jobTimeoutMs of every job, and how long the client waits for one. */
  jobTimeoutMs: number
}

export interface HttpTransportConfig {
  /** Whole request (headers + body) must arrive within this, else 408 (Node `requestTimeout`). */
  requestTimeoutMs: number
  /** Headers must arrive within this, else 408 (Node `headersTimeout`); at most requestTimeoutMs. */
  headersTimeoutMs: number
  /** Open connections for the process; more get 503 TOO_MANY_CONNECTIONS. */
  maxConnections: number
  /** Open connections from one peer address; more get 503 TOO_MANY_CONNECTIONS. */
  maxConnectionsPerIp: number
}

export interface ConsoleConfig {
  /** Serve the web console at /console and accept its session cookies (CONSOLE_ENABLED). */
  enabled: boolean
  /** A session ends after this long without a request (CONSOLE_SESSION_IDLE_MINUTES). */
  idleMs: number
  /** ... and this long after sign-in whatever happens (CONSOLE_SESSION_MAX_HOURS). */
  absoluteMs: number
  /** Mark the cookie Secure even when the request looks like plain HTTP (CONSOLE_COOKIE_SECURE). */
  forceSecureCookie: boolean
}
