// Prefixed, time-ordered random identifiers (run_..., key_..., cred_...). One place makes them.
import { randomBytes } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** Uniform base62 string from the CSPRNG (rejection sampling, no modulo bias). */
export function randomBase62(length: number): string {
  let out = ''
  while (out.length < length) {
    const buf = randomBytes(length * 2)
    for (const b of buf) {
      if (b < 248) out += ALPHABET[b % 62]
      if (out.length === length) break
    }
  }
  return out
}

export type IdPrefix = 'org' | 'key' | 'sub' | 'cred' | 'run' | 'step' | 'sch' | 'aud' | 'req' | 'del' | 'whk' | 'dlv'

export function newId(prefix: IdPrefix, now = Date.now()): string {
  return `${prefix}_${now.toString(36).padStart(9, '0')}${randomBase62(14)}`
}

export const ID_PATTERN = '^[a-z]{2,5}_[0-9A-Za-z]{10,40}$'
