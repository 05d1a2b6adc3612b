// anthropic.cost: the day's anthropic_usage_daily rows × the org's model_prices → anthropic_cost_daily.
// Cache writes use the model's cache_write_5m/1h prices; when a price row lacks them, Anthropic's
// documented multipliers of the input price apply (1.25× for 5-minute, 2× for 1-hour writes).
import type { TableSpec } from '../../datasets/types.js'
import { emptyConfig } from '../shared/config.js'
import { priceUsageDay } from '../shared/cost-day.js'
import { usd } from '../shared/pricing.js'
import type { Processor } from '../types.js'
import { ANTHROPIC_USAGE_SPEC } from './usage.js'

export const ANTHROPIC_COST_SPEC: TableSpec = {
  name: 'anthropic_cost_daily',
  columns: [
    { name: 'date', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'input_tokens', type: 'integer' },
    { name: 'cache_read_input_tokens', type: 'integer' },
    { name: 'cache_creation_tokens', type: 'integer' },
    { name: 'output_tokens', type: 'integer' },
    { name: 'input_cost_usd', type: 'real' },
    { name: 'cache_read_cost_usd', type: 'real' },
    { name: 'cache_write_cost_usd', type: 'real' },
    { name: 'output_cost_usd', type: 'real' },
    { name: 'total_cost_usd', type: 'real' },
    { name: 'price_model', type: 'text' },
    { name: 'price_effective_date', type: 'date' },
  ],
  naturalKey: ['date', 'model'],
  dateColumn: 'date',
}

const round = (v: number) => Math.round(v * 1e9) / 1e9

export function createAnthropicCostProcessor(): Processor<Record<string, never>> {
  return {
    name: 'anthropic.cost',
    description: "Anthropic daily cost: anthropic_usage_daily × the org's model_prices → anthropic_cost_daily",
    validateConfig: emptyConfig,
    run: (ctx) =>
      priceUsageDay(ctx, {
        provider: 'anthropic',
        usage: ANTHROPIC_USAGE_SPEC,
        cost: ANTHROPIC_COST_SPEC,
        price(u, price, date) {
          const w5 = u.cache_creation_5m_tokens as number
          const w1h = u.cache_creation_1h_tokens as number
          const inputCost = usd(u.uncached_input_tokens as number, price.input_per_1m)
          const readCost = usd(u.cache_read_input_tokens as number, price.cached_input_per_1m ?? price.input_per_1m)
          const writeCost = round(
            usd(w5, price.cache_write_5m_per_1m ?? price.input_per_1m * 1.25) + usd(w1h, price.cache_write_1h_per_1m ?? price.input_per_1m * 2),
          )
          const outputCost = usd(u.output_tokens as number, price.output_per_1m)
          const rowTotal = round(inputCost + readCost + writeCost + outputCost)
          return {
            total: rowTotal,
            row: {
              date,
              model: u.model,
              input_tokens: u.uncached_input_tokens,
              cache_read_input_tokens: u.cache_read_input_tokens,
              cache_creation_tokens: w5 + w1h,
              output_tokens: u.output_tokens,
              input_cost_usd: inputCost,
              cache_read_cost_usd: readCost,
              cache_write_cost_usd: writeCost,
              output_cost_usd: outputCost,
              total_cost_usd: rowTotal,
              price_model: price.model,
              price_effective_date: price.effective_date,
            },
          }
        },
      }),
  }
}
