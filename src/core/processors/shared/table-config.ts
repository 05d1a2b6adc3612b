// The table part of a step config ({name, columns?, natural_key, date_column?}) → a TableSpec.
import { DatasetError } from '../../datasets/errors.js'
import { validateTableSpec } from '../../datasets/spec.js'
import type { ColumnSpec, ColumnType, TableSpec } from '../../datasets/types.js'
import { ProcessorConfigError } from '../types.js'
import { asObject, optBool, reqString, type Obj } from './config.js'

export const COLUMN_TYPES: readonly ColumnType[] = ['text', 'integer', 'real', 'date', 'timestamp', 'boolean', 'json']
const IDENT = /^[a-z][a-z0-9_]{0,62}$/

export function parseColumnType(v: unknown, field: string): ColumnType {
  if (typeof v !== 'string' || !COLUMN_TYPES.includes(v as ColumnType)) {
    throw new ProcessorConfigError(field, `must be one of ${COLUMN_TYPES.join(', ')}`)
  }
  return v as ColumnType
}

export function parseColumns(v: unknown, field: string): ColumnSpec[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 100) throw new ProcessorConfigError(field, 'must be a list of 1 to 100 columns')
  return v.map((c, i) => {
    const o = asObject(c, `${field}[${i}]`, ['name', 'type', 'nullable'])
    return {
      name: reqString(o, 'name', `${field}[${i}].name`, { max: 63, pattern: IDENT }),
      type: parseColumnType(o.type, `${field}[${i}].type`),
      nullable: optBool(o, 'nullable', `${field}[${i}].nullable`, false),
    }
  })
}

/** Builds and validates the TableSpec; dataset-level refusals (reserved names, bad keys) name the field. */
export function buildSpec(o: Obj, field: string, columns: ColumnSpec[]): TableSpec {
  const name = reqString(o, 'name', `${field}.name`, { max: 63, pattern: IDENT })
  const key = o.natural_key
  if (!Array.isArray(key) || key.length === 0 || key.length > 8 || !key.every((k) => typeof k === 'string')) {
    throw new ProcessorConfigError(`${field}.natural_key`, 'must be a list of 1 to 8 column names')
  }
  const date = o.date_column
  if (date !== undefined && typeof date !== 'string') throw new ProcessorConfigError(`${field}.date_column`, 'must be a column name')
  try {
    return validateTableSpec({ name, columns, naturalKey: key as string[], ...(date ? { dateColumn: date } : {}) })
  } catch (err) {
    if (err instanceof DatasetError) throw new ProcessorConfigError(field, err.message)
    throw err
  }
}
