// Pipeline templates: YAML files at {root}/{provider}/{domain}/{pipeline}.yml, validated strictly at
// startup. Every problem is a TemplateError naming the file, the field and the reason; loading collects
// all of them (a YAML file outside the layout is one too) and any problem stops startup.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { isAbsolute, join, relative } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { ProcessorRegistry } from '../processors/registry.js'
import type { IntegrationProvider } from '../processors/types.js'

export const SEGMENT = /^[a-z0-9][a-z0-9_-]{0,63}$/
const PARAM_NAME = /^[a-z][a-z0-9_]{0,63}$/
const STEP_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/
const INTEGRATIONS: readonly IntegrationProvider[] = ['openai', 'anthropic', 'gcp', 'http']
const MAX_FILE_BYTES = 256 * 1024
const MAX_STEPS = 50
const MAX_PARAMS = 20

export type ParameterType = 'date' | 'string' | 'integer' | 'enum'

/** The keys a template, a parameter and a step may have (docs/templates.md documents each; a test checks). */
export const TEMPLATE_KEYS = ['id', 'description', 'integration', 'parameters', 'timeout_seconds', 'steps'] as const
export const PARAMETER_KEYS = ['type', 'description', 'default', 'min', 'max', 'max_length', 'values', 'required'] as const
export const STEP_KEYS = ['id', 'processor', 'depends_on', 'timeout_seconds', 'retries', 'config'] as const
export const PARAMETER_TYPES: readonly ParameterType[] = ['date', 'string', 'integer', 'enum']

export interface ParameterSpec {
  type: ParameterType
  description?: string
  required: boolean
  default?: string | number
  min?: number
  max?: number
  max_length?: number
  values?: string[]
}

export interface StepSpec {
  id: string
  processor: string
  /** As written; undefined means "after the previous step". */
  depends_on?: string[]
  /** Resolved dependencies (implicit previous step included). */
  after: string[]
  timeout_seconds?: number
  retries: number
  /** The config as returned by the processor's validateConfig. */
  config: unknown
}

export interface PipelineTemplate {
  id: string
  provider: string
  domain: string
  pipeline: string
  description: string
  integration: IntegrationProvider | null
  parameters: Record<string, ParameterSpec>
  timeout_seconds: number
  steps: StepSpec[]
  file: string
}

export class TemplateError extends Error {
  constructor(readonly file: string, readonly field: string, readonly reason: string) {
    super(`invalid pipeline template ${file}: ${field}: ${reason}`)
    this.name = 'TemplateError'
  }

  /** `file: field: reason`, the line operators see. */
  line(): string {
    return `${this.file}: ${this.field}: ${this.reason}`
  }
}

/** Thrown by TemplateCatalog.load: the first problem's fields, plus every problem in `problems`. */
export class TemplateErrors extends TemplateError {
  constructor(readonly problems: TemplateError[]) {
    super(problems[0]!.file, problems[0]!.field, problems[0]!.reason)
    this.message = `${problems.length} pipeline template problem(s): ${problems.map((p) => p.line()).join('; ')}`
  }
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

function checkKeys(file: string, path: string, o: Obj, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new TemplateError(file, path ? `${path}.${k}` : k, 'unknown key')
  }
}

function int(file: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new TemplateError(file, field, `must be an integer between ${min} and ${max}`)
  }
  return v
}

function str(file: string, field: string, v: unknown, maxLength: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > maxLength) {
    throw new TemplateError(file, field, `must be a non-empty string of at most ${maxLength} characters`)
  }
  return v
}

function isCalendarDate(v: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) return false
  const d = new Date(`${v}T00:00:00Z`)
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v
}

/** Checks one value against a parameter spec; returns the normalized value or undefined if invalid. */
function checkValue(spec: ParameterSpec, v: unknown): string | number | undefined {
  switch (spec.type) {
    case 'date':
      return typeof v === 'string' && isCalendarDate(v) ? v : undefined
    case 'integer':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) return undefined
      if (spec.min !== undefined && v < spec.min) return undefined
      if (spec.max !== undefined && v > spec.max) return undefined
      return v
    case 'string':
      if (typeof v !== 'string' || v.length > (spec.max_length ?? 256) || v.includes('\u0000')) return undefined
      return v
    case 'enum':
      return typeof v === 'string' && spec.values!.includes(v) ? v : undefined
  }
}

