// Anthropic keys. API keys are checked with GET /v1/models; Admin API keys (sk-ant-admin..., needed by
// the usage report) are checked with the Admin API's user list, which is what they can read.
import { checkApiKey } from './common.js'
import { expectList, joinUrl, outcome, VALIDATION_MAX_BYTES, VALIDATION_TIMEOUT_MS } from './outcome.js'
import type { ProviderModule } from './types.js'

export const ANTHROPIC_VERSION = '2023-06-01'

export const anthropicProvider: ProviderModule = {
  name: 'anthropic',
  checkFormat(credential, metadata) {
    checkApiKey(credential, 'sk-ant-')
    return metadata
  },
  validate(credential, _metadata, http, cfg, signal) {
    const path = credential.startsWith('sk-ant-admin') ? '/v1/organizations/users?limit=1' : '/v1/models'
    return outcome(async () => {
      const res = await http.request(joinUrl(cfg.providers.anthropicBaseUrl, path), {
        headers: { 'x-api-key': credential, 'anthropic-version': ANTHROPIC_VERSION, accept: 'application/json' },
        signal,
        timeoutMs: VALIDATION_TIMEOUT_MS,
        maxBytes: VALIDATION_MAX_BYTES,
      })
      expectList(res)
    })
  },
}
