// Time comes from here so tests can move it (quota day and month roll-over, schedules).
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A clock tests can set and advance. */
export class ManualClock implements Clock {
  constructor(private t: number) {}
  now(): number {
    return this.t
  }
  set(t: number): void {
    this.t = t
  }
  advance(ms: number): void {
    this.t += ms
  }
}

export const utcDate = (ms: number) => new Date(ms).toISOString().slice(0, 10)
export const utcMonth = (ms: number) => new Date(ms).toISOString().slice(0, 7)

/** The UTC day and month an instant falls in, with the next roll-overs (ISO text included). */
export interface UtcCalendar {
  /** [start, end) of the UTC day. */
  start: number
  end: number
  day: string
  month: string
  nextMidnightIso: string
  nextMonthStartIso: string
}

let lastCalendar: UtcCalendar | null = null

/** Computed once per UTC day and reused for every instant in it (hot reads format these per request). */
export function utcCalendar(now: number): UtcCalendar {
  const c = lastCalendar
  if (c && now >= c.start && now < c.end) return c
  const d = new Date(now)
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
  const end = nextUtcMidnight(now)
  return (lastCalendar = {
    start,
    end,
    day: utcDate(now),
    month: utcMonth(now),
    nextMidnightIso: new Date(end).toISOString(),
    nextMonthStartIso: new Date(nextMonthStart(now)).toISOString(),
  })
}

export function nextUtcMidnight(now: number): number {
  const d = new Date(now)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
}

export function nextMonthStart(now: number): number {
  const d = new Date(now)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

/**
 * An RFC 3339 timestamp as epoch milliseconds, or null when it names no instant this code can hold:
 * impossible dates (Feb 30), out-of-range fields, and leap seconds (`23:59:60`: JavaScript time has
 * none, `Date.parse` answers NaN). Parsed from its fields, never by `Date.parse` (which rolls Feb 30 over).
 */
export function parseInstant(text: string): number | null {
  const m = RFC3339.exec(text)
  if (!m) return null
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const daysInMonth = month >= 1 && month <= 12 ? new Date(Date.UTC(2000, month, 0)).getUTCDate() + (month === 2 && !isLeapYear(year) ? -1 : 0) : 0
  if (day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return null
  let offsetMin = 0
  const tz = m[8]!
  if (tz !== 'Z' && tz !== 'z') {
    const oh = Number(tz.slice(1, 3))
    const om = Number(tz.slice(4, 6))
    if (oh > 23 || om > 59) return null
    offsetMin = (tz[0] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const ms = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0
  const d = new Date(0)
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(hour, minute, second, ms)
  return d.getTime() - offsetMin * 60_000
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
}
