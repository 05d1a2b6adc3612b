import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { registerBuiltinProcessors } from '../../src/core/processors/builtin.js'
import { ProcessorRegistry } from '../../src/core/processors/registry.js'
import { TemplateCatalog } from '../../src/core/pipelines/templates.js'
import { defaultPricesCsvPath, parsePricesCsv, pickPrice } from '../../src/core/processors/shared/pricing.js'

const registry = () => registerBuiltinProcessors(new ProcessorRegistry(), { openaiBaseUrl: 'https://api.openai.com', anthropicBaseUrl: 'https://api.anthropic.com' })

describe('built-in processors and shipped templates', () => {
  test('every processor is registered and documented in the README', () => {
    const names = registry().names()
    assert.deepEqual(names, ['anthropic.cost', 'anthropic.usage', 'gcp.billing', 'generic.http_extract', 'generic.sql_transform', 'notify.webhook', 'openai.cost', 'openai.usage'])
    const readme = readFileSync(new URL('../../src/core/processors/README.md', import.meta.url), 'utf8')
    for (const n of names) assert.ok(readme.includes(`\`${n}\``), n)
  })

  test('the shipped templates load against the registry, dates defaulting to yesterday', () => {
    const catalog = TemplateCatalog.load({ builtinDir: new URL('../../configs/pipelines', import.meta.url).pathname, extraDirs: [], registry: registry() })
    const ids = catalog.list().map((t) => t.id)
    for (const id of ['openai/usage/daily', 'anthropic/usage/daily', 'generic/http/example']) {
      assert.ok(ids.includes(id), id)
      assert.equal(catalog.getById(id)!.parameters.date!.default, 'yesterday')
    }
    assert.deepEqual(catalog.getById('openai/usage/daily')!.steps.map((s) => s.processor), ['openai.usage', 'openai.cost'])
  })

  test('the default price CSV parses and prices dated snapshots by the longest prefix', () => {
    const prices = parsePricesCsv(readFileSync(defaultPricesCsvPath(), 'utf8'))
    assert.ok(prices.length >= 20)
    assert.equal(pickPrice('gpt-4o-mini-2024-07-18', prices)!.model, 'gpt-4o-mini')
    assert.equal(pickPrice('claude-sonnet-4-5-20250929', prices)!.model, 'claude-sonnet-4-5')
    assert.equal(pickPrice('gpt-4ox', prices), null)
  })
})
