// Template SQL on the BigQuery home. checkSelect() has already accepted the statement against the
// org's catalogue (one SELECT/WITH, allow-listed functions, no schema-qualified or three-part names,
// no backticks, comments or other lexing traps); this adds BigQuery's own walls and rewrites the few
// portable spellings:
//   "ident" → `ident` (double quotes are string literals in BigQuery), :name → @u_name (a typed NAMED
//   parameter), CAST(x AS text|varchar|char|real|double|float|timestamptz) → BigQuery's type names.
// Refused (SQL_REFUSED) before any job is sent: `x::type` casts, '' inside a literal (BigQuery has no
// doubled-quote escape), functions BigQuery lacks or spells differently, the pseudo-columns
// _TABLE_SUFFIX / _PARTITIONTIME / _FILE_NAME / ... (any name starting with _), a wildcard (`t*`)
// after a table name, and `a-b` without spaces (one dashed name to BigQuery, as in project ids).
// Quoted identifiers are re-quoted by quoteBq (identifiers.ts), the one validator.
import { DatasetError } from '../errors.js'
import type { CheckedSelect } from '../select-check.js'
import type { Token } from '../sql-tokens.js'
import type { ColumnSpec, TableSpec } from '../types.js'
import { quoteBq } from '../identifiers.js'
import { param, templateParam, type QueryParameter } from './sql.js'

/** Allow-listed by checkSelect for SQLite/PostgreSQL, but absent from (or different in) BigQuery. */
const NOT_ON_BIGQUERY = new Set(['total', 'group_concat', 'julianday', 'strftime', 'to_char', 'iif', 'position', 'datetime', 'date_trunc'])
const CAST_NAMES: Record<string, string> = {
  text: 'STRING', varchar: 'STRING', char: 'STRING', real: 'FLOAT64', double: 'FLOAT64', float: 'FLOAT64', timestamptz: 'TIMESTAMP',
}
const COMPARISONS = new Set(['=', '<>', '!=', '<', '>', '<=', '>='])

function refuse(reason: string): never {
  throw new DatasetError('SQL_REFUSED', `sql refused on the BigQuery dataset home: ${reason}`)
}

const isPunct = (t: Token | undefined, v: string) => !!t && t.kind === 'punct' && t.value === v
const isWord = (t: Token | undefined, v: string) => !!t && t.kind === 'word' && t.value === v
const isName = (t: Token | undefined) => !!t && (t.kind === 'word' || t.kind === 'qident')

/** The column a parameter is compared with (`col op :p`, `:p op col`, `col BETWEEN :a AND :b`), if one. */
function comparedColumn(tokens: Token[], i: number, columns: Map<string, ColumnSpec | null>): ColumnSpec | undefined {
  const col = (t: Token | undefined) => (isName(t) ? columns.get(t!.value) ?? undefined : undefined)
  const prev = tokens[i - 1]
  if (prev && prev.kind === 'punct' && COMPARISONS.has(prev.value)) return col(tokens[i - 2])
  if (isWord(prev, 'between')) return col(tokens[i - 2])
  if (isWord(prev, 'and') && tokens[i - 2]?.kind === 'param' && isWord(tokens[i - 3], 'between')) return col(tokens[i - 4])
  const next = tokens[i + 1]
  if (next && next.kind === 'punct' && COMPARISONS.has(next.value)) {
    const after = tokens[i + 2]
    if (isName(after) && !isPunct(tokens[i + 3], '.') && !isPunct(tokens[i + 3], '(')) return col(after)
  }
  return undefined
}

export interface BigQuerySelect {
  text: string
  params: QueryParameter[]
}

/**
 * Rewrites a checked statement for BigQuery and wraps it as `SELECT * FROM (...) AS tf_q LIMIT @tf_limit`.
 * `specs` are the catalogue specs of the tables it reads (to type parameters compared with a column).
 */
export function toBigQuerySelect(checked: CheckedSelect, values: Readonly<Record<string, unknown>>, specs: TableSpec[], limit: number): BigQuerySelect {
  const columns = new Map<string, ColumnSpec | null>()
  for (const spec of specs) {
    for (const c of spec.columns) {
      const seen = columns.get(c.name)
      // A name with different types in two tables types nothing.
      columns.set(c.name, seen === undefined || (seen && seen.type === c.type) ? c : null)
    }
  }
  const tokens = checked.tokens
  const params = new Map<string, QueryParameter>()
  let text = ''
  let cursor = 0
  const emit = (t: Token, replacement: string) => {
    text += checked.sql.slice(cursor, t.start) + replacement
    cursor = t.end
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    const prev = tokens[i - 1]
    const next = tokens[i + 1]
    if (isPunct(t, '::')) refuse("'::' casts are not portable, use CAST(x AS type)")
    if (t.kind === 'string' && t.value.includes("'")) refuse('doubled quotes inside a literal are not portable, pass the value as a :parameter')
    // Every BigQuery pseudo-column starts with "_" (_PARTITIONTIME, _FILE_NAME, _CHANGE_TYPE, ...); dataset columns never do.
    if (isName(t) && t.value.startsWith('_')) refuse('BigQuery pseudo-columns (names starting with _) are not allowed')
    if (isName(t) && isPunct(next, '*') && (isWord(prev, 'from') || isWord(prev, 'join'))) refuse('wildcard tables are not allowed')
    // `a-b` without spaces is one dashed name to BigQuery (as in project ids), not a subtraction: it would name a table the catalogue check never saw.
    const after = tokens[i + 2]
    if (t.kind === 'word' && isPunct(next, '-') && t.end === next!.start && after && next!.end === after.start && (after.kind === 'word' || after.kind === 'number')) {
      refuse('write a - b with spaces: BigQuery reads a-b as one dashed name')
    }
    if (t.kind === 'word' && isPunct(next, '(') && NOT_ON_BIGQUERY.has(t.value)) refuse(`${t.value.toUpperCase()}() is not available, see docs/datasets.md`)
    if (t.kind === 'qident') emit(t, quoteBq(t.value))
    else if (t.kind === 'param') {
      if (!Object.prototype.hasOwnProperty.call(values, t.value)) throw new DatasetError('SQL_PARAM_MISSING', `sql parameter ${t.value} has no value`)
      const name = `u_${t.value}`
      if (!params.has(name)) params.set(name, templateParam(name, values[t.value], comparedColumn(tokens, i, columns)))
      emit(t, `@${name}`)
    } else if (t.kind === 'word' && isWord(prev, 'as') && isPunct(next, ')') && CAST_NAMES[t.value]) emit(t, CAST_NAMES[t.value]!)
  }
  text += checked.sql.slice(cursor)
  params.set('tf_limit', param('tf_limit', 'INT64', limit))
  return { text: `SELECT * FROM (${text}) AS tf_q LIMIT @tf_limit`, params: [...params.values()] }
}
