// A deliberately small SQL lexer for checkSelect(). It understands exactly what the check needs
// (words, double-quoted identifiers, '' strings, numbers, :named parameters, punctuation) and
// refuses every construct whose lexing differs between SQLite and PostgreSQL (comments, dollar
// quotes, E''/X''/U&'' prefixed literals, backticks, brackets, positional placeholders), so no
// keyword can hide from the check inside something it would have read as a string.
import { DatasetError } from './errors.js'

export type TokenKind = 'word' | 'qident' | 'string' | 'number' | 'param' | 'punct'

export interface Token {
  kind: TokenKind
  /** Lowercased for words; the identifier for qident; the name for params; the symbol for punct. */
  value: string
  start: number
  end: number
}

const MAX_SQL_CHARS = 20_000
const WORD_START = /[A-Za-z_]/
const WORD_CHAR = /[A-Za-z0-9_]/
const DIGIT = /[0-9]/
const TWO_CHAR_OPS = new Set(['::', '<=', '>=', '<>', '!=', '||'])
const ONE_CHAR_OPS = new Set(['(', ')', ',', '.', ';', '=', '<', '>', '+', '-', '*', '/', '%'])

function refuse(reason: string): never {
  throw new DatasetError('SQL_REFUSED', `sql refused: ${reason}`)
}

export function tokenize(sqlText: string): Token[] {
  if (typeof sqlText !== 'string' || sqlText.length === 0) refuse('empty statement')
  if (sqlText.length > MAX_SQL_CHARS) refuse('statement too long')
  const s = sqlText
  const out: Token[] = []
  let i = 0
  while (i < s.length) {
    const c = s[i]!
    if (c === ' ' || c === '\n' || c === '\t' || c === '\r') {
      i++
      continue
    }
    if (c === '-' && s[i + 1] === '-') refuse('comments are not allowed')
    if (c === '/' && s[i + 1] === '*') refuse('comments are not allowed')
    if (c === "'" || c === '"') {
      if (i > 0 && WORD_CHAR.test(s[i - 1]!)) refuse('prefixed literals are not allowed')
      const start = i
      let j = i + 1
      let value = ''
      for (;;) {
        if (j >= s.length) refuse('unterminated literal')
        if (s[j] === c) {
          if (s[j + 1] === c) {
            value += c
            j += 2
            continue
          }
          break
        }
        value += s[j]
        j++
      }
      if (c === '"') {
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) refuse('quoted identifiers must be lowercase identifiers')
        out.push({ kind: 'qident', value, start, end: j + 1 })
      } else {
        // Backslashes are literal on both engines only while standard_conforming_strings is on.
        if (value.includes('\u0000') || value.includes('\\')) refuse('NUL or backslash in literal')
        out.push({ kind: 'string', value, start, end: j + 1 })
      }
      i = j + 1
      continue
    }
    if (WORD_START.test(c)) {
      let j = i + 1
      while (j < s.length && WORD_CHAR.test(s[j]!)) j++
      if (s[j] === '$') refuse('dollar signs are not allowed')
      out.push({ kind: 'word', value: s.slice(i, j).toLowerCase(), start: i, end: j })
      i = j
      continue
    }
    if (DIGIT.test(c) || (c === '.' && DIGIT.test(s[i + 1] ?? ''))) {
      const m = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/.exec(s.slice(i))!
      const j = i + m[0].length
      if (j < s.length && WORD_CHAR.test(s[j]!)) refuse('malformed number')
      out.push({ kind: 'number', value: m[0], start: i, end: j })
      i = j
      continue
    }
    if (c === ':' && s[i + 1] !== ':') {
      const m = /^:([a-z_][a-z0-9_]{0,62})/.exec(s.slice(i))
      if (!m || (i > 0 && s[i - 1] === ':')) refuse('malformed parameter')
      const j = i + m[0].length
      if (j < s.length && WORD_CHAR.test(s[j]!)) refuse('malformed parameter')
      out.push({ kind: 'param', value: m[1]!, start: i, end: j })
      i = j
      continue
    }
    const two = s.slice(i, i + 2)
    if (TWO_CHAR_OPS.has(two)) {
      out.push({ kind: 'punct', value: two, start: i, end: i + 2 })
      i += 2
      continue
    }
    if (ONE_CHAR_OPS.has(c)) {
      out.push({ kind: 'punct', value: c, start: i, end: i + 1 })
      i++
      continue
    }
    refuse('character not allowed')
  }
  return out
}
