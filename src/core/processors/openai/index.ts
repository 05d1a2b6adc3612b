export { createOpenAiUsageProcessor, OPENAI_USAGE_SPEC } from './usage.js'
export { createOpenAiCostProcessor, OPENAI_COST_SPEC } from './cost.js'
