// Argument parsing for every command, on node:util parseArgs (strict: an unknown flag or a stray
// argument is a usage error). --help/-h is answered before anything else runs, so asking for help
// never has a side effect.
import { parseArgs, type ParseArgsConfig } from 'node:util'

export type Options = NonNullable<ParseArgsConfig['options']>

/** A mistake in how the command was called: printed with the command's usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export interface Parsed {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

/** True when --help or -h appears before a `--` terminator. */
export function wantsHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false
    if (a === '--help' || a === '-h') return true
  }
  return false
}

export function parse(argv: string[], options: Options, allowPositionals = false): Parsed {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals, strict: true })
    return { values: r.values as Parsed['values'], positionals: r.positionals }
  } catch (err) {
    // parseArgs messages name the offending flag or argument; they never contain configuration.
    const message = err instanceof Error ? err.message.split('\n')[0]! : 'invalid arguments'
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/, ''))
  }
}

/** An integer flag within bounds, or undefined when absent. */
export function intFlag(values: Parsed['values'], name: string, min: number, max: number): number | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name} must be an integer between ${min} and ${max}`)
  }
  return Number(raw)
}
