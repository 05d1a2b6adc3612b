// Org API keys: `tf_` + 30 base62 chars (~178 random bits) + 6 base62 chars of CRC32 over the body.
// The checksum lets us reject typos and look-alikes without touching the database.
import { hash } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { randomBase62 } from '../ids.js'

const PREFIX = 'tf_'
const BODY_LEN = 30
const CHECK_LEN = 6
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const API_KEY_PATTERN = /^tf_[0-9A-Za-z]{36}$/

function checksum(body: string): string {
  let n = crc32(body) >>> 0
  let out = ''
  for (let i = 0; i < CHECK_LEN; i++) {
    out = ALPHABET[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

export function generateApiKey(): string {
  const body = randomBase62(BODY_LEN)
  return PREFIX + body + checksum(body)
}

/** Format and checksum only; no I/O. */
export function isWellFormedApiKey(key: string): boolean {
  if (key.length !== PREFIX.length + BODY_LEN + CHECK_LEN || !API_KEY_PATTERN.test(key)) return false
  const body = key.slice(PREFIX.length, PREFIX.length + BODY_LEN)
  return checksum(body) === key.slice(PREFIX.length + BODY_LEN)
}

export function hashApiKey(key: string): string {
  // One-shot hash: a quarter of createHash's cost, on every authenticated request.
  return hash('sha256', key, 'hex')
}

export function fingerprintOf(key: string): string {
  return key.slice(-4)
}
