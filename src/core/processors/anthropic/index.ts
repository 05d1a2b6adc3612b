export { createAnthropicUsageProcessor, ANTHROPIC_USAGE_SPEC, ANTHROPIC_VERSION } from './usage.js'
export { createAnthropicCostProcessor, ANTHROPIC_COST_SPEC } from './cost.js'
