// `tenantflow templates validate [DIR...]`: loads the built-in templates and those in each DIR
// (default PIPELINE_CONFIG_DIRS) with the processors a server registers, and prints every problem
// as `file: field: reason`. Reads files only.
import { resolve } from 'node:path'
import { defaultTemplateDir } from '../core/pipelines/engine.js'
import { TemplateCatalog, type TemplateError } from '../core/pipelines/templates.js'
import { registerBuiltinProcessors } from '../core/processors/builtin.js'
import { ProcessorRegistry } from '../core/processors/registry.js'

/** The built-in processor registry; endpoints do not matter for validation. */
export function validationRegistry(): ProcessorRegistry {
  return registerBuiltinProcessors(new ProcessorRegistry(), { openaiBaseUrl: 'https://api.openai.com', anthropicBaseUrl: 'https://api.anthropic.com' })
}

export function checkTemplates(dirs: string[]): { count: number; errors: TemplateError[] } {
  const { catalog, errors } = TemplateCatalog.check({ builtinDir: defaultTemplateDir(), extraDirs: dirs.map((d) => resolve(d)), registry: validationRegistry() })
  return { count: catalog.list().length, errors }
}

export async function runTemplatesValidate(dirs: string[]): Promise<number> {
  const given = dirs.length > 0 ? dirs : (process.env.PIPELINE_CONFIG_DIRS ?? '').split(':').map((d) => d.trim()).filter(Boolean)
  const { count, errors } = checkTemplates(given)
  for (const e of errors) process.stdout.write(`${e.line()}\n`)
  const where = given.length ? `built-in + ${given.join(', ')}` : 'built-in'
  if (errors.length > 0) {
    process.stdout.write(`${errors.length} problem(s); ${count} template(s) valid (${where})\n`)
    return 1
  }
  process.stdout.write(`ok: ${count} template(s) valid (${where})\n`)
  return 0
}
