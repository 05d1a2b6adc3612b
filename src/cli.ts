// The `tenantflow` command line: finds the command, answers --help/-h and --version before anything
// runs, rejects unknown commands and flags with exit 2, then runs the command. The command table is
// in cli/commands.ts.
import { readFileSync } from 'node:fs'
import { parse, UsageError, wantsHelp } from './cli/args.js'
import { COMMANDS, groups, groupUsage, topUsage, type Command } from './cli/commands.js'

function version(): string {
  // src/cli.ts and dist/cli.js both sit one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

type Resolved = { kind: 'print'; text: string; code: number } | { kind: 'run'; command: Command; rest: string[] }

function resolve(argv: string[]): Resolved {
  const [first, second] = argv
  if (first === undefined) return { kind: 'print', text: topUsage(), code: 2 }
  if (first === '--version' || first === '-V' || first === 'version') {
    if (argv.length > 1) throw new UsageError(`${first} takes no arguments`)
    return { kind: 'print', text: `tenantflow ${version()}`, code: 0 }
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const topic = argv.slice(1).filter((a) => !a.startsWith('-'))
    if (topic.length === 0) return { kind: 'print', text: topUsage(), code: 0 }
    const r = resolve(topic)
    if (r.kind === 'run') return { kind: 'print', text: r.command.usage, code: 0 }
    return { ...r, code: r.code === 2 && topic.length === 1 && groups().has(topic[0]!) ? 0 : r.code }
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option '${first}'`)
  const subs = groups().get(first)
  if (subs) {
    if (second === undefined || second.startsWith('-')) {
      if (wantsHelp(argv.slice(1))) return { kind: 'print', text: groupUsage(first, subs), code: 0 }
      if (second !== undefined) throw new UsageError(`unknown option '${second}' for 'tenantflow ${first}'`)
      return { kind: 'print', text: `tenantflow ${first}: missing command\n\n${groupUsage(first, subs)}`, code: 2 }
    }
    const command = subs.find((c) => c.name === `${first} ${second}`)
    if (!command) throw new UsageError(`unknown command '${first} ${second}' (see 'tenantflow ${first} --help')`)
    return { kind: 'run', command, rest: argv.slice(2) }
  }
  const command = COMMANDS.find((c) => c.name === first)
  if (!command) throw new UsageError(`unknown command '${first}' (see 'tenantflow --help')`)
  return { kind: 'run', command, rest: argv.slice(1) }
}

async function run(argv: string[]): Promise<void> {
  let resolved: Resolved | null = null
  let parsed
  try {
    resolved = resolve(argv)
    if (resolved.kind === 'print') {
      ;(resolved.code === 0 ? process.stdout : process.stderr).write(`${resolved.text}\n`)
      process.exit(resolved.code)
    }
    if (wantsHelp(resolved.rest)) {
      process.stdout.write(`${resolved.command.usage}\n`)
      process.exit(0)
    }
    parsed = parse(resolved.rest, resolved.command.options, resolved.command.positionals === true)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    const name = resolved?.kind === 'run' ? `tenantflow ${resolved.command.name}` : 'tenantflow'
    process.stderr.write(`${name}: ${err.message}\nRun '${name} --help' for usage.\n`)
    process.exit(2)
  }
  let code: number
  try {
    code = await resolved.command.run(parsed)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tenantflow ${resolved.command.name}: ${err.message}\nRun 'tenantflow ${resolved.command.name} --help' for usage.\n`)
      process.exit(2)
    }
    const { exitOnStartupError } = await import('./app/main.js')
    return exitOnStartupError(err)
  }
  if (code >= 0) process.exit(code) // long-running commands return -1 and exit on a signal
}

void run(process.argv.slice(2))
