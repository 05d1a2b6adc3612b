// The loop both cost processors share: the run day's usage rows × the org's model_prices → a cost
// table. Each provider supplies only how one usage row is priced. Unpriced models are reported in
// the step result, never dropped silently.
import type { TableSpec } from '../../datasets/types.js'
import type { ProcessorContext, StepResult } from '../types.js'
import { runDate } from './dates.js'
import { readDay } from './day-rows.js'
import { datasetOp } from './errors.js'
import { loadPrices, pickPrice, type ModelPrice } from './pricing.js'

const MAX_LISTED = 100

export interface CostDayOptions {
  provider: string
  usage: TableSpec
  cost: TableSpec
  /** The cost row for one priced usage row, and its total in USD. */
  price(usage: Record<string, unknown>, price: ModelPrice, date: string): { row: Record<string, unknown>; total: number }
}

export async function priceUsageDay(ctx: ProcessorContext, o: CostDayOptions): Promise<StepResult> {
  const date = runDate(ctx)
  return datasetOp(async () => {
    await ctx.dataset.ensureTable(o.usage)
    const usage = await readDay(ctx.dataset, o.usage.name, date)
    const prices = await loadPrices(ctx.dataset, o.provider, date)
    const unpriced = new Set<string>()
    const rows: Record<string, unknown>[] = []
    let total = 0
    for (const u of usage) {
      const model = u.model as string
      const price = pickPrice(model, prices)
      if (!price) {
        unpriced.add(model)
        continue
      }
      const priced = o.price(u, price, date)
      total += priced.total
      rows.push(priced.row)
    }
    await ctx.dataset.ensureTable(o.cost)
    const written = await ctx.dataset.upsertRows(o.cost.name, rows)
    const list = [...unpriced].sort()
    return {
      rows_processed: written,
      output: { date, total_cost_usd: Math.round(total * 1e6) / 1e6, unpriced_models: list.slice(0, MAX_LISTED), unpriced_count: list.length },
    }
  })
}
