// Per-org grouping of concurrent admissions in one process (issue 12 item 3). The first admission for
// an org starts at once; admissions for the same org that arrive while it is being decided wait and
// are then decided together: one transaction (and one round trip on PostgreSQL) for the group instead
// of one each, so a hot org is not capped by one commit per run. Order is kept: the group is decided
// in arrival order, each decision seeing the ones before it. An admission with a hook (the trigger's
// Idempotency-Key record) runs alone, since its hook may roll its own transaction back.
// Caveat: a storage error while deciding a group fails every admission of that group.
// On SQLite a decision never waits on I/O (better-sqlite3 is synchronous), so without a pause no
// request could ever arrive while one is decided; `gather` waits one event-loop turn (setImmediate)
// before each group, so the requests read from the same poll of the sockets are decided together.
import type { AdmitHook, AdmitInput, AdmitResult } from './admission.js'

interface Waiting {
  input: AdmitInput
  hook?: AdmitHook
  resolve: (r: AdmitResult) => void
  reject: (err: unknown) => void
}

export const MAX_ADMISSION_GROUP = 64

export class AdmissionQueue {
  private readonly orgs = new Map<string, Waiting[]>()

  constructor(
    private readonly alone: (input: AdmitInput, hook?: AdmitHook) => Promise<AdmitResult>,
    private readonly group: (inputs: AdmitInput[]) => Promise<AdmitResult[]>,
    private readonly maxGroup = MAX_ADMISSION_GROUP,
    private readonly gather = false,
  ) {}

  admit(input: AdmitInput, hook?: AdmitHook): Promise<AdmitResult> {
    return new Promise<AdmitResult>((resolve, reject) => {
      const waiting = this.orgs.get(input.org_slug)
      const entry: Waiting = { input, hook, resolve, reject }
      if (waiting) {
        waiting.push(entry)
        return
      }
      const line = [entry]
      this.orgs.set(input.org_slug, line)
      void this.drain(input.org_slug, line)
    })
  }

  private async drain(org: string, line: Waiting[]): Promise<void> {
    try {
      while (line.length > 0) {
        if (this.gather) await new Promise<void>((r) => setImmediate(r))
        let n = 1
        if (!line[0]!.hook) while (n < line.length && n < this.maxGroup && !line[n]!.hook) n++
        const take = line.splice(0, n)
        try {
          if (take.length === 1) {
            take[0]!.resolve(await this.alone(take[0]!.input, take[0]!.hook))
          } else {
            const results = await this.group(take.map((w) => w.input))
            take.forEach((w, i) => w.resolve(results[i]!))
          }
        } catch (err) {
          for (const w of take) w.reject(err)
        }
      }
    } finally {
      this.orgs.delete(org)
    }
  }
}
