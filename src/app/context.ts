// Everything a request handler or a worker may use, built once per process (tests build several).
// Handlers receive it explicitly; there is no module-level state.
import type { Logger } from 'pino'
import type { Transaction } from 'kysely'
import type { Database } from '../core/db/schema.js'
import type { Config } from './config.js'
import type { Db } from '../core/db/database.js'
import type { Clock } from '../core/clock.js'
import type { KmsProvider } from '../core/security/kms-encryption.js'
import type { HttpMetrics } from '../core/observability/metrics.js'
import type { EventBus } from '../core/events/bus.js'
import type { EgressClient } from '../core/http/types.js'
import type { OrgEgressHosts } from '../core/http/egress-allowlist.js'
import type { ProcessorRegistry } from '../core/processors/registry.js'
import type { Engine } from '../core/pipelines/engine.js'
import type { AuthService } from './dependencies/auth.js'
import type { DatasetBinding } from '../core/datasets/types.js'
import type { RateLimits } from './dependencies/rate-limit.js'
import type { PlanCatalog } from '../core/orgs/plans.js'
import type { SessionService } from './dependencies/session.js'

export interface DatasetAdmin {
  /** Creates a new org incarnation's isolated dataset under `datasetId` (seeded); returns the id. */
  create(orgSlug: string, datasetId: string): Promise<string>
  /** Drops one incarnation's dataset; returns whether something was dropped and its catalogue's table count. */
  drop(ds: DatasetBinding): Promise<{ dropped: boolean; tables: number }>
}

export interface CredentialAdmin {
  /** Crypto-shreds every credential of the org inside the offboarding transaction; returns the count. */
  destroyOrg(trx: Transaction<Database>, orgSlug: string): Promise<number>
}

export interface AppContext {
  config: Config
  db: Db
  clock: Clock
  logger: Logger
  kms: KmsProvider
  metrics: HttpMetrics
  bus: EventBus
  auth: AuthService
  rateLimits: RateLimits
  /** Console sessions; null when CONSOLE_ENABLED is false. */
  sessions: SessionService | null
  egress: EgressClient
  /** Per-org egress allow-lists (root-managed), cached here and evicted through the bus. */
  egressHosts: OrgEgressHosts
  processors: ProcessorRegistry
  datasets: DatasetAdmin
  credentials: CredentialAdmin
  engine: Engine | null
  /** The plan catalogue (configs/plans.yaml or PLANS_FILE). */
  plans: PlanCatalog
  state: { shuttingDown: boolean }
}
