// BigQuery's side of the dataset contract's types: column types, typed named query parameters, the
// NDJSON encoding of load rows and the decoding of getQueryResults cells back into the spec's JS shapes.
import { DatasetError } from '../errors.js'
import { encodeValue } from '../spec.js'
import type { ColumnSpec, ColumnType } from '../types.js'

export type BqType = 'STRING' | 'INT64' | 'FLOAT64' | 'BOOL' | 'DATE' | 'TIMESTAMP' | 'NUMERIC' | 'BIGNUMERIC' | 'JSON'

/** json is kept as a STRING holding the JSON text (as on SQLite): BigQuery's JSON functions accept it. */
export function bqType(type: ColumnType): BqType {
  return ({ text: 'STRING', integer: 'INT64', real: 'FLOAT64', date: 'DATE', timestamp: 'TIMESTAMP', boolean: 'BOOL', json: 'STRING' } as const)[type]
}

export interface BqField {
  name: string
  type: string
  mode?: 'NULLABLE' | 'REQUIRED' | 'REPEATED'
}

export function schemaFields(columns: ColumnSpec[]): BqField[] {
  return columns.map((c) => ({ name: c.name, type: bqType(c.type), mode: c.nullable ? 'NULLABLE' : 'REQUIRED' }))
}

export interface QueryParameter {
  name: string
  parameterType: { type: BqType }
  parameterValue: { value?: string }
}

/** A typed named parameter; every value travels as its string form (the REST encoding), null as no value. */
export function param(name: string, type: BqType, value: string | number | boolean | null): QueryParameter {
  return { name, parameterType: { type }, parameterValue: value === null ? {} : { value: String(value) } }
}

/** A column value (already validated by encodeValue in the sqlite codec) as a typed parameter. */
export function columnParam(name: string, col: ColumnSpec, v: unknown): QueryParameter {
  const encoded = encodeValue({ ...col, nullable: col.nullable ?? false }, v, 'postgres')
  return param(name, bqType(col.type), encoded)
}

/** One load row's NDJSON object: values validated against the spec, in BigQuery's JSON load encoding. */
export function ndjsonValue(col: ColumnSpec, v: unknown): unknown {
  const encoded = encodeValue(col, v, 'postgres')
  if (encoded === null) return null
  if (col.type === 'boolean') return encoded === 'true'
  return encoded
}

/** A parameter from a template's run value, typed by the column it is compared with when known. */
export function templateParam(name: string, v: unknown, column: ColumnSpec | undefined): QueryParameter {
  if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
    throw new DatasetError('INVALID_VALUE', 'sql parameter must be a scalar')
  }
  if (column && column.type !== 'json') {
    try {
      return columnParam(name, { ...column, nullable: true }, v)
    } catch {
      // A value that does not fit the column (e.g. a number compared with a text column) keeps its own type.
    }
  }
  if (v === null) return param(name, 'STRING', null)
  if (typeof v === 'boolean') return param(name, 'BOOL', v)
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new DatasetError('INVALID_VALUE', 'sql parameter must be finite')
    return param(name, Number.isSafeInteger(v) ? 'INT64' : 'FLOAT64', v)
  }
  return param(name, 'STRING', v)
}

/** A getQueryResults cell → a plain JS value, by the result field's type. */
export function decodeCell(type: string, v: unknown): unknown {
  if (v === null || v === undefined) return null
  if (typeof v !== 'string') return v
  switch (type) {
    case 'INTEGER':
    case 'INT64': {
      const n = Number(v)
      return Number.isSafeInteger(n) ? n : v
    }
    case 'FLOAT':
    case 'FLOAT64':
      return Number(v)
    case 'BOOLEAN':
    case 'BOOL':
      return v === 'true'
    case 'TIMESTAMP': {
      // formatOptions.useInt64Timestamp: microseconds since the epoch.
      if (/^-?\d+$/.test(v)) return new Date(Math.trunc(Number(v) / 1000)).toISOString()
      const n = Number(v)
      return Number.isFinite(n) ? new Date(Math.round(n * 1000)).toISOString() : v
    }
    default:
      return v
  }
}
