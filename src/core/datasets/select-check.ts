// checkSelect(): the gate for generic.sql_transform. It accepts one SELECT/WITH statement that reads
// only this org's dataset tables, calls only allow-listed functions and takes values only through
// :named parameters. It is conservative by design: anything it cannot classify is refused.
// The engines add their own walls at run time (read-only connection / READ ONLY transaction).
import type { DialectName } from '../db/database.js'
import { DatasetError } from './errors.js'
import { isReservedTableName } from './identifiers.js'
import { tokenize, type Token } from './sql-tokens.js'

export interface CheckedSelect {
  /** The statement text without a trailing semicolon. */
  sql: string
  /** Named parameters in first-use order. */
  params: string[]
  /** Dataset tables the statement reads (CTE names excluded). */
  tables: string[]
  tokens: Token[]
}

const DENIED_WORDS = new Set([
  'attach', 'detach', 'pragma', 'insert', 'update', 'delete', 'drop', 'create', 'alter', 'copy', 'call', 'do',
  'execute', 'exec', 'prepare', 'deallocate', 'grant', 'revoke', 'truncate', 'vacuum', 'reindex', 'analyze',
  'analyse', 'replace', 'merge', 'upsert', 'lock', 'set', 'reset', 'listen', 'notify', 'unlisten', 'load', 'into',
  'returning', 'conflict', 'savepoint', 'release', 'rollback', 'commit', 'begin', 'transaction', 'declare',
  'checkpoint', 'cluster', 'comment', 'refresh', 'import', 'security', 'owner', 'discard', 'show', 'explain',
  'regclass', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regtype', 'regnamespace', 'regrole',
  'regcollation', 'regconfig', 'regdictionary', 'xml', 'oid', 'lo', 'database', 'schema', 'session_user',
  'current_user', 'user', 'current_schema', 'current_catalog', 'system_user', 'table',
])

/** Names that read files, other databases, settings or catalogues are simply absent from this list. */
const ALLOWED_FUNCTIONS = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'total', 'group_concat', 'string_agg', 'coalesce', 'ifnull', 'nullif',
  'abs', 'round', 'ceil', 'ceiling', 'floor', 'sign', 'sqrt', 'power', 'mod', 'lower', 'upper', 'length',
  'substr', 'substring', 'trim', 'ltrim', 'rtrim', 'instr', 'strpos', 'position', 'concat', 'cast', 'date',
  'datetime', 'strftime', 'julianday', 'date_trunc', 'extract', 'to_char', 'greatest', 'least', 'iif',
  'row_number', 'rank', 'dense_rank', 'lag', 'lead', 'first_value', 'last_value', 'ntile',
])
/** Keywords that may directly precede "(" without being a function call. */
const KEYWORDS_BEFORE_PAREN = new Set([
  'in', 'exists', 'as', 'over', 'filter', 'values', 'on', 'and', 'or', 'not', 'using', 'from', 'join', 'select',
  'where', 'any', 'all', 'some', 'case', 'when', 'then', 'else', 'by', 'between', 'like', 'is', 'distinct',
  'union', 'intersect', 'except', 'lateral', 'within', 'partition', 'materialized', 'having', 'with', 'end',
  'limit', 'offset', 'recursive', 'row', 'group',
])
const CAST_TYPES = new Set([
  'text', 'integer', 'int', 'bigint', 'smallint', 'real', 'numeric', 'decimal', 'date', 'timestamp',
  'timestamptz', 'boolean', 'double', 'float', 'varchar', 'char',
])
const FROM_ENDERS = new Set([
  'where', 'group', 'having', 'order', 'limit', 'offset', 'window', 'union', 'intersect', 'except', 'fetch',
  'select',
])
const NOT_ALIASES = new Set([
  'on', 'using', 'join', 'left', 'right', 'inner', 'outer', 'full', 'cross', 'natural', 'where', 'group',
  'having', 'order', 'limit', 'offset', 'window', 'union', 'intersect', 'except', 'fetch', 'lateral', 'as',
])
const SPECIAL_IDENTIFIERS = new Set(['main', 'temp', 'public', 'information_schema'])

function refuse(reason: string): never {
  throw new DatasetError('SQL_REFUSED', `sql refused: ${reason}`)
}

const isName = (t: Token | undefined): t is Token => !!t && (t.kind === 'word' || t.kind === 'qident')
const isPunct = (t: Token | undefined, v: string) => !!t && t.kind === 'punct' && t.value === v
const isWord = (t: Token | undefined, v: string) => !!t && t.kind === 'word' && t.value === v

