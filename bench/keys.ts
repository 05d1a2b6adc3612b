// What every bench case's server shares: one root key, one KMS key (the cases share the bench's private
// PostgreSQL database, whose key-check value only one key can unwrap), the log level and no global ceiling.
export const BENCH_ROOT_KEY = 'bench-root-key-0123456789abcdefghijklmnopqrstuvwxyz'
export const BENCH_KMS_KEY = Buffer.alloc(32, 3).toString('base64')

/** The environment of one case's server (embedded under `dataDir`, or on `databaseUrl`), plus its own settings. */
export function benchEnv(dataDir: string, databaseUrl: string | null, own: Record<string, string> = {}): Record<string, string> {
  return {
    DATA_DIR: dataDir,
    CA_ROOT_API_KEY: BENCH_ROOT_KEY,
    KMS_LOCAL_MASTER_KEY: BENCH_KMS_KEY,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    RATE_LIMIT_GLOBAL_PER_MINUTE: '100000000',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...own,
  }
}
