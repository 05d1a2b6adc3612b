// Prefixed, time-ordered random identifiers (run_..., key_..., cred_...). One place makes them.
import { randomFillSync } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/**
 * CSPRNG bytes drawn 4 KB at a time and handed out once each, as Node does for randomUUID: a
 * randomBytes call per id cost about 10 µs, two per admission (run and audit ids).
 */
const pool = Buffer.alloc(4096)
let poolUsed = pool.length

function nextRandomByte(): number {
  if (poolUsed === pool.length) {
    randomFillSync(pool)
    poolUsed = 0
  }
  return pool[poolUsed++]!
}

/** Uniform base62 string from the CSPRNG (rejection sampling, no modulo bias). */
export function randomBase62(length: number): string {
  let out = ''
  while (out.length < length) {
    const b = nextRandomByte()
    if (b < 248) out += ALPHABET[b % 62]
  }
  return out
}

export type IdPrefix = 'org' | 'key' | 'sub' | 'cred' | 'run' | 'step' | 'sch' | 'aud' | 'req' | 'del' | 'whk' | 'dlv'

export function newId(prefix: IdPrefix, now = Date.now()): string {
  return `${prefix}_${now.toString(36).padStart(9, '0')}${randomBase62(14)}`
}

export const ID_PATTERN = '^[a-z]{2,5}_[0-9A-Za-z]{10,40}$'
