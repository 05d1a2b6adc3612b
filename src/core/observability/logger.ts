// The process logger: pino JSON lines, field redaction for auth headers and credential fields, and
// value scrubbing of every serialized line (decrypted secrets in use, org keys, provider keys, PEM
// private keys, bearer tokens) before it reaches the destination.
import pino, { type DestinationStream, type Logger } from 'pino'
import { pinoRedactPaths, REDACTED, scrubText } from '../security/scrub.js'

/** Wraps a destination so each line is scrubbed; the line is already JSON, so escaped forms are covered. */
export function scrubbingDestination(inner: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      return inner.write(scrubText(line))
    },
  }
}

const common = {
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false })
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

/**
 * One line per request. Its fields are built by the server from values it validated (route template,
 * status, request id, org slug), never from headers or bodies, so it is safe by construction and skips
 * the redaction paths; it still goes through the logger's own (scrubbing) stream, so lines stay in order.
 */
export function createAccessLog(logger: Logger): AccessLog {
  if (!logger.isLevelEnabled('info')) return () => undefined
  const stream = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]
  const bindings = logger.bindings()
  const access = pino({ level: 'info', ...common, ...(Object.keys(bindings).length ? { base: bindings } : {}) }, stream)
  return (line) => access.info(line, 'request')
}
