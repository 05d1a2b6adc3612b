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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false })
  return pino(
    {
      level,
      redact: { paths: pinoRedactPaths, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    scrubbingDestination(dest),
  )
}
