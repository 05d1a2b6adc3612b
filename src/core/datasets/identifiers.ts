// The one place dataset identifiers are validated and quoted. Every table or column name that
// reaches SQL passes through quoteIdent(); schema and file names come only from a dataset id
// (newDatasetId / schemaOfDataset / fileOfDataset).
import { createHash, randomBytes } from 'node:crypto'
import { DatasetError } from './errors.js'

const IDENT = /^[a-z][a-z0-9_]{0,62}$/
const ORG_SLUG = /^[a-z0-9][a-z0-9_-]{2,63}$/

/** Prefixes that name system, catalogue or engine objects; no dataset table may use them. */
export const RESERVED_TABLE_PREFIXES = ['org_', 'sqlite_', 'pg_', 'tenantflow', 'information_schema'] as const

/** Bare names that resolve to something other than a dataset table on one of the engines. */
const RESERVED_NAMES = new Set(['main', 'temp', 'public', 'plans'])

export function isIdentifier(name: unknown): name is string {
  return typeof name === 'string' && IDENT.test(name)
}

export function isReservedTableName(name: string): boolean {
  return RESERVED_NAMES.has(name) || RESERVED_TABLE_PREFIXES.some((p) => name.startsWith(p))
}

/** A column name: the identifier pattern. */
export function assertColumnName(name: unknown): string {
  if (!isIdentifier(name)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid column name')
  return name
}

/** A table name: the identifier pattern and no reserved prefix. The message never echoes the input. */
export function assertTableName(name: unknown): string {
  if (!isIdentifier(name)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid table name')
  if (isReservedTableName(name)) throw new DatasetError('INVALID_IDENTIFIER', 'reserved table name')
  return name
}

export function assertOrgSlug(slug: unknown): string {
  if (typeof slug !== 'string' || !ORG_SLUG.test(slug) || slug.includes('..')) {
    throw new DatasetError('INVALID_IDENTIFIER', 'invalid org slug')
  }
  return slug
}

/** Double-quotes an identifier that already passed validation (so it never contains a quote). */
export function quoteIdent(name: string): string {
  if (!isIdentifier(name)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid identifier')
  return `"${name}"`
}

/** Schema names this code creates: legacy `org_<slug>[$hash]` (from the slug) and incarnation ids. */
const SCHEMA = /^(org_[a-z0-9_]{1,59}(\$[0-9a-f]{16})?|ds_[a-z0-9_]{1,40}_[0-9a-f]{16})$/
/** A dataset id naming one org incarnation: `ds_<slug, hyphens as underscores, ≤ 40>_<64 random bits>`. */
const DATASET_ID = /^ds_[a-z0-9_]{1,40}_[0-9a-f]{16}$/
/** Dataset ids stored before incarnations: the slug's file (`<slug>.db`) or schema (`org_<slug>[$hash]`). */
const LEGACY_SQLITE_ID = /^([a-z0-9][a-z0-9_-]{2,63})\.db$/

/**
 * A fresh dataset id for a new org incarnation. The slug part is only for people reading a schema or
 * file list; the 64 random bits make it unique, and createDataset refuses an existing schema or file,
 * so an org can never be given (or reach) the dataset of an earlier org with the same slug.
 */
export function newDatasetId(orgSlug: string): string {
  const slug = assertOrgSlug(orgSlug)
  return `ds_${slug.replace(/-/g, '_').slice(0, 40)}_${randomBytes(8).toString('hex')}`
}

/** Validates a stored dataset id (new or legacy form); the message never echoes it. */
export function assertDatasetId(id: unknown): string {
  if (typeof id === 'string' && (DATASET_ID.test(id) || SCHEMA.test(id) || (LEGACY_SQLITE_ID.test(id) && !id.includes('..')))) return id
  throw new DatasetError('INVALID_IDENTIFIER', 'invalid dataset id')
}

/** The PostgreSQL schema of a dataset: the dataset id itself (legacy ids already are schema names). */
export function schemaOfDataset(datasetId: string): string {
  const id = assertDatasetId(datasetId)
  if (!SCHEMA.test(id)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid dataset id')
  return id
}

/** The SQLite file name of a dataset: `<id>.db` (legacy ids already end in `.db`). */
export function fileOfDataset(datasetId: string): string {
  const id = assertDatasetId(datasetId)
  if (LEGACY_SQLITE_ID.test(id)) return id
  if (!DATASET_ID.test(id)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid dataset id')
  return `${id}.db`
}


/**
 * Legacy (before incarnation ids): the schema an org's dataset got from its slug. Still valid as a stored
 * dataset id, never generated for a new org. Plain slugs map to `org_<slug>`. Slugs with hyphens (or too long
 * to fit 63 bytes) map hyphens to underscores and add `$<hash>`: slugs never contain `$`, so a
 * hashed name can never equal a plain one (`a-b` and `a_b` stay apart), and createDataset refuses
 * an existing schema, so a hash collision fails onboarding instead of sharing data.
 */
export function pgSchemaName(orgSlug: string): string {
  const slug = assertOrgSlug(orgSlug)
  if (/^[a-z0-9_]+$/.test(slug) && slug.length <= 59) return `org_${slug}`
  const hash = createHash('sha256').update(slug).digest('hex').slice(0, 16)
  return `org_${slug.replace(/-/g, '_').slice(0, 42)}$${hash}`
}

export function quoteSchema(schema: string): string {
  if (!SCHEMA.test(schema)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid schema name')
  return `"${schema}"`
}

/** `"schema"."table"` for PostgreSQL statements. */
export function qualified(schema: string, table: string): string {
  return `${quoteSchema(schema)}.${quoteIdent(assertTableName(table))}`
}

// ---- BigQuery (issue 13) ----

/**
 * The BigQuery dataset of a dataset id: `ds_<slug>_<hex>` → `org_<slug>_<hex>`, one-to-one with the
 * id (so as collision-proof as today's names). Only incarnation ids: legacy ids predate BigQuery homes.
 */
export function bigQueryDatasetOf(datasetId: string): string {
  const id = assertDatasetId(datasetId)
  if (!DATASET_ID.test(id)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid dataset id')
  return `org_${id.slice(3)}`
}

const BQ_DATASET = /^org_[a-z0-9_]{1,40}_[0-9a-f]{16}$/

/** Backtick-quotes a validated identifier (tables, columns, parameters never contain a backtick). */
export function quoteBq(name: string): string {
  if (!isIdentifier(name) && !BQ_DATASET.test(name)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid identifier')
  return `\`${name}\``
}

/** `` `org_x`.`table` `` for BigQuery statements (the dataset from bigQueryDatasetOf, the table validated). */
export function bqQualified(bqDataset: string, table: string): string {
  if (!BQ_DATASET.test(bqDataset)) throw new DatasetError('INVALID_IDENTIFIER', 'invalid dataset id')
  return `${quoteBq(bqDataset)}.${quoteBq(table)}`
}
