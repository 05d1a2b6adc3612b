// The process logger: pino JSON lines, field redaction for auth headers and credential fields, and
// value scrubbing of every serialized line (decrypted secrets in use, org keys, provider keys, PEM
// private keys, bearer tokens) before it reaches the destination. The one exception is the access
// line, built from validated values only (its client-sent request id is scrubbed): createAccessLog.
import { hostname } from 'node:os'
import pino, { type DestinationStream, type Logger } from 'pino'
import { pinoRedactPaths, REDACTED, scrubText } from '../security/scrub.js'

/** Access lines waiting in a scrubbing destination (see createAccessLog). */
const ACCESS = Symbol('tenantflow.accessLine')
const BATCH_BYTES = 4096
const BATCH_MS = 250

/** Destinations holding access lines, flushed when the process exits (before pino flushes its stream). */
const pending = new Set<() => void>()
/** Writes every waiting access line now (at exit, and for tests that read what was logged). */
export function flushAccessLines(): void {
  for (const flush of [...pending]) flush()
}
process.on('exit', flushAccessLines)

/**
 * Wraps a destination so each line is scrubbed; the line is already JSON, so escaped forms are covered.
 * Access lines (one per request, safe by construction) are joined into chunks of up to 4 KB, written at
 * least every 250 ms: a write call per line cost more than the line, and pino's stream measures its
 * whole buffer again on every small write. Any other line first writes the waiting access lines, so
 * lines keep their order; waiting lines are written when the process exits (only a SIGKILL loses them).
 */
export function scrubbingDestination(inner: DestinationStream): DestinationStream {
  let lines: string[] = []
  let bytes = 0
  let timer: NodeJS.Timeout | null = null
  const flush = () => {
    if (timer) clearTimeout(timer)
    timer = null
    pending.delete(flush)
    if (lines.length === 0) return
    const chunk = lines.join('')
    lines = []
    bytes = 0
    inner.write(chunk)
  }
  return {
    [ACCESS](line: string) {
      lines.push(line)
      bytes += line.length
      if (bytes >= BATCH_BYTES) return flush()
      if (!timer) {
        timer = setTimeout(flush, BATCH_MS)
        timer.unref()
        pending.add(flush)
      }
    },
    write(line: string) {
      if (lines.length > 0) flush()
      return inner.write(scrubText(line))
    },
  } as DestinationStream
}

const common = {
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
}

/** Where lines go by default: stdout, or a file (the bench), written asynchronously. */
export function logDestination(dest: number | string = 1): DestinationStream {
  return pino.destination({ dest, sync: false })
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
  const stream = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!
  const batched = (stream as unknown as Record<symbol, ((line: string) => void) | undefined>)[ACCESS]
  // A logger built elsewhere (not by createLogger) gets plain, scrubbed writes.
  const write = batched ?? ((line: string) => void stream.write(scrubText(line)))
  const base = JSON.stringify({ pid: process.pid, hostname: hostname(), ...logger.bindings() }).slice(1, -1)
  return (line) => {
    const id = GENERATED_ID.test(line.req_id) ? line.req_id : scrubText(line.req_id)
    const org = line.org === undefined ? '' : `,"org":${JSON.stringify(line.org)}`
    write(
      `{"level":"info","time":"${isoNow()}",${base},"req_id":${JSON.stringify(id)},"method":${JSON.stringify(line.method)},` +
        `"route":${JSON.stringify(line.route)},"status":${line.status},"ms":${Number.isFinite(line.ms) ? line.ms : 0}${org},"msg":"request"}\n`,
    )
  }
}

/** The current time as ISO 8601, formatting the date and time once per second (toISOString per line cost more than the rest of it). */
let isoSecond = -1
let isoPrefix = ''
function isoNow(): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== isoSecond) {
    isoSecond = second
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20)
  }
  const ms = now - second * 1000
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`
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
