// Converts extracted values (JSON fields, SQL results) to a column's type. Failures name the column,
// never the value.
import type { ColumnType } from '../../datasets/types.js'
import { ProcessorError } from '../types.js'
import { isCalendarDate } from './dates.js'

const NUMERIC = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/

function fail(column: string, type: ColumnType): never {
  throw new ProcessorError('INVALID_DATA', `Column ${column}: value is not a valid ${type}`)
}

export function coerce(column: string, type: ColumnType, v: unknown): unknown {
  if (v === undefined || v === null) return null
  switch (type) {
    case 'text':
      if (typeof v === 'string') return v
      if (typeof v === 'number' || typeof v === 'boolean') return String(v)
      return fail(column, type)
    case 'integer': {
      const n = typeof v === 'string' && NUMERIC.test(v.trim()) ? Number(v) : v
      if (typeof n === 'number' && Number.isSafeInteger(n)) return n
      if (typeof n === 'bigint' && n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(n)
      return fail(column, type)
    }
    case 'real': {
      const n = typeof v === 'string' && NUMERIC.test(v.trim()) ? Number(v) : v
      if (typeof n === 'number' && Number.isFinite(n)) return n
      return fail(column, type)
    }
    case 'date': {
      if (typeof v === 'string' && isCalendarDate(v)) return v
      if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v)) {
        const t = Date.parse(v)
        if (!Number.isNaN(t)) return new Date(t).toISOString().slice(0, 10)
      }
      return fail(column, type)
    }
    case 'timestamp': {
      if (typeof v === 'string') {
        const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v) ? Date.parse(v) : NaN
        if (!Number.isNaN(t)) return new Date(t).toISOString()
      }
      if (typeof v === 'number' && Number.isFinite(v)) {
        // Epoch seconds below 1e11 (year 5138), milliseconds above.
        return new Date(v < 1e11 ? v * 1000 : v).toISOString()
      }
      return fail(column, type)
    }
    case 'boolean':
      if (typeof v === 'boolean') return v
      if (v === 1 || v === 0) return v === 1
      if (v === 'true' || v === 'false') return v === 'true'
      return fail(column, type)
    case 'json':
      if (typeof v === 'string') {
        try {
          return JSON.parse(v) as unknown
        } catch {
          return v
        }
      }
      return v
  }
}
