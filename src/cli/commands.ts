// The command table of `tenantflow`: each command's usage, its flags and what it runs. Runners are
// imported only when the command runs, so `--help` loads (and touches) nothing else.
import { intFlag, type Options, type Parsed } from './args.js'

export interface Command {
  /** As typed: 'serve', 'kms rewrap'. */
  name: string
  summary: string
  usage: string
  options: Options
  positionals?: boolean
  /** Resolves to the exit code. */
  run(args: Parsed): Promise<number>
}

const HELP_LINE = '  -h, --help            show this help'
const help = { help: { type: 'boolean', short: 'h' } } as const

export const COMMANDS: Command[] = [
  {
    name: 'serve',
    summary: 'start the API server, pipeline workers and the scheduler',
    usage: `usage: tenantflow serve [--port N] [--host ADDRESS]

Start the HTTP API with pipeline workers and the scheduler in one process. Migrates the database
first. Stops gracefully on SIGTERM/SIGINT (SHUTDOWN_GRACE_MS).

options:
  --port N              listen on port N (overrides PORT; 0 = any free port)
  --host ADDRESS        listen on ADDRESS (overrides HOST, e.g. 0.0.0.0 in a container)
${HELP_LINE}

Configuration comes from the environment: docs/configuration.md.`,
    options: { ...help, port: { type: 'string' }, host: { type: 'string' } },
    async run({ values }) {
      const port = intFlag(values, 'port', 0, 65535)
      const host = typeof values.host === 'string' && values.host ? values.host : undefined
      const { main } = await import('../app/main.js')
      await main({ port, host })
      return -1 // keeps running; exits on a signal
    },
  },
  {
    name: 'worker',
    summary: 'run pipeline workers only (no HTTP API); schedules only with --scheduler',
    usage: `usage: tenantflow worker [--scheduler] [--concurrency N]

Run pipeline workers without the HTTP API, next to 'tenantflow serve' processes on the same
PostgreSQL database (DATABASE_URL). Migrates the database first. Stops gracefully on SIGTERM/SIGINT.

options:
  --scheduler           also compete for scheduler leadership (off by default for workers;
                        SCHEDULER_ENABLED=false still turns it off)
  --concurrency N       runs executed at once (overrides WORKER_CONCURRENCY)
${HELP_LINE}`,
    options: { ...help, scheduler: { type: 'boolean' }, concurrency: { type: 'string' } },
    async run({ values }) {
      const concurrency = intFlag(values, 'concurrency', 1, 256)
      const { runWorker } = await import('./worker.js')
      await runWorker({ scheduler: values.scheduler === true, concurrency })
      return -1
    },
  },
  {
    name: 'migrate',
    summary: 'apply database migrations and exit',
    usage: `usage: tenantflow migrate

Apply every pending database migration (embedded SQLite under DATA_DIR, or DATABASE_URL) and exit.
Safe to run from several processes at once.

options:
${HELP_LINE}`,
    options: { ...help },
    async run() {
      const { runMigrate } = await import('./maintenance.js')
      return runMigrate()
    },
  },
  {
    name: 'kms rewrap',
    summary: 're-wrap every stored data key under the current KMS key version',
    usage: `usage: tenantflow kms rewrap

Re-wrap the data key of every stored credential and API key copy under the current KMS key
version (after rotating KMS_LOCAL_MASTER_KEY with KMS_LOCAL_PREVIOUS_KEYS, or a Cloud KMS key
version). Ciphertexts are not touched and no plaintext is produced. Prints counts as JSON.

options:
${HELP_LINE}`,
    options: { ...help },
    async run() {
      const { runKmsRewrap } = await import('./maintenance.js')
      return runKmsRewrap()
    },
  },
  {
    name: 'templates validate',
    summary: 'check the built-in and the given pipeline templates',
    usage: `usage: tenantflow templates validate [DIR...]

Load the built-in pipeline templates and those in each DIR (default: PIPELINE_CONFIG_DIRS) and
print every problem as 'file: field: reason'. Each DIR holds <provider>/<domain>/<pipeline>.yml.
Exits 1 if there is any problem. Reads files only.

options:
${HELP_LINE}`,
    options: { ...help },
    positionals: true,
    async run({ positionals }) {
      const { runTemplatesValidate } = await import('./templates-validate.js')
      return runTemplatesValidate(positionals)
    },
  },
  {
    name: 'doctor',
    summary: 'check configuration, database, KMS, Redis and templates; print every problem',
    usage: `usage: tenantflow doctor

Check, without changing anything: the configuration, that the database is reachable and fully
migrated, a KMS encrypt/decrypt round trip with the configured key, Redis (when REDIS_URL is set)
and the pipeline template catalogue. Prints every problem with a fix hint and no secret.
Exits 1 if there is any problem. Safe to run next to a production deployment.

options:
${HELP_LINE}`,
    options: { ...help },
    async run() {
      const { runDoctor } = await import('./doctor.js')
      return runDoctor()
    },
  },
]

/** Commands with subcommands ('kms', 'templates') and their usage. */
export function groups(): Map<string, Command[]> {
  const out = new Map<string, Command[]>()
  for (const c of COMMANDS) {
    const [group, sub] = c.name.split(' ')
    if (sub) out.set(group!, [...(out.get(group!) ?? []), c])
  }
  return out
}

export function groupUsage(group: string, subs: Command[]): string {
  const width = Math.max(...subs.map((c) => c.name.length))
  return `usage: tenantflow ${group} <command>

commands:
${subs.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run 'tenantflow ${group} <command> --help' for a command's options.`
}

export function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return `usage: tenantflow <command> [options]

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

options:
  -h, --help     show this help (also after any command)
  -V, --version  print the version

Run 'tenantflow <command> --help' for a command's options. Configuration: docs/configuration.md.`
}
