// The BigQuery home of a process's org datasets. The runtime attaches it to the system database
// handle once (useBigQueryHome); openDatasetWriter/createDataset/dropDataset then reach BigQuery for
// every org, while the catalogue and every system table stay on that database.
import type { BigQueryConfig } from '../../config.js'
import type { Db } from '../../db/database.js'
import type { EgressClient } from '../../http/types.js'
import { parseServiceAccount } from '../../integrations/providers/gcp.js'
import { serviceAccountTokenSource, type TokenSource } from './auth.js'
import { BigQueryClient } from './client.js'

export interface BigQueryHome {
  client: BigQueryClient
  location: string
  maxBytesBilled: number
  jobTimeoutMs: number
}

const homes = new WeakMap<Db, BigQueryHome>()

export function useBigQueryHome(db: Db, home: BigQueryHome): void {
  homes.set(db, home)
}

export function bigQueryHomeOf(db: Db): BigQueryHome | undefined {
  return homes.get(db)
}

export function createBigQueryHome(
  config: BigQueryConfig,
  http: EgressClient,
  opts: { tokens?: TokenSource; maxAttempts?: number; baseDelayMs?: number } = {},
): BigQueryHome {
  const tokens = opts.tokens ?? serviceAccountTokenSource({ key: parseServiceAccount(config.credentialsJson), http, tokenUrl: config.tokenUrl })
  const client = new BigQueryClient({ http, tokens, endpoint: config.apiEndpoint, project: config.project, maxAttempts: opts.maxAttempts, baseDelayMs: opts.baseDelayMs })
  return { client, location: config.location, maxBytesBilled: config.maxBytesBilled, jobTimeoutMs: config.jobTimeoutMs }
}

/** One cheap authorized call: the credential can list the project's datasets (doctor, startup). */
export async function probeBigQueryHome(home: BigQueryHome, signal?: AbortSignal): Promise<void> {
  await home.client.call({ path: '/datasets', query: { maxResults: '1' }, signal, deadline: Date.now() + 30_000, notFound: 'DATASET_UNAVAILABLE' })
}
