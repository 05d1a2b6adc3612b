// Builds the process runtime from a validated Config: storage (migrated), KMS, event bus, auth,
// rate limits, egress, processors, datasets and the pipeline engine. `serve`, `worker`, the tests
// and the benchmark all start here.
import type { DestinationStream, Logger } from 'pino'
import type { Config } from './config.js'
import type { AppContext } from './context.js'
import { openDatabase, type Db } from '../core/db/database.js'
import { migrateToLatest } from '../core/db/migrate.js'
import { systemClock, type Clock } from '../core/clock.js'
import { createKms, type KmsProvider } from '../core/security/kms-encryption.js'
import { createMetrics } from '../core/observability/metrics.js'
import { createLogger } from '../core/observability/logger.js'
import { LocalBus, PostgresBus, type EventBus } from '../core/events/bus.js'
import { createEgressClient, egressOptionsFromConfig } from '../core/http/egress.js'
import { OrgEgressHosts, orgEgressClient } from '../core/http/egress-allowlist.js'
import { createWebhookMetrics, WebhookDispatcher } from '../core/webhooks/dispatcher.js'
import { ProcessorRegistry } from '../core/processors/registry.js'
import { createBigQueryHome, createDataset, DatasetError, dropDataset, probeBigQueryHome, useBigQueryHome } from '../core/datasets/index.js'
import { registerBuiltinProcessors, seedDefaultPrices } from '../core/processors/builtin.js'
import { createEngine } from '../core/pipelines/engine.js'
import { openDatasetWriter } from '../core/datasets/index.js'
import {
  decryptActiveCredential,
  destroyOrgCredentials,
  ensureUsableCredential,
  trackCredential,
  type CredentialDeps,
} from '../core/integrations/credentials.js'
import { CredentialError } from '../core/integrations/errors.js'
import { parseServiceAccount } from '../core/integrations/providers/gcp.js'
import { KmsKeyMismatchError, requireKmsKeyCheck } from '../core/security/key-check.js'
import { ProcessorError } from '../core/processors/types.js'
import { ConfigError } from './config.js'
import { pinSecret } from '../core/security/scrub.js'
import { AuthService } from './dependencies/auth.js'
import { loadPlanCatalog, syncPlansTable } from '../core/orgs/plans.js'
import { RateLimits } from './dependencies/rate-limit.js'
import { SessionService } from './dependencies/session.js'
import { StartupStepError } from './startup-errors.js'

export interface RuntimeOptions {
  clock?: Clock
  logger?: Logger
  logDestination?: DestinationStream
  kms?: KmsProvider
  /** Collect Node's default process metrics (serve/worker only). */
  defaultMetrics?: boolean
  /** Extra processors (tests register controllable ones). */
  processors?: ((reg: ProcessorRegistry) => void)[]
  /** Built-in template directory override (undefined = configs/pipelines, null = none). */
  templateDir?: string | null
}

const SCRUB_WINDOW_MS = 10 * 60_000
const BIGQUERY_STARTUP_PROBE_MS = 10_000

export interface Runtime {
  ctx: AppContext
  close(): Promise<void>
}

async function createBus(db: Db, logger: Logger): Promise<EventBus> {
  if (db.dialect === 'postgres' && db.pgUrl && db.pgPool) {
    const bus = new PostgresBus(db.pgUrl, db.pgPool, { logger })
    await bus.start()
    return bus
  }
  return new LocalBus()
}

/** Refuses to start a process whose KMS key cannot unwrap the database's key-check value (names the mismatch, never a key). */
async function requireSameKmsKey(db: Db, kms: KmsProvider, config: Config, now: number): Promise<void> {
  try {
    await requireKmsKeyCheck(db, kms, now)
  } catch (err) {
    if (err instanceof KmsKeyMismatchError) throw new ConfigError(config.kms.provider === 'gcp' ? 'GCP_KMS_KEY_NAME' : 'KMS_LOCAL_MASTER_KEY', err.message)
    throw err
  }
}

/**
 * A credential this process cannot decrypt (KMS down, another KMS key) is the process's fault, not the
 * credential's: the step fails with a retryable infrastructure error and the credential keeps its status.
 */
const DECRYPT_FAILED_MESSAGE = 'The credential could not be decrypted by this worker (KMS unavailable or a different KMS key); the credential was not changed'

