// Turns a failed startup into sentences an operator can act on: what is wrong and how to fix it.
// Driver messages can carry connection strings, so only codes are read from driver errors; names
// shown (host, port, database, user, file) come from the configuration, never a password or full URL.
import { ConfigError, type Config } from './config.js'
import { TemplateError, TemplateErrors } from '../core/pipelines/templates.js'

export interface Problem {
  message: string
  hint: string
}

/** An error whose message is written for operators and safe to print as is. */
export class StartupError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message)
    this.name = 'StartupError'
  }
}

/** Marks which startup step failed, so a driver error is described for the right service. */
export class StartupStepError extends Error {
  constructor(readonly step: 'database' | 'listen', override readonly cause: unknown) {
    super(`startup step ${step} failed`)
    this.name = 'StartupStepError'
  }
}

const CONNECT_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
}

function errorCode(err: unknown): string | null {
  const e = err as { code?: unknown; errors?: { code?: unknown }[] } | null
  if (typeof e?.code === 'string') return e.code.slice(0, 40)
  const inner = Array.isArray(e?.errors) ? e.errors.find((x) => typeof x?.code === 'string') : undefined
  return typeof inner?.code === 'string' ? inner.code.slice(0, 40) : null
}

function kindOf(err: unknown): string {
  const code = errorCode(err)
  return `${err instanceof Error ? err.name : 'Error'}${code ? ` ${code}` : ''}`
}

/** Host, port, database and user of a PostgreSQL URL; never the password. */
export function postgresTarget(databaseUrl: string): { hostPort: string; database: string; user: string } {
  try {
    const u = new URL(databaseUrl)
    const socketHost = u.searchParams.get('host')
    const host = u.hostname || socketHost || 'localhost'
    return {
      hostPort: `${host}:${u.port || '5432'}`,
      database: decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres',
      user: decodeURIComponent(u.username) || '(default user)',
    }
  } catch {
    return { hostPort: '(unparsable DATABASE_URL)', database: '?', user: '?' }
  }
}

/** A connection-level failure (nothing answered) as a short reason, or null. */
export function connectReason(err: unknown): string | null {
  const code = errorCode(err)
  if (code && CONNECT_REASONS[code]) return CONNECT_REASONS[code]!
  // pg reports its own connect deadline without a code.
  if (err instanceof Error && /connection timeout|timeout expired/i.test(err.message)) return 'timed out'
  return null
}

export function describeDatabaseError(err: unknown, config: Pick<Config, 'databaseUrl' | 'dataDir'>): Problem {
  const code = errorCode(err)
  if (!config.databaseUrl) {
    const file = `${config.dataDir}/tenantflow.db`
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      return { message: `embedded database ${file} is not a valid SQLite database`, hint: 'restore it from a backup or point DATA_DIR elsewhere' }
    }
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY') {
      return { message: `cannot open the embedded database ${file} (${code})`, hint: 'make DATA_DIR writable by this user, or set DATA_DIR' }
    }
    return { message: `embedded database ${file} failed (${kindOf(err)})`, hint: 'check DATA_DIR and the server log' }
  }
  const t = postgresTarget(config.databaseUrl)
  const reason = connectReason(err)
  if (reason) {
    return { message: `cannot connect to PostgreSQL at ${t.hostPort} (${reason})`, hint: 'start PostgreSQL or correct the host and port in DATABASE_URL' }
  }
  switch (code) {
    case '3D000':
      return { message: `database ${t.database} does not exist on PostgreSQL at ${t.hostPort}`, hint: `create it (createdb ${t.database}) or correct the database name in DATABASE_URL` }
    case '28P01':
      return { message: `PostgreSQL at ${t.hostPort} rejected the password for user ${t.user}`, hint: 'correct the password in DATABASE_URL' }
    case '28000':
      return { message: `PostgreSQL at ${t.hostPort} refused user ${t.user} (no such role or no pg_hba.conf entry)`, hint: 'create the role or allow it in pg_hba.conf' }
    case '42501':
      return { message: `user ${t.user} lacks privileges on database ${t.database} at ${t.hostPort}`, hint: `GRANT CREATE, CONNECT ON DATABASE ${t.database} (and on its schema) to ${t.user}` }
    case '53300':
      return { message: `PostgreSQL at ${t.hostPort} has no free connection slots`, hint: 'raise max_connections or lower the number of tenantflow processes' }
    case '57P03':
      return { message: `PostgreSQL at ${t.hostPort} is starting up or shutting down`, hint: 'wait and start again' }
  }
  return { message: `PostgreSQL at ${t.hostPort}, database ${t.database}: startup query failed (${kindOf(err)})`, hint: 'check the PostgreSQL server log' }
}

function describeListenError(err: unknown, config: Pick<Config, 'host' | 'port'>): Problem {
  const code = errorCode(err)
  const port = typeof (err as { port?: unknown })?.port === 'number' ? (err as { port: number }).port : config.port
  if (code === 'EADDRINUSE') return { message: `port ${port} already in use on ${config.host}`, hint: 'stop the other process or choose another port (PORT or serve --port)' }
  if (code === 'EACCES') return { message: `no permission to listen on port ${port}`, hint: 'use a port above 1023 or grant the capability to bind it' }
  if (code === 'EADDRNOTAVAIL') return { message: `address ${config.host} is not available on this machine`, hint: 'correct HOST (or serve --host)' }
  return { message: `cannot listen on ${config.host}:${port} (${kindOf(err)})`, hint: 'check HOST and PORT' }
}

/** Every problem a failed startup carries, in words. `config` is null when the configuration did not load. */
export function describeStartupError(err: unknown, config: Config | null): Problem[] {
  if (err instanceof ConfigError) {
    return err.problems.map((p) => ({ message: `invalid configuration: ${p.variable} ${p.reason}`, hint: `correct ${p.variable} (see docs/configuration.md)` }))
  }
  if (err instanceof TemplateErrors) return err.problems.map(templateProblem)
  if (err instanceof TemplateError) return [templateProblem(err)]
  if (err instanceof StartupError) return [{ message: err.message, hint: err.hint }]
  if (err instanceof StartupStepError && config) {
    return [err.step === 'database' ? describeDatabaseError(err.cause, config) : describeListenError(err.cause, config)]
  }
  return [{ message: `startup failed (${kindOf(err instanceof StartupStepError ? err.cause : err)})`, hint: 'see the server log (LOG_LEVEL=debug for more)' }]
}

function templateProblem(err: TemplateError): Problem {
  return { message: `pipeline template ${err.line()}`, hint: 'fix the template (tenantflow templates validate lists every problem)' }
}
