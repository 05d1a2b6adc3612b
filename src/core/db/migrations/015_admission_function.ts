// The PostgreSQL admission function (issue 12 item 3): one round trip decides a group of admissions
// (see core/orgs/admission-sql.ts). SQLite runs the same steps as prepared statements; nothing to create.
import { sql, type Kysely } from 'kysely'
import type { DialectName } from '../database.js'
import { PG_ADMIT_FUNCTION } from '../../orgs/admission-sql.js'

export function admissionFunctionMigration(dialect: DialectName) {
  return {
    async up(db: Kysely<any>): Promise<void> {
      if (dialect === 'postgres') await sql.raw(PG_ADMIT_FUNCTION).execute(db)
    },
  }
}