function parseParameter(file: string, name: string, raw: unknown): ParameterSpec {
  const path = `parameters.${name}`
  if (!PARAM_NAME.test(name)) throw new TemplateError(file, path, 'parameter names are lowercase identifiers')
  if (!isObj(raw)) throw new TemplateError(file, path, 'must be a mapping')
  checkKeys(file, path, raw, PARAMETER_KEYS)
  const type = raw.type as ParameterType
  if (!PARAMETER_TYPES.includes(type)) {
    throw new TemplateError(file, `${path}.type`, 'must be date, string, integer or enum')
  }
  const spec: ParameterSpec = { type, required: false }
  if (raw.description !== undefined) spec.description = str(file, `${path}.description`, raw.description, 500)
  if (raw.required !== undefined) {
    if (typeof raw.required !== 'boolean') throw new TemplateError(file, `${path}.required`, 'must be true or false')
    spec.required = raw.required
  }
  const onlyFor = (key: string, types: ParameterType[]) => {
    if (raw[key] !== undefined && !types.includes(type)) throw new TemplateError(file, `${path}.${key}`, `not allowed for type ${type}`)
  }
  onlyFor('min', ['integer'])
  onlyFor('max', ['integer'])
  onlyFor('max_length', ['string'])
  onlyFor('values', ['enum'])
  if (raw.min !== undefined) spec.min = int(file, `${path}.min`, raw.min, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
  if (raw.max !== undefined) spec.max = int(file, `${path}.max`, raw.max, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
  if (spec.min !== undefined && spec.max !== undefined && spec.min > spec.max) throw new TemplateError(file, `${path}.min`, 'must not exceed max')
  if (raw.max_length !== undefined) spec.max_length = int(file, `${path}.max_length`, raw.max_length, 1, 4096)
  if (type === 'enum') {
    const values = raw.values
    if (!Array.isArray(values) || values.length === 0 || values.length > 100) {
      throw new TemplateError(file, `${path}.values`, 'must be a list of 1 to 100 strings')
    }
    values.forEach((v, i) => str(file, `${path}.values[${i}]`, v, 200))
    if (new Set(values).size !== values.length) throw new TemplateError(file, `${path}.values`, 'must be unique')
    spec.values = values as string[]
  }
  if (raw.default !== undefined) {
    const d = raw.default
    const relative = type === 'date' && (d === 'today' || d === 'yesterday')
    if (!relative && checkValue(spec, d) === undefined) throw new TemplateError(file, `${path}.default`, `is not a valid ${type}`)
    spec.default = d as string | number
  }
  return spec
}

function parseStep(file: string, i: number, raw: unknown, registry: ProcessorRegistry): StepSpec {
  const path = `steps[${i}]`
  if (!isObj(raw)) throw new TemplateError(file, path, 'must be a mapping')
  checkKeys(file, path, raw, STEP_KEYS)
  const id = str(file, `${path}.id`, raw.id, 64)
  if (!STEP_ID.test(id)) throw new TemplateError(file, `${path}.id`, 'must match ^[a-z0-9][a-z0-9_-]{0,63}$')
  const processorName = str(file, `${path}.processor`, raw.processor, 100)
  const processor = registry.get(processorName)
  if (!processor) throw new TemplateError(file, `${path}.processor`, `unknown processor ${JSON.stringify(processorName)}`)
  let depends_on: string[] | undefined
  if (raw.depends_on !== undefined) {
    if (!Array.isArray(raw.depends_on) || raw.depends_on.length > MAX_STEPS) {
      throw new TemplateError(file, `${path}.depends_on`, 'must be a list of step ids')
    }
    depends_on = raw.depends_on.map((d, j) => str(file, `${path}.depends_on[${j}]`, d, 64))
  }
  let config: unknown
  try {
    config = processor.validateConfig(raw.config ?? {})
  } catch (err) {
    const detail = err instanceof Error && err.name === 'ProcessorConfigError' ? err.message : 'is invalid'
    throw new TemplateError(file, `${path}.config`, detail)
  }
  return {
    id,
    processor: processorName,
    depends_on,
    after: [],
    timeout_seconds: raw.timeout_seconds === undefined ? undefined : int(file, `${path}.timeout_seconds`, raw.timeout_seconds, 1, 86_400),
    retries: raw.retries === undefined ? 0 : int(file, `${path}.retries`, raw.retries, 0, 10),
    config,
  }
}

/** Resolves implicit dependencies and rejects duplicate ids, unknown depends_on and cycles. */
function resolveGraph(file: string, steps: StepSpec[]): void {
  const index = new Map<string, number>()
  steps.forEach((s, i) => {
    if (index.has(s.id)) throw new TemplateError(file, `steps[${i}].id`, `duplicate step id ${JSON.stringify(s.id)}`)
    index.set(s.id, i)
  })
  steps.forEach((s, i) => {
    if (s.depends_on === undefined) {
      s.after = i > 0 ? [steps[i - 1]!.id] : []
      return
    }
    s.depends_on.forEach((d, j) => {
      if (!index.has(d)) throw new TemplateError(file, `steps[${i}].depends_on[${j}]`, `unknown step ${JSON.stringify(d)}`)
    })
    s.after = [...new Set(s.depends_on)]
  })
  const state = new Array<0 | 1 | 2>(steps.length).fill(0) // 0 new, 1 on stack, 2 done
  const visit = (i: number): void => {
    state[i] = 1
    for (const d of steps[i]!.after) {
      const j = index.get(d)!
      if (state[j] === 1) throw new TemplateError(file, `steps[${i}].depends_on`, `dependency cycle through ${JSON.stringify(d)}`)
      if (state[j] === 0) visit(j)
    }
    state[i] = 2
  }
  steps.forEach((_, i) => {
    if (state[i] === 0) visit(i)
  })
}

export function parseTemplate(
  file: string,
  text: string,
  ids: { provider: string; domain: string; pipeline: string },
  registry: ProcessorRegistry,
): PipelineTemplate {
  let doc: unknown
  try {
    doc = parseYaml(text, { uniqueKeys: true, strict: true, maxAliasCount: 100 })
  } catch {
    throw new TemplateError(file, '(document)', 'is not valid YAML')
  }
  if (!isObj(doc)) throw new TemplateError(file, '(document)', 'must be a mapping')
  checkKeys(file, '', doc, TEMPLATE_KEYS)
  const id = `${ids.provider}/${ids.domain}/${ids.pipeline}`
  if (doc.id !== undefined && doc.id !== id) throw new TemplateError(file, 'id', `must be ${JSON.stringify(id)} (derived from the path)`)
  const description = str(file, 'description', doc.description, 500)
  let integration: IntegrationProvider | null = null
  if (doc.integration !== undefined) {
    if (!INTEGRATIONS.includes(doc.integration as IntegrationProvider)) {
      throw new TemplateError(file, 'integration', `must be one of ${INTEGRATIONS.join(', ')}`)
    }
    integration = doc.integration as IntegrationProvider
  }
  const parameters: Record<string, ParameterSpec> = {}
  if (doc.parameters !== undefined) {
    if (!isObj(doc.parameters)) throw new TemplateError(file, 'parameters', 'must be a mapping')
    const names = Object.keys(doc.parameters)
    if (names.length > MAX_PARAMS) throw new TemplateError(file, 'parameters', `at most ${MAX_PARAMS} parameters`)
    for (const name of names) parameters[name] = parseParameter(file, name, doc.parameters[name])
  }
  const timeout_seconds = doc.timeout_seconds === undefined ? 3600 : int(file, 'timeout_seconds', doc.timeout_seconds, 1, 86_400)
  if (!Array.isArray(doc.steps) || doc.steps.length === 0 || doc.steps.length > MAX_STEPS) {
    throw new TemplateError(file, 'steps', `must be a list of 1 to ${MAX_STEPS} steps`)
  }
  const steps = doc.steps.map((s, i) => parseStep(file, i, s, registry))
  resolveGraph(file, steps)
  steps.forEach((s, i) => {
    const needs = registry.get(s.processor)!.integration
    if (needs && needs !== integration) {
      throw new TemplateError(file, `steps[${i}].processor`, `needs integration ${needs}; declare integration: ${needs}`)
    }
  })
  return { id, ...ids, description, integration, parameters, timeout_seconds, steps, file }
}

const listDir = (dir: string) => readdirSync(dir).sort()
/** Paths inside the working directory are shown relative to it, others in full. */
function shownPath(p: string): string {
  const r = relative(process.cwd(), p)
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p
}
const isYaml = (name: string) => /\.ya?ml$/i.test(name)
const LAYOUT = '<provider>/<domain>/<pipeline>.yml'

/** A YAML file that is not at {root}/{provider}/{domain}/{pipeline}.yml is an error naming the expected path. */
function misplaced(root: string, file: string, expected: string): TemplateError {
  return new TemplateError(shownPath(file), '(layout)', `templates live at ${shownPath(join(root, LAYOUT))}; expected ${shownPath(join(root, expected))}`)
}

/** Reads every template under one root directory; problems go to `errors`, the rest are returned. */
function loadRoot(root: string, registry: ProcessorRegistry, errors: TemplateError[]): PipelineTemplate[] {
  const out: PipelineTemplate[] = []
  const attempt = (fn: () => void) => {
    try {
      fn()
    } catch (err) {
      if (err instanceof TemplateError) errors.push(err)
      else throw err
    }
  }
  for (const provider of listDir(root)) {
    const pDir = join(root, provider)
    if (provider.startsWith('.')) continue
    if (!statSync(pDir).isDirectory()) {
      if (isYaml(provider)) errors.push(misplaced(root, pDir, join('<provider>', '<domain>', provider.replace(/\.ya?ml$/i, '.yml'))))
      continue
    }
    if (!SEGMENT.test(provider)) {
      errors.push(new TemplateError(shownPath(pDir), 'provider', 'directory name must match ^[a-z0-9][a-z0-9_-]{0,63}$'))
      continue
    }
    for (const domain of listDir(pDir)) {
      const dDir = join(pDir, domain)
      if (domain.startsWith('.')) continue
      if (!statSync(dDir).isDirectory()) {
        if (isYaml(domain)) errors.push(misplaced(root, dDir, join(provider, '<domain>', domain.replace(/\.ya?ml$/i, '.yml'))))
        continue
      }
      if (!SEGMENT.test(domain)) {
        errors.push(new TemplateError(shownPath(dDir), 'domain', 'directory name must match ^[a-z0-9][a-z0-9_-]{0,63}$'))
        continue
      }
      for (const name of listDir(dDir)) {
        const file = join(dDir, name)
        if (name.startsWith('.')) continue
        if (statSync(file).isDirectory()) {
          const nested = readdirSync(file, { recursive: true, withFileTypes: true }).find((e) => e.isFile() && isYaml(e.name))
          if (nested) errors.push(misplaced(root, join(nested.parentPath, nested.name), join(provider, domain, nested.name.replace(/\.ya?ml$/i, '.yml'))))
          continue
        }
        if (!isYaml(name)) continue
        if (!name.endsWith('.yml')) {
          errors.push(misplaced(root, file, join(provider, domain, name.replace(/\.ya?ml$/i, '.yml'))))
          continue
        }
        const pipeline = name.slice(0, -4)
        const shown = shownPath(file)
        attempt(() => {
          if (!SEGMENT.test(pipeline)) throw new TemplateError(shown, 'pipeline', 'file name must match ^[a-z0-9][a-z0-9_-]{0,63}$')
          if (statSync(file).size > MAX_FILE_BYTES) throw new TemplateError(shown, '(document)', 'file is larger than 256 KiB')
          out.push(parseTemplate(shown, readFileSync(file, 'utf8'), { provider, domain, pipeline }, registry))
        })
      }
    }
  }
  return out
}

/** One failing input: its path and the rule it broke (never the value). */
export interface FieldIssue {
  path: string
  message: string
}

export type ValidatedParameters =
  | { ok: true; parameters: Record<string, string | number> }
  | { ok: false; fields: string[]; errors: FieldIssue[] }

/** The rule a parameter value must follow, in words (for error messages). */
export function parameterRule(spec: ParameterSpec): string {
  switch (spec.type) {
    case 'date':
      return 'must be a calendar date YYYY-MM-DD'
    case 'integer': {
      const bounds = spec.min !== undefined && spec.max !== undefined ? ` between ${spec.min} and ${spec.max}` : spec.min !== undefined ? ` >= ${spec.min}` : spec.max !== undefined ? ` <= ${spec.max}` : ''
      return `must be an integer${bounds}`
    }
    case 'string':
      return `must be a string of at most ${spec.max_length ?? 256} characters`
    case 'enum':
      return `must be one of: ${spec.values!.join(', ')}`
  }
}

export class TemplateCatalog {
  private readonly byId = new Map<string, PipelineTemplate>()

  constructor(templates: PipelineTemplate[], errors?: TemplateError[]) {
    for (const t of templates) {
      const duplicate = this.byId.get(t.id)
      if (duplicate) {
        const err = new TemplateError(t.file, 'id', `duplicate template id ${t.id} (also in ${duplicate.file})`)
        if (!errors) throw err
        errors.push(err)
        continue
      }
      this.byId.set(t.id, t)
    }
  }

  /**
   * Reads the built-in root (may be absent) and the operator's directories (each must exist) and
   * returns every problem found; `catalog` holds the templates that loaded.
   */
  static check(opts: { builtinDir: string | null; extraDirs: string[]; registry: ProcessorRegistry }): { catalog: TemplateCatalog; errors: TemplateError[] } {
    const errors: TemplateError[] = []
    const templates: PipelineTemplate[] = []
    if (opts.builtinDir && existsSync(opts.builtinDir)) templates.push(...loadRoot(opts.builtinDir, opts.registry, errors))
    for (const dir of opts.extraDirs) {
      if (!existsSync(dir)) errors.push(new TemplateError(shownPath(dir), '(directory)', 'template directory does not exist'))
      else if (!statSync(dir).isDirectory()) errors.push(new TemplateError(shownPath(dir), '(directory)', 'is not a directory'))
      else templates.push(...loadRoot(dir, opts.registry, errors))
    }
    return { catalog: new TemplateCatalog(templates, errors), errors }
  }

  /** Like check(), but any problem throws TemplateErrors listing all of them. */
  static load(opts: { builtinDir: string | null; extraDirs: string[]; registry: ProcessorRegistry }): TemplateCatalog {
    const { catalog, errors } = TemplateCatalog.check(opts)
    if (errors.length > 0) throw new TemplateErrors(errors)
    return catalog
  }

  list(): PipelineTemplate[] {
    return [...this.byId.values()].sort((a, b) => a.id.localeCompare(b.id))
  }

  get(provider: string, domain: string, pipeline: string): PipelineTemplate | undefined {
    if (!SEGMENT.test(provider) || !SEGMENT.test(domain) || !SEGMENT.test(pipeline)) return undefined
    return this.byId.get(`${provider}/${domain}/${pipeline}`)
  }

  getById(id: string): PipelineTemplate | undefined {
    return this.byId.get(id)
  }

  /** Applies defaults (date `today`/`yesterday` in UTC at `now`) and checks every value; failing paths only, never values. */
  validateParameters(template: PipelineTemplate, input: unknown, now: number = Date.now()): ValidatedParameters {
    const errors: FieldIssue[] = []
    const given: Obj = input === undefined || input === null ? {} : isObj(input) ? input : {}
    if (input !== undefined && input !== null && !isObj(input)) {
      return { ok: false, fields: ['parameters'], errors: [{ path: 'parameters', message: 'must be an object' }] }
    }
    for (const k of Object.keys(given)) {
      if (!(k in template.parameters)) errors.push({ path: `parameters.${k.slice(0, 64)}`, message: 'is not a parameter of this pipeline' })
    }
    const out: Record<string, string | number> = {}
    for (const [name, spec] of Object.entries(template.parameters)) {
      let v = given[name]
      if (v === undefined && spec.default !== undefined) {
        if (spec.type === 'date' && (spec.default === 'today' || spec.default === 'yesterday')) {
          v = new Date(now - (spec.default === 'yesterday' ? 86_400_000 : 0)).toISOString().slice(0, 10)
        } else v = spec.default
      }
      if (v === undefined) {
        if (spec.required) errors.push({ path: `parameters.${name}`, message: 'is required' })
        continue
      }
      const checked = checkValue(spec, v)
      if (checked === undefined) errors.push({ path: `parameters.${name}`, message: parameterRule(spec) })
      else out[name] = checked
    }
    return errors.length ? { ok: false, fields: errors.map((e) => e.path), errors } : { ok: true, parameters: out }
  }
}
