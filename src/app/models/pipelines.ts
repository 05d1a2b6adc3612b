// Run parameters as clients send them: a small map of named scalars. Each template then checks
// names, types and bounds of its own parameters.
import Type from 'typebox'

export const ParamValue = Type.Union([
  Type.String({ maxLength: 4096 }),
  Type.Integer({ minimum: -9007199254740991, maximum: 9007199254740991 }),
])

export const Parameters = Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), ParamValue, {
  maxProperties: 20,
  additionalProperties: false,
})
