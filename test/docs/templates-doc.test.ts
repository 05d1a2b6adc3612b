// docs/templates.md is checked against the template validator and the processors: every template,
// parameter and step key, every parameter type, column type and pagination kind, every registered
// processor and every config key its validateConfig accepts must be documented there.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { PARAMETER_KEYS, PARAMETER_TYPES, STEP_KEYS, TEMPLATE_KEYS, TemplateCatalog, parseTemplate } from '../../src/core/pipelines/templates.js'
import { COLUMN_TYPES } from '../../src/core/processors/shared/table-config.js'
import { ProcessorRegistry } from '../../src/core/processors/registry.js'
import { registerBuiltinProcessors } from '../../src/core/processors/builtin.js'

const ROOT = join(import.meta.dirname, '..', '..')
const DOC = readFileSync(join(ROOT, 'docs', 'templates.md'), 'utf8')
const PROCESSORS_DIR = join(ROOT, 'src', 'core', 'processors')

/** The markdown between a heading and the next heading of the same or higher level. */
function section(heading: string): string {
  const lines = DOC.split('\n')
  const start = lines.findIndex((l) => l.trim() === heading)
  assert.ok(start >= 0, `docs/templates.md has no "${heading}" section`)
  const level = heading.match(/^#+/)![0].length
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && l.match(/^#+/)![0].length <= level)
  return lines.slice(start, end === -1 ? undefined : end).join('\n')
}

const documented = (text: string, key: string) => text.includes(`\`${key}\``)

function registry(): ProcessorRegistry {
  return registerBuiltinProcessors(new ProcessorRegistry(), { openaiBaseUrl: 'http://127.0.0.1:1', anthropicBaseUrl: 'http://127.0.0.1:1' })
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** Config keys a processor's source accepts: the literal key lists of asObject() and the shared config helpers it calls. */
function configKeys(processorName: string): string[] {
  const file = sourceFiles(PROCESSORS_DIR).find((f) => readFileSync(f, 'utf8').includes(`name: '${processorName}'`))
  assert.ok(file, `no source file declares processor ${processorName}`)
  const src = readFileSync(file, 'utf8')
  const keys = [...src.matchAll(/asObject\([^,]+,[^,]+,\s*\[([^\]]*)\]/g)].flatMap((m) => [...m[1]!.matchAll(/'([a-z_]+)'/g)].map((k) => k[1]!))
  if (/\bpagedConfig\b/.test(src)) keys.push('max_pages')
  if (/\bparseColumns\(/.test(src)) keys.push('name', 'type', 'nullable')
  return [...new Set(keys)]
}

describe('docs/templates.md', () => {
  test('every template, parameter and step key is documented', () => {
    for (const k of TEMPLATE_KEYS) assert.ok(documented(section('## Top-level keys'), k), `top-level key ${k}`)
    for (const k of PARAMETER_KEYS) assert.ok(documented(section('## Parameters'), k), `parameter key ${k}`)
    for (const k of STEP_KEYS) assert.ok(documented(section('## Steps'), k), `step key ${k}`)
  })

  test('every parameter type, column type and pagination kind is documented', () => {
    for (const t of PARAMETER_TYPES) assert.ok(documented(section('## Parameters'), t), `parameter type ${t}`)
    for (const t of COLUMN_TYPES) assert.ok(documented(section('## Field (column) types'), t), `column type ${t}`)
    const src = readFileSync(join(PROCESSORS_DIR, 'generic', 'http-extract.ts'), 'utf8')
    const kinds = src.match(/pagination\.type', 'must be one of ([a-z_, ]+)'/)![1]!.split(', ')
    assert.ok(kinds.length >= 5)
    for (const k of kinds) assert.ok(documented(section('### `generic.http_extract`'), k), `pagination kind ${k}`)
  })

  test('every registered processor has a section listing each config key it accepts', () => {
    const names = registry().names()
    assert.ok(names.length >= 8)
    for (const name of names) {
      const text = section(`### \`${name}\``)
      for (const key of configKeys(name)) assert.ok(documented(text, key), `${name}: config key ${key} undocumented`)
    }
    // Not vacuous: the extractor's nested keys are found in its source.
    assert.ok(configKeys('generic.http_extract').includes('cursor_path'))
  })

  test('the documented example and every shipped template load', () => {
    const example = DOC.match(/## A complete example\n\n```yaml\n([\s\S]*?)```/)![1]!
    const dir = join(ROOT, 'configs', 'pipelines')
    const catalog = TemplateCatalog.load({ builtinDir: dir, extraDirs: [], registry: registry() })
    assert.ok(catalog.getById('gcp/billing/daily'), 'gcp/billing/daily is shipped')
    for (const id of ['openai/usage/daily', 'anthropic/usage/daily', 'gcp/billing/daily', 'generic/http/example']) {
      assert.ok(DOC.includes(`\`${id}\``), `shipped template ${id} not listed`)
    }
    parseTemplate('example.yml', example, { provider: 'generic', domain: 'http', pipeline: 'example' }, registry())
  })
})