function refusedIdentifier(name: string): boolean {
  return isReservedTableName(name) || SPECIAL_IDENTIFIERS.has(name)
}

/**
 * Checks a statement. `allowedTables` is the org's catalogue (run time); `null` at template load
 * time, when any non-reserved table name is accepted and the run-time check narrows it.
 */
export function checkSelect(sqlText: string, allowedTables: ReadonlySet<string> | null): CheckedSelect {
  let tokens = tokenize(sqlText)
  let text = sqlText
  const last = tokens[tokens.length - 1]
  if (isPunct(last, ';')) {
    tokens = tokens.slice(0, -1)
    text = sqlText.slice(0, last!.start)
  }
  if (tokens.some((t) => isPunct(t, ';'))) refuse('multiple statements')
  const first = tokens[0]
  if (!isWord(first, 'select') && !isWord(first, 'with')) refuse('only SELECT or WITH statements are allowed')

  const cteNames = collectCteNames(tokens)
  const relations = new Set<string>(cteNames)
  const tables = new Set<string>()
  const params: string[] = []

  // Paren stack: 'func' for function-argument parens, 'expr' otherwise. FROM is a clause only outside
  // 'func', because EXTRACT(YEAR FROM d) and SUBSTRING(x FROM 2) use FROM inside their arguments.
  const parens: ('func' | 'expr')[] = []
  const inFrom: boolean[] = [false]
  const tableParenDepths = new Set<number>()
  let expectTable = false

  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    const prev = tokens[i - 1]
    const next = tokens[i + 1]
    const depth = parens.length

    if (t.kind === 'param') {
      if (!params.includes(t.value)) params.push(t.value)
      continue
    }
    if (t.kind === 'word' && DENIED_WORDS.has(t.value)) refuse(`${t.value.toUpperCase()} is not allowed`)
    if (isName(t) && refusedIdentifier(t.value)) refuse('reference to a reserved or system name')

    if (expectTable) {
      expectTable = false
      if (isWord(t, 'lateral')) {
        expectTable = true
        continue
      }
      if (isPunct(t, '(')) {
        parens.push('expr')
        inFrom.push(false)
        tableParenDepths.add(parens.length)
        continue
      }
      if (!isName(t)) refuse('unexpected token where a table is expected')
      if (isPunct(next, '.')) refuse('schema-qualified names are not allowed')
      if (isPunct(next, '(')) refuse('table functions are not allowed')
      if (!cteNames.has(t.value)) {
        if (allowedTables && !allowedTables.has(t.value)) refuse('table is not in this dataset')
        tables.add(t.value)
      }
      relations.add(t.value)
      if (isWord(next, 'as') && isName(tokens[i + 2])) relations.add(tokens[i + 2]!.value)
      else if (isName(next) && !(next.kind === 'word' && NOT_ALIASES.has(next.value))) relations.add(next.value)
      continue
    }

    if (t.kind === 'word' && (t.value === 'from' || t.value === 'join')) {
      const inFunc = parens[parens.length - 1] === 'func'
      if (!inFunc) {
        if (t.value === 'from') inFrom[depth] = true
        expectTable = true
      }
      continue
    }
    if (t.kind === 'word' && FROM_ENDERS.has(t.value)) inFrom[depth] = false
    if (isPunct(t, ',') && inFrom[depth]) {
      expectTable = true
      continue
    }

    if (isPunct(t, '(')) {
      const callee = prev && prev.kind === 'word' && !KEYWORDS_BEFORE_PAREN.has(prev.value) ? prev : undefined
      parens.push(callee && ALLOWED_FUNCTIONS.has(callee.value) ? 'func' : 'expr')
      inFrom.push(false)
      continue
    }
    if (isPunct(t, ')')) {
      if (parens.length === 0) refuse('unbalanced parentheses')
      const closedDepth = parens.length
      parens.pop()
      inFrom.pop()
      if (tableParenDepths.delete(closedDepth)) {
        if (isWord(next, 'as') && isName(tokens[i + 2])) relations.add(tokens[i + 2]!.value)
        else if (isName(next) && !(next.kind === 'word' && NOT_ALIASES.has(next.value))) relations.add(next.value)
      }
      continue
    }

    if (isPunct(t, '.')) {
      if (!isName(prev)) refuse('unexpected "."')
      if (isPunct(tokens[i - 2], '.')) refuse('three-part names are not allowed')
      if (!isName(next) && !isPunct(next, '*')) refuse('unexpected "."')
      if (isPunct(tokens[i + 2], '(')) refuse('qualified function calls are not allowed')
      continue
    }

    if (isPunct(t, '::')) {
      if (!(next?.kind === 'word' && CAST_TYPES.has(next.value))) refuse('cast to an unsupported type')
      continue
    }

    if (isName(t) && isPunct(next, '(')) {
      if (t.kind === 'word' && KEYWORDS_BEFORE_PAREN.has(t.value)) continue
      if (cteNames.has(t.value) && isCteColumnList(tokens, i + 1)) continue
      if (t.kind !== 'word' || !ALLOWED_FUNCTIONS.has(t.value)) refuse('function is not allowed')
      continue
    }
    if (t.kind === 'word' && prev?.kind === 'word' && prev.value === 'as' && parens[parens.length - 1] === 'func') {
      // CAST(x AS type): only plain scalar types.
      if (!CAST_TYPES.has(t.value)) refuse('cast to an unsupported type')
    }
  }
  if (parens.length !== 0) refuse('unbalanced parentheses')
  if (expectTable) refuse('missing table')

  // Qualifiers (x.col) must name a relation of this statement: never a schema or another database.
  for (let i = 1; i < tokens.length - 1; i++) {
    if (isPunct(tokens[i], '.') && !relations.has(tokens[i - 1]!.value)) refuse('qualifier is not a table of this query')
  }
  return { sql: text, params, tables: [...tables].sort(), tokens }
}

