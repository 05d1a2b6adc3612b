// Table specs: validation, column DDL types and the value codec (JS value ⇄ bound parameter).
import type { DialectName } from '../db/database.js'
import { DatasetError } from './errors.js'
import { assertColumnName, assertTableName } from './identifiers.js'
import type { ColumnSpec, ColumnType, TableSpec } from './types.js'

export const MAX_COLUMNS = 100
const MAX_KEY_COLUMNS = 8
const MAX_TEXT_CHARS = 65_536
const MAX_JSON_CHARS = 1_048_576
const COLUMN_TYPES: readonly ColumnType[] = ['text', 'integer', 'real', 'date', 'timestamp', 'boolean', 'json']
const DATE = /^\d{4}-\d{2}-\d{2}$/
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/

export function isValidDate(s: unknown): s is string {
  if (typeof s !== 'string' || !DATE.test(s)) return false
  const d = new Date(`${s}T00:00:00Z`)
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s
}

/** Checks a spec and returns a normalized copy (columns in declared order, nullable explicit). */
export function validateTableSpec(input: unknown): TableSpec {
  if (!input || typeof input !== 'object') throw new DatasetError('INVALID_SPEC', 'table spec must be an object')
  const spec = input as Partial<TableSpec>
  const name = assertTableName(spec.name)
  if (!Array.isArray(spec.columns) || spec.columns.length === 0 || spec.columns.length > MAX_COLUMNS) {
    throw new DatasetError('INVALID_SPEC', `columns: 1..${MAX_COLUMNS} required`)
  }
  const seen = new Set<string>()
  const columns: ColumnSpec[] = spec.columns.map((c) => {
    const col = assertColumnName(c?.name)
    if (seen.has(col)) throw new DatasetError('INVALID_SPEC', `column ${col} declared twice`)
    seen.add(col)
    if (!COLUMN_TYPES.includes(c.type)) throw new DatasetError('INVALID_SPEC', `column ${col}: unknown type`)
    return { name: col, type: c.type, nullable: c.nullable === true }
  })
  if (!Array.isArray(spec.naturalKey) || spec.naturalKey.length === 0 || spec.naturalKey.length > MAX_KEY_COLUMNS) {
    throw new DatasetError('INVALID_SPEC', `naturalKey: 1..${MAX_KEY_COLUMNS} columns required`)
  }
  const naturalKey = spec.naturalKey.map((k) => {
    const col = columns.find((c) => c.name === k)
    if (!col) throw new DatasetError('INVALID_SPEC', 'naturalKey names an undeclared column')
    if (col.type === 'json') throw new DatasetError('INVALID_SPEC', `naturalKey column ${col.name} cannot be json`)
    col.nullable = false
    return col.name
  })
  if (new Set(naturalKey).size !== naturalKey.length) throw new DatasetError('INVALID_SPEC', 'naturalKey repeats a column')
  let dateColumn: string | undefined
  if (spec.dateColumn !== undefined) {
    const col = columns.find((c) => c.name === spec.dateColumn)
    if (!col || col.type !== 'date') throw new DatasetError('INVALID_SPEC', 'dateColumn must name a declared date column')
    dateColumn = col.name
  }
  return { name, columns, naturalKey, ...(dateColumn ? { dateColumn } : {}) }
}

export function columnDdlType(type: ColumnType, dialect: DialectName): string {
  if (dialect === 'sqlite') {
    return { text: 'TEXT', integer: 'INTEGER', real: 'REAL', date: 'TEXT', timestamp: 'TEXT', boolean: 'INTEGER', json: 'TEXT' }[type]
  }
  return {
    text: 'TEXT',
    integer: 'BIGINT',
    real: 'DOUBLE PRECISION',
    date: 'DATE',
    timestamp: 'TIMESTAMPTZ',
    boolean: 'BOOLEAN',
    json: 'JSONB',
  }[type]
}

/** Cast applied to a PostgreSQL placeholder so parameter types never depend on inference. */
export function pgCast(type: ColumnType): string {
  return { text: '::text', integer: '::bigint', real: '::double precision', date: '::date', timestamp: '::timestamptz', boolean: '::boolean', json: '::jsonb' }[type]
}

function bad(col: ColumnSpec, reason: string): never {
  throw new DatasetError('INVALID_VALUE', `column ${col.name}: ${reason}`)
}

/** Validates one value against its column and returns what to bind. Never echoes the value. */
export function encodeValue(col: ColumnSpec, v: unknown, dialect: DialectName): string | number | null {
  if (v === null || v === undefined) {
    if (!col.nullable) bad(col, 'value required')
    return null
  }
  switch (col.type) {
    case 'text':
      if (typeof v !== 'string') bad(col, 'expected text')
      if (v.length > MAX_TEXT_CHARS) bad(col, 'text too long')
      if (v.includes('\u0000')) bad(col, 'text contains NUL')
      return v
    case 'integer':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(col, 'expected a safe integer')
      return v
    case 'real':
      if (typeof v !== 'number' || !Number.isFinite(v)) bad(col, 'expected a finite number')
      return v
    case 'date':
      if (!isValidDate(v)) bad(col, 'expected YYYY-MM-DD')
      return v
    case 'timestamp': {
      if (typeof v !== 'string' || !TIMESTAMP.test(v)) bad(col, 'expected an ISO 8601 timestamp with zone')
      const t = new Date(v)
      if (Number.isNaN(t.getTime())) bad(col, 'expected an ISO 8601 timestamp with zone')
      return t.toISOString()
    }
    case 'boolean':
      if (typeof v !== 'boolean') bad(col, 'expected a boolean')
      return dialect === 'sqlite' ? (v ? 1 : 0) : v ? 'true' : 'false'
    case 'json': {
      let s: string | undefined
      try {
        s = JSON.stringify(v)
      } catch {
        bad(col, 'value is not JSON-serializable')
      }
      if (s === undefined) bad(col, 'value is not JSON-serializable')
      if (s.length > MAX_JSON_CHARS) bad(col, 'json too large')
      return s
    }
  }
}

/** Turns a stored value back into the spec's JS shape (same on both engines). */
export function decodeValue(type: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null
  switch (type) {
    case 'boolean':
      return v === true || v === 1
    case 'json':
      return typeof v === 'string' ? JSON.parse(v) : v
    case 'timestamp':
      return v instanceof Date ? v.toISOString() : v
    case 'integer':
    case 'real':
      return typeof v === 'string' ? Number(v) : v
    default:
      return v
  }
}

export function specsEqual(a: TableSpec, b: TableSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** A spec may only grow: same key, same date column, existing columns unchanged, new columns nullable. Returns the new columns. */
export function additiveColumns(old: TableSpec, next: TableSpec): ColumnSpec[] {
  const conflict = () => new DatasetError('SCHEMA_CONFLICT', `table ${next.name} exists with an incompatible spec`)
  if (JSON.stringify(old.naturalKey) !== JSON.stringify(next.naturalKey) || old.dateColumn !== next.dateColumn) throw conflict()
  for (const c of old.columns) {
    const n = next.columns.find((x) => x.name === c.name)
    if (!n || n.type !== c.type || n.nullable !== c.nullable) throw conflict()
  }
  const added = next.columns.filter((c) => !old.columns.some((o) => o.name === c.name))
  if (added.some((c) => !c.nullable)) throw conflict()
  return added
}
