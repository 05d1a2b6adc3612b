// The run date: parameters.date (YYYY-MM-DD) or, by default, yesterday in UTC from ctx.now().
import { ProcessorError, type ProcessorContext } from '../types.js'

const DAY_MS = 86_400_000

export function isCalendarDate(v: unknown): v is string {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v)) return false
  const d = new Date(`${v}T00:00:00Z`)
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v
}

export function runDate(ctx: ProcessorContext): string {
  const p = ctx.parameters.date
  if (p === undefined || p === null) return new Date(ctx.now() - DAY_MS).toISOString().slice(0, 10)
  if (!isCalendarDate(p)) throw new ProcessorError('INVALID_DATA', 'Parameter date must be YYYY-MM-DD')
  return p
}

/** [start, end) of a UTC day in epoch milliseconds. */
export function dayBounds(date: string): { startMs: number; endMs: number } {
  const startMs = Date.parse(`${date}T00:00:00Z`)
  return { startMs, endMs: startMs + DAY_MS }
}
