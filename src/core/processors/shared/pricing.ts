// The org's per-model price table (dataset table model_prices), its default seed shipped at
// configs/pricing/default_model_prices.csv, and price lookup for a usage row.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { DatasetWriter, TableSpec } from '../../datasets/types.js'
import { isCalendarDate } from './dates.js'

export const MODEL_PRICES_SPEC: TableSpec = {
  name: 'model_prices',
  columns: [
    { name: 'provider', type: 'text' },
    { name: 'model', type: 'text' },
    { name: 'input_per_1m', type: 'real' },
    { name: 'output_per_1m', type: 'real' },
    { name: 'cached_input_per_1m', type: 'real', nullable: true },
    { name: 'cache_write_5m_per_1m', type: 'real', nullable: true },
    { name: 'cache_write_1h_per_1m', type: 'real', nullable: true },
    { name: 'effective_date', type: 'date' },
  ],
  naturalKey: ['provider', 'model', 'effective_date'],
}

export interface ModelPrice {
  provider: string
  model: string
  input_per_1m: number
  output_per_1m: number
  cached_input_per_1m: number | null
  cache_write_5m_per_1m: number | null
  cache_write_1h_per_1m: number | null
  effective_date: string
}

const CSV_HEADER = MODEL_PRICES_SPEC.columns.map((c) => c.name).join(',')
const MAX_PRICE_ROWS = 10_000

export function defaultPricesCsvPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'configs', 'pricing', 'default_model_prices.csv')
    if (existsSync(candidate)) return candidate
    dir = dirname(dir)
  }
  throw new Error('configs/pricing/default_model_prices.csv not found')
}

function num(v: string, nullable: boolean, line: number): number | null {
  if (v === '' && nullable) return null
  if (!/^\d+(\.\d+)?$/.test(v)) throw new Error(`default price CSV line ${line}: invalid number`)
  return Number(v)
}

/** Parses the price CSV (no quoting: every field is a plain token). */
export function parsePricesCsv(text: string): ModelPrice[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('#'))
  if (lines[0] !== CSV_HEADER) throw new Error('default price CSV: unexpected header')
  return lines.slice(1).map((l, i) => {
    const f = l.split(',')
    const line = i + 2
    if (f.length !== 8) throw new Error(`default price CSV line ${line}: expected 8 fields`)
    const [provider, model, inp, out, cached, w5, w1h, eff] = f as [string, string, string, string, string, string, string, string]
    if (!/^[a-z][a-z0-9_-]{0,31}$/.test(provider) || !/^[A-Za-z0-9._:-]{1,100}$/.test(model) || !isCalendarDate(eff)) {
      throw new Error(`default price CSV line ${line}: invalid provider, model or date`)
    }
    return {
      provider,
      model,
      input_per_1m: num(inp, false, line)!,
      output_per_1m: num(out, false, line)!,
      cached_input_per_1m: num(cached, true, line),
      cache_write_5m_per_1m: num(w5, true, line),
      cache_write_1h_per_1m: num(w1h, true, line),
      effective_date: eff,
    }
  })
}

/**
 * Seeds an org's model_prices from the shipped CSV (called at onboarding). A table that already
 * holds rows is left alone, so per-org edits are never overwritten. Returns rows written.
 */
export async function seedDefaultPrices(writer: DatasetWriter, csvPath = defaultPricesCsvPath()): Promise<number> {
  await writer.ensureTable(MODEL_PRICES_SPEC)
  const existing = await writer.readRows(MODEL_PRICES_SPEC.name, { limit: 1 })
  if (existing.length > 0) return 0
  const rows = parsePricesCsv(readFileSync(csvPath, 'utf8'))
  return writer.upsertRows(MODEL_PRICES_SPEC.name, rows as unknown as Record<string, unknown>[])
}

/** The provider's prices in effect on or before `date`. */
export async function loadPrices(dataset: DatasetWriter, provider: string, date: string): Promise<ModelPrice[]> {
  await dataset.ensureTable(MODEL_PRICES_SPEC)
  const rows = await dataset.select(
    'SELECT provider, model, input_per_1m, output_per_1m, cached_input_per_1m, cache_write_5m_per_1m, ' +
      'cache_write_1h_per_1m, effective_date FROM model_prices WHERE provider = :provider AND effective_date <= :date',
    { provider, date },
    MAX_PRICE_ROWS,
  )
  return rows as unknown as ModelPrice[]
}

/**
 * The price for a usage model: an exact model match, else the longest price model that prefixes it
 * at a `-` boundary (dated snapshots such as gpt-4o-2024-08-06 → gpt-4o); the latest effective date wins.
 */
export function pickPrice(model: string, prices: readonly ModelPrice[]): ModelPrice | null {
  let best: ModelPrice | null = null
  for (const p of prices) {
    if (p.model !== model && !model.startsWith(`${p.model}-`)) continue
    if (
      !best ||
      p.model.length > best.model.length ||
      (p.model.length === best.model.length && p.effective_date > best.effective_date)
    ) {
      best = p
    }
  }
  return best
}

/** Cost in USD of `tokens` at a per-million price, rounded to 1e-9 to keep sums stable. */
export function usd(tokens: number, perMillion: number): number {
  return Math.round((tokens * perMillion) / 1e6 * 1e9) / 1e9
}

/** Bound on the rows an org's price table holds when written through the API (and read back). */
export const MAX_MODEL_PRICES = 2000

const byKey = (a: ModelPrice, b: ModelPrice) =>
  a.provider.localeCompare(b.provider) || a.model.localeCompare(b.model) || a.effective_date.localeCompare(b.effective_date)

/** The org's whole price table, ordered by provider, model, effective date (at most MAX_MODEL_PRICES rows). */
export async function readModelPrices(dataset: DatasetWriter): Promise<ModelPrice[]> {
  await dataset.ensureTable(MODEL_PRICES_SPEC)
  const rows = (await dataset.readRows(MODEL_PRICES_SPEC.name, { limit: MAX_MODEL_PRICES })) as unknown as ModelPrice[]
  return rows.sort(byKey)
}

/** Replaces the org's price table in one transaction: cost steps see the old table or the new one. */
export async function replaceModelPrices(dataset: DatasetWriter, prices: readonly ModelPrice[]): Promise<number> {
  if (prices.length > MAX_MODEL_PRICES) throw new Error('too many model prices')
  await dataset.ensureTable(MODEL_PRICES_SPEC)
  return dataset.replaceRows(MODEL_PRICES_SPEC.name, prices as unknown as Record<string, unknown>[])
}
