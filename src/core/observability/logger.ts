// The process logger: pino JSON lines, field redaction for auth headers and credential fields, and
// value scrubbing of every serialized line (decrypted secrets in use, org keys, provider keys, PEM
// private keys, bearer tokens) before it reaches the destination.
import { hostname } from 'node:os'
import pino, { type DestinationStream, type Logger } from 'pino'
import { pinoRedactPaths, REDACTED, scrubText } from '../security/scrub.js'

/** The unscrubbed stream under a scrubbing destination (the access line writes there: see createAccessLog). */
const INNER = Symbol('tenantflow.innerDestination')

/** Wraps a destination so each line is scrubbed; the line is already JSON, so escaped forms are covered. */
export function scrubbingDestination(inner: DestinationStream): DestinationStream {
  return {
    [INNER]: inner,
    write(line: string) {
      return inner.write(scrubText(line))
    },
  } as DestinationStream
}

const common = {
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
}

/**
 * Where lines go by default (stdout, or a file): written in batches of up to 4 KB and at least every
 * 250 ms, instead of one write call per line, which at info level cost a system call per request.
 * pino flushes what is buffered when the process exits; only a SIGKILL can lose the last 250 ms.
 */
export function logDestination(dest: number | string = 1): DestinationStream {
  return pino.destination({ dest, sync: false, minLength: 4096, periodicFlush: 250 })
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const dest = destination ?? logDestination()
  return pino({ level, redact: { paths: pinoRedactPaths, censor: REDACTED }, ...common }, scrubbingDestination(dest))
}

export interface AccessLine {
  req_id: string
  method: string
  /** The matched route's template (never the raw URL, which may carry anything a client sent). */
  route: string
  status: number
  ms: number
  org?: string
}

export type AccessLog = (line: AccessLine) => void

/** What genReqId makes itself; any other request id came from the client. */
const GENERATED_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * One line per request, in the same shape as the logger's lines. Its fields are values the server
 * made or validated (route template, status, org slug, a request id matching a strict pattern),
 * never headers or bodies, so the line is written as text to the logger's stream without redaction
 * paths; only a client-sent request id is scrubbed (a client could send a key as its id). The same
 * stream as every other line, so lines stay in order.
 */
export function createAccessLog(logger: Logger): AccessLog {
  if (!logger.isLevelEnabled('info')) return () => undefined
  const outer = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!
  const stream = (outer as unknown as Record<symbol, DestinationStream | undefined>)[INNER] ?? outer
  const scrub = stream === outer ? (s: string) => s : scrubText
  const base = JSON.stringify({ pid: process.pid, hostname: hostname(), ...logger.bindings() }).slice(1, -1)
  return (line) => {
    const id = GENERATED_ID.test(line.req_id) ? line.req_id : scrub(line.req_id)
    const org = line.org === undefined ? '' : `,"org":${JSON.stringify(line.org)}`
    stream.write(
      `{"level":"info","time":"${new Date().toISOString()}",${base},"req_id":${JSON.stringify(id)},"method":${JSON.stringify(line.method)},` +
        `"route":${JSON.stringify(line.route)},"status":${line.status},"ms":${Number.isFinite(line.ms) ? line.ms : 0}${org},"msg":"request"}\n`,
    )
  }
}

/**
 * Fastify's per-request logger, made only when a request logs something: most requests write just the
 * access line, and a pino child per request (with its redaction bindings) cost more than the line.
 */
export class LazyRequestLogger {
  private made: Logger | null = null
  constructor(
    private readonly parent: Logger,
    private readonly bindings: Record<string, unknown>,
  ) {}
  private get real(): Logger {
    return (this.made ??= this.parent.child(this.bindings))
  }
  get level(): string {
    return this.parent.level
  }
  set level(level: string) {
    this.real.level = level
  }
  child(bindings: Record<string, unknown>): Logger {
    return this.real.child(bindings)
  }
  isLevelEnabled(level: string): boolean {
    return this.parent.isLevelEnabled(level)
  }
  fatal(...args: unknown[]): void {
    if (this.parent.isLevelEnabled('fatal')) (this.real.fatal as (...a: unknown[]) => void)(...args)
  }
  error(...args: unknown[]): void {
    if (this.parent.isLevelEnabled('error')) (this.real.error as (...a: unknown[]) => void)(...args)
  }
  warn(...args: unknown[]): void {
    if (this.parent.isLevelEnabled('warn')) (this.real.warn as (...a: unknown[]) => void)(...args)
  }
  info(...args: unknown[]): void {
    if (this.parent.isLevelEnabled('info')) (this.real.info as (...a: unknown[]) => void)(...args)
  }
  debug(...args: unknown[]): void {
    if (this.parent.isLevelEnabled('debug')) (this.real.debug as (...a: unknown[]) => void)(...args)
  }
  trace(...args: unknown[]): void {
    if (this.parent.isLevelEnabled('trace')) (this.real.trace as (...a: unknown[]) => void)(...args)
  }
  silent(): void {}
}