export async function createRuntime(config: Config, opts: RuntimeOptions = {}): Promise<Runtime> {
  // Configuration secrets are scrubbed from every log line by value for the life of the process.
  pinSecret(config.rootApiKey)
  pinSecret(config.webhookSigningSecret)
  pinSecret(config.metricsToken)
  const clock = opts.clock ?? systemClock
  const logger = opts.logger ?? createLogger(config.logLevel, opts.logDestination)
  const db = openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
  const closers: (() => Promise<unknown>)[] = [() => db.close()]
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined)
  }
  try {
    try {
      await migrateToLatest(db, clock.now())
    } catch (err) {
      throw new StartupStepError('database', err) // described for the operator in startup-errors.ts
    }
    const plans = loadPlanCatalog(config.plansFile)
    await syncPlansTable(db.kysely, plans)
    const kms = opts.kms ?? (await createKms(config))
    if (kms.close) closers.push(() => kms.close!())
    await requireSameKmsKey(db, kms, config, clock.now())
    const bus = await createBus(db, logger)
    closers.push(() => bus.close())
    const auth = new AuthService(db.kysely, config.rootApiKey, bus, clock, config.auth, config.metricsToken)
    auth.start()
    closers.push(() => auth.stop())
    const rateLimits = new RateLimits(
      config.redisUrl
        ? {
            kind: 'redis',
            redisUrl: config.redisUrl,
            redisConnectTimeoutMs: config.rateLimitStore.redisConnectTimeoutMs,
            redisCommandTimeoutMs: config.rateLimitStore.redisCommandTimeoutMs,
          }
        : db.pgPool ? { kind: 'postgres', pgPool: db.pgPool } : { kind: 'memory' },
      {
        fallback: config.rateLimitStore.fallback,
        logger,
        enabled: config.rateLimitEnabled,
        globalPerMinute: config.rateLimit.globalPerMinute,
        ipPerMinute: config.rateLimit.unauthenticatedPerMinute,
        failedAuthPerMinute: config.auth.failedAuthPerMinute,
      },
    )
    closers.push(() => rateLimits.close())
    const egress = createEgressClient(egressOptionsFromConfig(config))
    closers.push(() => egress.close())
    if (config.datasets.bigquery) {
      // Org datasets live in BigQuery; the catalogue and every system table stay on this database.
      pinSecret(config.datasets.bigquery.credentialsJson)
      pinSecret(parseServiceAccount(config.datasets.bigquery.credentialsJson).private_key)
      const home = createBigQueryHome(config.datasets.bigquery, egress, { maxAttempts: 2 })
      useBigQueryHome(db, createBigQueryHome(config.datasets.bigquery, egress))
      // One cheap call at startup: a wrong key or project shows in the log at once, not at the first run.
      // Not fatal: the API and the system tables work without the warehouse (reads answer DATASET_UNAVAILABLE).
      try {
        await probeBigQueryHome(home, AbortSignal.timeout(BIGQUERY_STARTUP_PROBE_MS))
        logger.info({ project: config.datasets.bigquery.project, location: config.datasets.bigquery.location }, 'org datasets on BigQuery: project reachable')
      } catch (err) {
        logger.warn({ project: config.datasets.bigquery.project, reason: err instanceof DatasetError && err.code !== 'WRITE_FENCED' ? err.message : 'timed out or unreachable' }, 'org datasets on BigQuery: project not reachable (tenantflow doctor checks it)')
      }
    }
    const egressHosts = new OrgEgressHosts(db.kysely, () => clock.now())
    egressHosts.attach(bus)
    const processors = new ProcessorRegistry()
    const ctx: AppContext = {
      config,
      db,
      clock,
      logger,
      kms,
      metrics: createMetrics({ defaultMetrics: opts.defaultMetrics }),
      bus,
      auth,
      rateLimits,
      sessions: config.console.enabled
        ? new SessionService(db.kysely, auth, clock, config.rootApiKey, {
            idleMs: config.console.idleMs,
            absoluteMs: config.console.absoluteMs,
            forceSecureCookie: config.console.forceSecureCookie,
          })
        : null,
      egress,
      egressHosts,
      processors,
      datasets: {
        create: async (slug, datasetId) => {
          const id = await createDataset(db, config.dataDir, slug, datasetId)
          // Every org starts with the shipped per-model price table (editable per org).
          await seedDefaultPrices(openDatasetWriter(db, config.dataDir, { orgSlug: slug, datasetId: id }))
          return id
        },
        drop: (ds) => dropDataset(db, config.dataDir, ds),
      },
      credentials: { destroyOrg: (trx, slug) => destroyOrgCredentials(trx, slug, clock.now()) },
      engine: null,
      plans,
      state: { shuttingDown: false },
    }
    registerBuiltinProcessors(processors, {
      openaiBaseUrl: config.providers.openaiBaseUrl,
      anthropicBaseUrl: config.providers.anthropicBaseUrl,
      gcpTokenUri: config.providers.gcpTokenUri,
      bigqueryBaseUrl: config.providers.bigqueryBaseUrl,
    })
    for (const register of opts.processors ?? []) register(processors)
    const credentialDeps: CredentialDeps = { db, kms, egress, config, now: () => clock.now(), orgHosts: egressHosts }
    const scrubReleases = new WeakMap<object, () => void>()
    const httpFor = (slug: string) => orgEgressClient(egress, () => egressHosts.hostsFor(slug))
    const webhooks = new WebhookDispatcher({ db, kms, clock, httpFor, logger, metrics: createWebhookMetrics(ctx.metrics.registry) }, { intervalMs: Math.max(config.workers.pollMs, 1000) })
    ctx.engine = createEngine({
      db,
      webhooks,
      config,
      clock,
      registry: processors,
      logger,
      metricsRegistry: ctx.metrics.registry,
      builtinTemplateDir: opts.templateDir,
      // Hints for run watchers (?wait=, SSE) on this and, on PostgreSQL, every other instance.
      onRunChanged: (slug, runId) => void bus.publish({ type: 'run.changed', run_id: runId, ...(slug ? { org_slug: slug } : {}) }).catch(() => undefined),
      deps: {
        openDataset: (ds, o) => openDatasetWriter(db, config.dataDir, ds, { fence: o?.fence, selectTimeoutMs: config.datasets.sqlTimeoutMs }),
        http: egress,
        httpFor,
        // A scheduled fire validates a PENDING credential as a trigger does; a refusal is recorded with its code.
        integrationReady: async (slug, provider) => {
          try {
            await ensureUsableCredential(credentialDeps, { org_slug: slug, provider, actor: 'scheduler' })
            return true
          } catch (err) {
            if (err instanceof CredentialError) return err.code === 'KMS_UNAVAILABLE' ? 'SERVICE_UNAVAILABLE' : err.code
            throw err
          }
        },
        getCredential: async (slug, provider, runId) => {
          let cred: Awaited<ReturnType<typeof decryptActiveCredential>>
          try {
            cred = await decryptActiveCredential(credentialDeps, {
              org_slug: slug,
              provider,
              reason: 'pipeline_step',
              actor: 'engine',
              run_id: runId,
            })
          } catch (err) {
            if (err instanceof CredentialError && (err.code === 'KMS_UNAVAILABLE' || err.code === 'CREDENTIAL_UNUSABLE')) {
              logger.error({ org: slug, provider, run_id: runId, code: err.code }, 'credential decrypt failed in this process')
              throw new ProcessorError('KMS_UNAVAILABLE', DECRYPT_FAILED_MESSAGE, { retryable: true })
            }
            throw err
          }
          // Scrubbed from logs until the step ends (releaseCredential), at most SCRUB_WINDOW_MS.
          const release = trackCredential(cred)
          const timer = setTimeout(release, SCRUB_WINDOW_MS).unref()
          scrubReleases.set(cred, () => {
            clearTimeout(timer)
            release()
          })
          return cred
        },
        releaseCredential: (cred) => {
          scrubReleases.get(cred)?.()
          scrubReleases.delete(cred)
        },
      },
    })
    closers.push(() => ctx.engine!.stop(0))
    // Offboarding on any instance stops that org's in-flight runs here at once.
    bus.subscribe((e) => {
      if (e.type === 'org.offboarded' && e.org_slug) ctx.engine?.workers.abortOrg(e.org_slug, e.dataset_id)
    })
    return { ctx, close }
  } catch (err) {
    await close()
    throw err
  }
}
