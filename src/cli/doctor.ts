// `tenantflow doctor`: checks a deployment without changing it — configuration, database reachability
// and migration level, a KMS encrypt/decrypt round trip, Redis, the template catalogue — and prints
// every problem with a fix hint. Output names hosts, ports, databases and key versions, never a secret.
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Redis } from 'ioredis'
import { loadConfig, type Config } from '../app/config.js'
import { connectReason, describeDatabaseError, describeStartupError, type Problem } from '../app/startup-errors.js'
import { openDatabase } from '../core/db/database.js'
import { pendingMigrations } from '../core/db/migrate.js'
import { createKms, decryptSecret, DecryptionError, encryptSecret, KmsUnavailableError, type KmsProvider } from '../core/security/kms-encryption.js'
import { checkKmsKey, describeKeyCheck, type KeyCheckOutcome } from '../core/security/key-check.js'
import { checkTemplates } from './templates-validate.js'
import { createBigQueryHome, DatasetError, probeBigQueryHome } from '../core/datasets/index.js'
import { createEgressClient, egressOptionsFromConfig } from '../core/http/egress.js'

const CHECK_TIMEOUT_MS = 10_000

export interface CheckResult {
  name: string
  status: 'ok' | 'fail' | 'skip'
  detail: string
  problems: Problem[]
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timeout expired`), { code: 'ETIMEDOUT' })), CHECK_TIMEOUT_MS)
    timer.unref()
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

interface EffectiveEnv {
  env: Record<string, string | undefined>
  /** Development secrets `serve` has not generated yet: stand-ins let the rest be checked. */
  notYetGenerated: string[]
}

/** The environment as `serve` would see it: in development, the secrets it generated earlier. Reads only. */
function effectiveEnv(env: NodeJS.ProcessEnv): EffectiveEnv {
  const out: Record<string, string | undefined> = { ...env }
  const notYetGenerated: string[] = []
  const environment = (env.ENVIRONMENT ?? 'development').trim().toLowerCase()
  if (environment !== 'development') return { env: out, notYetGenerated }
  const dataDir = resolve(env.DATA_DIR || './.tenantflow')
  const generated: [string, string, string][] = [
    ['CA_ROOT_API_KEY', 'root-key', 'doctor-stand-in-root-key-not-used-for-anything'],
    ['KMS_LOCAL_MASTER_KEY', 'kms-master-key', Buffer.alloc(32).toString('base64')],
  ]
  for (const [variable, file, standIn] of generated) {
    if (out[variable]) continue
    const path = join(dataDir, file)
    if (existsSync(path)) out[variable] = readFileSync(path, 'utf8').trim()
    else {
      out[variable] = standIn
      notYetGenerated.push(variable)
    }
  }
  return { env: out, notYetGenerated }
}

function checkConfig({ env, notYetGenerated }: EffectiveEnv): { result: CheckResult; config: Config | null } {
  try {
    const config = loadConfig(env)
    const store = config.databaseUrl ? 'PostgreSQL' : 'embedded SQLite'
    const kms = config.kms.provider === 'local' ? `local KMS key ${config.kms.localMasterKeyVersion}` : 'GCP KMS'
    const later = notYetGenerated.length ? `; ${notYetGenerated.join(' and ')} not set: the first 'tenantflow serve' generates them in DATA_DIR` : ''
    const detail = `${config.environment}, ${store}, ${kms}${config.redisUrl ? ', Redis' : ''}${later}`
    return { result: { name: 'configuration', status: 'ok', detail, problems: [] }, config }
  } catch (err) {
    const problems = describeStartupError(err, null)
    return { result: { name: 'configuration', status: 'fail', detail: `${problems.length} problem(s)`, problems }, config: null }
  }
}

async function checkDatabase(config: Config): Promise<CheckResult> {
  const name = 'database'
  if (!config.databaseUrl) {
    const file = join(config.dataDir, 'tenantflow.db')
    if (!existsSync(file)) {
      return { name, status: 'fail', detail: '', problems: [{ message: `embedded database ${file} does not exist yet`, hint: "run 'tenantflow migrate' (or start 'tenantflow serve' once)" }] }
    }
  }
  const db = openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 })
  try {
    const pending = await withTimeout(pendingMigrations(db), 'database')
    const where = config.databaseUrl ? 'PostgreSQL' : 'embedded SQLite'
    if (pending.length > 0) {
      return { name, status: 'fail', detail: where, problems: [{ message: `database is not fully migrated: pending ${pending.join(', ')}`, hint: "run 'tenantflow migrate' (serve and worker also migrate on start)" }] }
    }
    return { name, status: 'ok', detail: `${where} reachable, all migrations applied`, problems: [] }
  } catch (err) {
    return { name, status: 'fail', detail: '', problems: [describeDatabaseError(err, config)] }
  } finally {
    await db.close().catch(() => undefined)
  }
}

/** The database's KMS key-check value against this key, read-only; null when the database cannot be read (the database check says why). */
async function storedKeyCheck(config: Config, kms: KmsProvider): Promise<KeyCheckOutcome | null> {
  if (!config.databaseUrl && !existsSync(join(config.dataDir, 'tenantflow.db'))) return null
  const db = openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 })
  try {
    return await withTimeout(checkKmsKey(db, kms, Date.now(), { write: false }), 'kms')
  } catch {
    return null
  } finally {
    await db.close().catch(() => undefined)
  }
}

async function checkKms(config: Config): Promise<CheckResult> {
  const name = 'kms'
  const label = config.kms.provider === 'local' ? `local key ${config.kms.localMasterKeyVersion}` : 'GCP KMS key GCP_KMS_KEY_NAME'
  let kms
  try {
    kms = await withTimeout(createKms(config), 'kms')
    const ctx = { org_slug: 'tenantflow-doctor', purpose: 'integration' as const, resource_id: 'canary' }
    const canary = randomBytes(16).toString('base64url')
    const sealed = await withTimeout(encryptSecret(kms, canary, ctx), 'kms')
    const back = await withTimeout(decryptSecret(kms, sealed, ctx), 'kms')
    if (back !== canary) throw new DecryptionError()
    const keyCheck = await storedKeyCheck(config, kms)
    if (keyCheck?.status === 'mismatch' || keyCheck?.status === 'kms_unavailable') {
      const hint = 'give every process on this database the same KMS key (KMS_LOCAL_MASTER_KEY / GCP_KMS_KEY_NAME; retired keys in KMS_LOCAL_PREVIOUS_KEYS)'
      return { name, status: 'fail', detail: '', problems: [{ message: describeKeyCheck(keyCheck), hint }] }
    }
    const matched = keyCheck?.status === 'verified' ? '; unwraps the database key-check value' : ''
    return { name, status: 'ok', detail: `encrypt/decrypt round trip with ${label}${matched}`, problems: [] }
  } catch (err) {
    const problem: Problem =
      err instanceof KmsUnavailableError || connectReason(err)
        ? { message: `KMS unreachable (${label}: ${err instanceof KmsUnavailableError ? err.code.toLowerCase() : connectReason(err)})`, hint: 'check network access to the KMS and KMS_TIMEOUT_MS' }
        : err instanceof DecryptionError
          ? { message: `KMS round trip failed with ${label}: what was encrypted does not decrypt`, hint: 'check the key and its permissions (encrypt and decrypt)' }
          : { message: `KMS check failed with ${label} (${err instanceof Error ? err.name : 'Error'})`, hint: 'check the KMS settings and credentials (docs/configuration.md)' }
    return { name, status: 'fail', detail: '', problems: [problem] }
  } finally {
    await kms?.close?.().catch(() => undefined)
  }
}

function redisTarget(redisUrl: string): string {
  try {
    const u = new URL(redisUrl)
    return `${u.hostname}:${u.port || '6379'}`
  } catch {
    return '(unparsable REDIS_URL)'
  }
}

async function checkRedis(config: Config): Promise<CheckResult> {
  const name = 'redis'
  if (!config.redisUrl) return { name, status: 'skip', detail: 'REDIS_URL not set (rate-limit counters in the database or process memory)', problems: [] }
  const target = redisTarget(config.redisUrl)
  const redis = new Redis(config.redisUrl, { lazyConnect: true, connectTimeout: CHECK_TIMEOUT_MS, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  redis.on('error', () => undefined) // reported through connect()/ping() below
  try {
    await withTimeout(redis.connect(), 'redis')
    await withTimeout(redis.ping(), 'redis')
    return { name, status: 'ok', detail: `Redis at ${target} answers`, problems: [] }
  } catch (err) {
    const reply = err instanceof Error && err.name === 'ReplyError' ? err.message.split(' ')[0] : null
    const problem: Problem =
      reply === 'WRONGPASS' || reply === 'NOAUTH'
        ? { message: `Redis at ${target} rejected the credentials`, hint: 'correct the user and password in REDIS_URL' }
        : { message: `cannot connect to Redis at ${target} (${connectReason(err) ?? (err instanceof Error ? err.name : 'error')})`, hint: 'start Redis or correct REDIS_URL; without REDIS_URL counters stay in the database' }
    return { name, status: 'fail', detail: '', problems: [problem] }
  } finally {
    redis.disconnect()
  }
}

/** Org datasets on BigQuery: the platform credential gets a token and can list the project's datasets. */
async function checkDatasets(config: Config): Promise<CheckResult> {
  const name = 'datasets'
  const bq = config.datasets.bigquery
  if (!bq) return { name, status: 'skip', detail: 'org datasets next to the system tables (DATASET_BACKEND not bigquery)', problems: [] }
  const egress = createEgressClient(egressOptionsFromConfig(config))
  try {
    await withTimeout(probeBigQueryHome(createBigQueryHome(bq, egress, { maxAttempts: 2 })), 'bigquery')
    return { name, status: 'ok', detail: `BigQuery project ${bq.project} (${bq.location}) reachable with the configured service account`, problems: [] }
  } catch (err) {
    // DatasetError messages name only a status and a reason code, never upstream text or the key.
    const reason = err instanceof DatasetError ? err.message : connectReason(err) ?? (err instanceof Error ? err.name : 'error')
    const hint = 'check BIGQUERY_PROJECT, the service account key (BIGQUERY_CREDENTIALS_FILE / _JSON) and its BigQuery roles, and network access to BIGQUERY_API_ENDPOINT'
    return { name, status: 'fail', detail: '', problems: [{ message: `BigQuery project ${bq.project} not reachable: ${reason}`, hint }] }
  } finally {
    await egress.close()
  }
}

function checkTemplateCatalog(dirs: string[]): CheckResult {
  const { count, errors } = checkTemplates(dirs)
  if (errors.length === 0) return { name: 'templates', status: 'ok', detail: `${count} template(s) valid`, problems: [] }
  return {
    name: 'templates',
    status: 'fail',
    detail: `${errors.length} problem(s)`,
    problems: errors.map((e) => ({ message: e.line(), hint: 'fix the template; tenantflow templates validate lists every problem' })),
  }
}

export async function doctor(processEnv: NodeJS.ProcessEnv = process.env): Promise<CheckResult[]> {
  const effective = effectiveEnv(processEnv)
  const { env, notYetGenerated } = effective
  const { result, config } = checkConfig(effective)
  const results: CheckResult[] = [result]
  const skipped = (name: string): CheckResult => ({ name, status: 'skip', detail: 'needs a valid configuration', problems: [] })
  if (config) {
    results.push(await checkDatabase(config))
    results.push(
      notYetGenerated.includes('KMS_LOCAL_MASTER_KEY') && config.kms.provider === 'local'
        ? { name: 'kms', status: 'skip', detail: 'no development master key yet', problems: [] }
        : await checkKms(config),
    )
    results.push(await checkRedis(config))
    results.push(await checkDatasets(config))
  } else {
    results.push(skipped('database'), skipped('kms'), skipped('redis'), skipped('datasets'))
  }
  const dirs = config ? config.pipelineConfigDirs : (env.PIPELINE_CONFIG_DIRS ?? '').split(':').map((d) => d.trim()).filter(Boolean)
  results.push(checkTemplateCatalog(dirs))
  return results
}

export async function runDoctor(): Promise<number> {
  const results = await doctor()
  const label = { ok: 'ok  ', fail: 'FAIL', skip: 'skip' } as const
  for (const r of results) {
    process.stdout.write(`${label[r.status]}  ${r.name}${r.detail ? `: ${r.detail}` : ''}\n`)
    for (const p of r.problems) process.stdout.write(`      ${p.message}\n      fix: ${p.hint}\n`)
  }
  const problems = results.reduce((n, r) => n + r.problems.length, 0)
  process.stdout.write(problems ? `${problems} problem(s) found\n` : 'no problems found\n')
  return problems ? 1 : 0
}
