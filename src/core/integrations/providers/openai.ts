// OpenAI API keys. Project/user keys are checked with GET /v1/models; admin keys (sk-admin-, needed by
// the usage and cost APIs) cannot list models, so they are checked with the admin users list.
import { checkApiKey, optionalString } from './common.js'
import { expectList, joinUrl, outcome, VALIDATION_MAX_BYTES, VALIDATION_TIMEOUT_MS } from './outcome.js'
import { CredentialFormatError, type ProviderModule } from './types.js'

export const openaiProvider: ProviderModule = {
  name: 'openai',
  checkFormat(credential, metadata) {
    checkApiKey(credential, 'sk-')
    if (credential.startsWith('sk-ant-')) throw new CredentialFormatError('credential', 'is an Anthropic key')
    optionalString(metadata, 'organization_id', /^org-[A-Za-z0-9]{1,64}$/)
    optionalString(metadata, 'project_id', /^proj_[A-Za-z0-9]{1,64}$/)
    return metadata
  },
  validate(credential, _metadata, http, cfg, signal) {
    const path = credential.startsWith('sk-admin-') ? '/v1/organization/users?limit=1' : '/v1/models'
    return outcome(async () => {
      const res = await http.request(joinUrl(cfg.providers.openaiBaseUrl, path), {
        headers: { authorization: `Bearer ${credential}`, accept: 'application/json' },
        signal,
        timeoutMs: VALIDATION_TIMEOUT_MS,
        maxBytes: VALIDATION_MAX_BYTES,
      })
      expectList(res)
    })
  },
}