/** CTE names: `name AS (`, `name AS [NOT] MATERIALIZED (` or `name (cols) AS (` directly after WITH or a comma. */
function collectCteNames(tokens: Token[]): Set<string> {
  const names = new Set<string>()
  if (!isWord(tokens[0], 'with')) return names
  let depth = 0
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (isPunct(t, '(')) depth++
    else if (isPunct(t, ')')) depth--
    if (!isName(t)) continue
    const prev = tokens[i - 1]
    const afterIntro = isWord(prev, 'with') || isWord(prev, 'recursive') || isPunct(prev, ',')
    if (!afterIntro) continue
    let j = i + 1
    if (isPunct(tokens[j], '(')) {
      if (!isCteColumnList(tokens, j)) continue
      while (!isPunct(tokens[j], ')')) j++
      j++
    }
    if (!isWord(tokens[j], 'as')) continue
    j++
    if (isWord(tokens[j], 'not')) j++
    if (isWord(tokens[j], 'materialized')) j++
    if (isPunct(tokens[j], '(')) {
      if (refusedIdentifier(t.value)) refuse('reference to a reserved or system name')
      names.add(t.value)
    }
  }
  return names
}

/** `( a, b, c ) AS` — a CTE column list rather than a call. */
function isCteColumnList(tokens: Token[], open: number): boolean {
  let j = open + 1
  for (;;) {
    if (!isName(tokens[j])) return false
    j++
    if (isPunct(tokens[j], ',')) {
      j++
      continue
    }
    if (isPunct(tokens[j], ')')) return isWord(tokens[j + 1], 'as')
    return false
  }
}

export type BoundValue = string | number | boolean | null

/** Replaces :name parameters with the dialect's placeholders and returns the values in order. */
export function bindNamed(
  checked: CheckedSelect,
  values: Readonly<Record<string, unknown>>,
  dialect: DialectName,
  firstIndex = 1,
): { text: string; params: BoundValue[] } {
  const order: string[] = []
  const params: BoundValue[] = []
  let text = ''
  let cursor = 0
  for (const t of checked.tokens) {
    if (t.kind !== 'param') continue
    if (!Object.prototype.hasOwnProperty.call(values, t.value)) {
      throw new DatasetError('SQL_PARAM_MISSING', `sql parameter ${t.value} has no value`)
    }
    const v = values[t.value]
    if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new DatasetError('INVALID_VALUE', `sql parameter ${t.value} must be a scalar`)
    }
    let placeholder: string
    if (dialect === 'postgres') {
      let idx = order.indexOf(t.value)
      if (idx < 0) {
        order.push(t.value)
        params.push(v as BoundValue)
        idx = order.length - 1
      }
      placeholder = `$${firstIndex + idx}`
    } else {
      params.push(typeof v === 'boolean' ? (v ? 1 : 0) : (v as BoundValue))
      placeholder = '?'
    }
    text += checked.sql.slice(cursor, t.start) + placeholder
    cursor = t.end
  }
  text += checked.sql.slice(cursor)
  return { text, params }
}
