import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TemplateCatalog, TemplateError } from '../../src/core/pipelines/templates.js'
import { Gates, testRegistry, TEST_TEMPLATES, writeTemplates } from './fixtures.js'

const registry = testRegistry(new Gates())
const load = (files: Record<string, string>) => TemplateCatalog.load({ builtinDir: writeTemplates(files), extraDirs: [], registry })

function rejects(files: Record<string, string>, file: string, field: string) {
  assert.throws(
    () => load(files),
    (e: unknown) => {
      assert.ok(e instanceof TemplateError, String(e))
      assert.ok(e.file.endsWith(file), `file ${e.file} should end with ${file}`)
      assert.equal(e.field, field)
      assert.ok(e.message.includes(file) && e.message.includes(field))
      return true
    },
  )
}

const step = (extra = '') => `steps:\n  - id: a\n    processor: test.noop\n${extra}`

test('the test templates load, with ids derived from their paths', () => {
  const c = load(TEST_TEMPLATES)
  assert.ok(c.get('test', 'basic', 'dag'))
  assert.equal(c.get('test', 'basic', 'dag')!.id, 'test/basic/dag')
  assert.deepEqual(c.get('test', 'basic', 'dag')!.steps.map((s) => [s.id, s.after]), [['a', []], ['b', ['a']], ['c', ['a']], ['d', ['b', 'c']]])
  assert.deepEqual(c.get('test', 'basic', 'fail')!.steps[1]!.after, ['boom'], 'no depends_on = after the previous step')
  assert.equal(c.get('test', 'basic', '../x'), undefined)
  assert.equal(c.list().length, Object.keys(TEST_TEMPLATES).length)
})

test('bad templates name the file and the field', () => {
  const f = 'p/d/bad.yml'
  rejects({ [f]: `description: x\nsurprise: 1\n${step()}` }, f, 'surprise')
  rejects({ [f]: `description: x\n${step('    colour: red\n')}` }, f, 'steps[0].colour')
  rejects({ [f]: `description: x\nsteps:\n  - id: a\n    processor: nope.missing\n` }, f, 'steps[0].processor')
  rejects({ [f]: `description: x\nsteps:\n  - id: a\n    processor: test.noop\n    depends_on: [ghost]\n` }, f, 'steps[0].depends_on[0]')
  rejects(
    { [f]: `description: x\nsteps:\n  - id: a\n    processor: test.noop\n    depends_on: [b]\n  - id: b\n    processor: test.noop\n    depends_on: [a]\n` },
    f,
    'steps[1].depends_on',
  )
  rejects({ [f]: `description: x\nsteps:\n  - id: a\n    processor: test.noop\n  - id: a\n    processor: test.noop\n` }, f, 'steps[1].id')
  rejects({ [f]: `description: x\n${step('    config: { bogus: 1 }\n')}` }, f, 'steps[0].config')
  rejects({ [f]: `id: p/d/other\ndescription: x\n${step()}` }, f, 'id')
  rejects({ [f]: `description: x\ntimeout_seconds: 0\n${step()}` }, f, 'timeout_seconds')
  rejects({ [f]: `description: x\nintegration: ftp\n${step()}` }, f, 'integration')
  rejects({ [f]: `description: x\n${step('    retries: 11\n')}` }, f, 'steps[0].retries')
  rejects({ [f]: `description: x\nparameters:\n  day: { type: date, default: tomorrow }\n${step()}` }, f, 'parameters.day.default')
  rejects({ [f]: `description: x\nparameters:\n  n: { type: string, min: 1 }\n${step()}` }, f, 'parameters.n.min')
  rejects({ [f]: `description: x\nsteps: []\n` }, f, 'steps')
  rejects({ [f]: `description: [unclosed\n` }, f, '(document)')
  rejects({ 'p/d/Bad.yml': `description: x\n${step()}` }, 'p/d/Bad.yml', 'pipeline')
})

test('an operator directory that does not exist stops startup', () => {
  assert.throws(() => TemplateCatalog.load({ builtinDir: null, extraDirs: ['/nonexistent/tf-templates'], registry }), TemplateError)
})

test('validateParameters applies defaults and reports failing paths only', () => {
  const c = load({
    'p/d/params.yml': `
description: parameters
parameters:
  date: { type: date, default: yesterday }
  limit: { type: integer, min: 1, max: 10, default: 5 }
  mode: { type: enum, values: [full, delta], required: true }
  label: { type: string, max_length: 4 }
${step()}`,
  })
  const t = c.get('p', 'd', 'params')!
  const now = Date.UTC(2026, 0, 1, 5)
  assert.deepEqual(c.validateParameters(t, { mode: 'full' }, now), { ok: true, parameters: { date: '2025-12-31', limit: 5, mode: 'full' } })
  assert.deepEqual(c.validateParameters(t, { mode: 'delta', date: '2026-02-28', limit: 10, label: 'abcd' }, now), {
    ok: true,
    parameters: { date: '2026-02-28', limit: 10, mode: 'delta', label: 'abcd' },
  })
  const bad = c.validateParameters(t, { date: '2026-02-30', limit: 11, mode: 'other', label: 'toolong', extra: 1 }, now)
  assert.equal(bad.ok, false)
  assert.ok(!bad.ok)
  assert.deepEqual(bad.fields.sort(), ['parameters.date', 'parameters.extra', 'parameters.label', 'parameters.limit', 'parameters.mode'])
  const messages = Object.fromEntries(bad.errors.map((e) => [e.path, e.message]))
  assert.equal(messages['parameters.date'], 'must be a calendar date YYYY-MM-DD')
  assert.equal(messages['parameters.label'], 'must be a string of at most 4 characters')
  assert.equal(messages['parameters.extra'], 'is not a parameter of this pipeline')
  assert.match(messages['parameters.mode']!, /^must be one of: /)
  assert.ok(!JSON.stringify(bad.errors).includes('toolong') && !JSON.stringify(bad.errors).includes('2026-02-30'), 'no value echoed')
  const missing = c.validateParameters(t, {}, now)
  assert.ok(!missing.ok)
  assert.deepEqual(missing.fields, ['parameters.mode'])
  assert.deepEqual(missing.errors, [{ path: 'parameters.mode', message: 'is required' }])
  assert.deepEqual(c.validateParameters(t, [1, 2], now), { ok: false, fields: ['parameters'], errors: [{ path: 'parameters', message: 'must be an object' }] })
})
