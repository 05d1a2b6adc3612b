// openai.cost: the day's openai_usage_daily rows × the org's model_prices → openai_cost_daily.
// input_tokens includes cached tokens (as the Usage API documents), so cached tokens are priced at
// the cached rate and the rest at the input rate. Unpriced models are reported, not dropped silently.
import type { TableSpec } from '../../datasets/types.js'
import { emptyConfig } from '../shared/config.js'
import { priceUsageDay } from '../shared/cost-day.js'
import { usd } from '../shared/pricing.js'
import type { Processor } from '../types.js'
import { OPENAI_USAGE_SPEC } from './usage.js'

export const OPENAI_COST_SPEC: TableSpec = {
  name: 'openai_cost_daily',
  columns: [
    { name: 'date', type: 'date' },
    { name: 'model', type: 'text' },
    { name: 'project_id', type: 'text' },
    { name: 'input_tokens', type: 'integer' },
    { name: 'cached_tokens', type: 'integer' },
    { name: 'output_tokens', type: 'integer' },
    { name: 'requests', type: 'integer' },
    { name: 'input_cost_usd', type: 'real' },
    { name: 'cached_input_cost_usd', type: 'real' },
    { name: 'output_cost_usd', type: 'real' },
    { name: 'total_cost_usd', type: 'real' },
    { name: 'price_model', type: 'text' },
    { name: 'price_effective_date', type: 'date' },
  ],
  naturalKey: ['date', 'model', 'project_id'],
  dateColumn: 'date',
}

export function createOpenAiCostProcessor(): Processor<Record<string, never>> {
  return {
    name: 'openai.cost',
    description: "OpenAI daily cost: openai_usage_daily × the org's model_prices → openai_cost_daily",
    validateConfig: emptyConfig,
    run: (ctx) =>
      priceUsageDay(ctx, {
        provider: 'openai',
        usage: OPENAI_USAGE_SPEC,
        cost: OPENAI_COST_SPEC,
        price(u, price, date) {
          const input = u.input_tokens as number
          const cached = Math.min(u.cached_tokens as number, input)
          const output = u.output_tokens as number
          const inputCost = usd(input - cached, price.input_per_1m)
          const cachedCost = usd(cached, price.cached_input_per_1m ?? price.input_per_1m)
          const outputCost = usd(output, price.output_per_1m)
          const rowTotal = Math.round((inputCost + cachedCost + outputCost) * 1e9) / 1e9
          return {
            total: rowTotal,
            row: {
              date,
              model: u.model,
              project_id: u.project_id,
              input_tokens: input,
              cached_tokens: cached,
              output_tokens: output,
              requests: u.requests,
              input_cost_usd: inputCost,
              cached_input_cost_usd: cachedCost,
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
