// Checks shared by the API-key providers.
import { CredentialFormatError } from './types.js'

/** Printable ASCII without whitespace: what a key pasted into a header may contain. */
export function checkApiKey(credential: string, prefix: string, field = 'credential'): void {
  if (!credential.startsWith(prefix)) throw new CredentialFormatError(field, `must start with ${prefix}`)
  if (!/^[\x21-\x7e]+$/.test(credential)) throw new CredentialFormatError(field, 'must not contain spaces or control characters')
  if (credential.length < 20 || credential.length > 512) throw new CredentialFormatError(field, 'has an unexpected length')
}

export function optionalString(metadata: Record<string, unknown>, key: string, pattern: RegExp): string | undefined {
  const v = metadata[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string' || !pattern.test(v)) throw new CredentialFormatError(`metadata.${key}`, 'has an invalid format')
  return v
}
