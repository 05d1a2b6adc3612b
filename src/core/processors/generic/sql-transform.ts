// generic.sql_transform: a SELECT from the template over this org's dataset tables, run parameters
// bound by name (never interpolated), results written to a destination table in the same dataset.
// The statement is checked when the template loads (checkSelect) and again at run time against the
// org's own catalogue, then run read-only (see src/core/datasets/README.md).
import { DatasetError } from '../../datasets/errors.js'
import { checkSelect } from '../../datasets/select-check.js'
import type { TableSpec } from '../../datasets/types.js'
import { asObject, optInt, reqString } from '../shared/config.js'
import { coerce } from '../shared/coerce.js'
import { datasetOp } from '../shared/errors.js'
import { buildSpec, parseColumns } from '../shared/table-config.js'
import { ProcessorConfigError, ProcessorError, type Processor } from '../types.js'

export interface SqlTransformConfig {
  sql: string
  params: string[]
  destination: TableSpec
  max_rows: number
}

export function validateSqlTransformConfig(config: unknown): SqlTransformConfig {
  const o = asObject(config, '', ['sql', 'destination', 'max_rows'])
  const sqlText = reqString(o, 'sql', 'sql', { max: 20_000 })
  let params: string[]
  try {
    params = checkSelect(sqlText, null).params
  } catch (err) {
    if (err instanceof DatasetError) throw new ProcessorConfigError('sql', err.message)
    throw err
  }
  const d = asObject(o.destination, 'destination', ['name', 'columns', 'natural_key', 'date_column'])
  const destination = buildSpec(d, 'destination', parseColumns(d.columns, 'destination.columns'))
  return { sql: sqlText, params, destination, max_rows: optInt(o, 'max_rows', 'max_rows', 1, 100_000, 10_000) }
}

export function createSqlTransformProcessor(): Processor<SqlTransformConfig> {
  return {
    name: 'generic.sql_transform',
    description: "A checked read-only SELECT over the org's dataset tables, bound run parameters → a destination table",
    validateConfig: validateSqlTransformConfig,
    async run(ctx, config) {
      const values: Record<string, unknown> = {}
      for (const name of config.params) {
        if (!Object.prototype.hasOwnProperty.call(ctx.parameters, name)) {
          throw new ProcessorError('INVALID_DATA', `SQL parameter ${name} is not a run parameter`)
        }
        values[name] = ctx.parameters[name]
      }
      return datasetOp(async () => {
        const result = await ctx.dataset.select(config.sql, values, config.max_rows)
        const dest = config.destination
        const names = new Set(dest.columns.map((c) => c.name))
        const rows = result.map((r, i) => {
          for (const k of Object.keys(r)) {
            if (!names.has(k)) {
              throw new ProcessorError('INVALID_DATA', /^[a-z][a-z0-9_]{0,62}$/.test(k) ? `Result column ${k} is not in the destination` : 'A result column is not in the destination')
            }
          }
          const row: Record<string, unknown> = {}
          for (const c of dest.columns) {
            const v = coerce(c.name, c.type, r[c.name])
            if (v === null && !c.nullable) throw new ProcessorError('INVALID_DATA', `Result row ${i}: column ${c.name} is null`)
            row[c.name] = v
          }
          return row
        })
        await ctx.dataset.ensureTable(dest)
        const written = await ctx.dataset.upsertRows(dest.name, rows)
        return { rows_processed: written, output: { table: dest.name, rows: written } }
      })
    },
  }
}
