// Child process for the cross-process admission test: fires many admissions at one org at once.
// Env: TF_DATABASE_URL, TF_ORG, TF_COUNT, TF_PREFIX, TF_START_AT (epoch ms to start at, a crude barrier).
import { openDatabase } from '../../src/core/db/database.js'
import { admitRun } from '../../src/app/dependencies/quota.js'
import { admitInput } from './fixtures.js'

const db = openDatabase({ databaseUrl: process.env.TF_DATABASE_URL!, dataDir: '/tmp', poolSize: 20 })
const org = process.env.TF_ORG!
const count = Number(process.env.TF_COUNT)
const prefix = process.env.TF_PREFIX!
const startAt = Number(process.env.TF_START_AT)
await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())))
const results = await Promise.all(
  Array.from({ length: count }, (_, i) => admitRun(db, admitInput(org, 'test/basic/wait', { gate: `${prefix}${i}`, n: i }, Date.now()))),
)
const summary = { admitted: 0, refused: 0, deduplicated: 0, codes: [] as string[] }
for (const r of results) {
  summary[r.kind]++
  if (r.kind === 'refused' && !summary.codes.includes(r.code)) summary.codes.push(r.code)
}
process.stdout.write(JSON.stringify(summary) + '\n')
await db.close()
