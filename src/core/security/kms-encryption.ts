// Envelope encryption. Each secret gets a fresh 256-bit data key (DEK); the secret is sealed with
// AES-256-GCM under the DEK, and the DEK is wrapped by the KMS key-encryption key. The additional
// authenticated data binds both layers to the owning org, the purpose and the record id, so a
// ciphertext copied to another org or row fails to decrypt. Plaintexts are returned to the caller
// and never cached here.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import type { Config } from '../config.js'

export interface KmsProvider {
  readonly name: 'local' | 'gcp'
  /** Version label of the key that wrap() uses now. */
  currentKeyVersion(): string
  wrap(dek: Buffer, aad: Buffer): Promise<{ wrapped: string; keyVersion: string }>
  unwrap(wrapped: string, aad: Buffer, keyVersion: string): Promise<Buffer>
  close?(): Promise<void>
}

export interface EncryptionContext {
  org_slug: string
  purpose: 'api_key' | 'integration' | 'webhook'
  resource_id: string
  provider?: string
}

export interface SealedSecret {
  ciphertext: string // base64(iv | tag | ct)
  wrapped_key: string
  kms_provider: string
  kms_key_version: string
}

export class DecryptionError extends Error {
  constructor() {
    super('secret could not be decrypted')
    this.name = 'DecryptionError'
  }
}

/** The KMS could not be reached or did not answer in time; the secret itself may be fine. */
export class KmsUnavailableError extends Error {
  constructor(readonly code: 'TIMEOUT' | 'UNAVAILABLE') {
    super(`kms ${code.toLowerCase()}`)
    this.name = 'KmsUnavailableError'
  }
}

export function contextAad(ctx: EncryptionContext): Buffer {
  // Fixed field order; values are validated identifiers, so no separator can be smuggled in.
  return Buffer.from(
    `tenantflow:v1|org=${ctx.org_slug}|purpose=${ctx.purpose}|provider=${ctx.provider ?? '-'}|id=${ctx.resource_id}`,
    'utf8',
  )
}

export function gcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(aad)
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')
}

export function gcmOpen(key: Buffer, sealed: string, aad: Buffer): Buffer {
  const raw = Buffer.from(sealed, 'base64')
  if (raw.length < 29) throw new DecryptionError()
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
    decipher.setAAD(aad)
    decipher.setAuthTag(raw.subarray(12, 28))
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()])
  } catch {
    throw new DecryptionError()
  }
}

/** Local KMS: the key-encryption key is a 32-byte master key from the environment. Older versions may be kept for unwrap. */
export class LocalKms implements KmsProvider {
  readonly name = 'local' as const
  private readonly keys: Map<string, Buffer>
  constructor(private readonly current: { version: string; key: Buffer }, previous: { version: string; key: Buffer }[] = []) {
    if (current.key.length !== 32) throw new Error('local KMS master key must be 32 bytes')
    this.keys = new Map(previous.map((p) => [p.version, p.key]))
    this.keys.set(current.version, current.key)
  }
  currentKeyVersion(): string {
    return this.current.version
  }
  async wrap(dek: Buffer, aad: Buffer) {
    return { wrapped: gcmSeal(this.current.key, dek, aad), keyVersion: this.current.version }
  }
  async unwrap(wrapped: string, aad: Buffer, keyVersion: string): Promise<Buffer> {
    const key = this.keys.get(keyVersion)
    if (!key) throw new DecryptionError()
    return gcmOpen(key, wrapped, aad)
  }
}

export async function encryptSecret(kms: KmsProvider, plaintext: string, ctx: EncryptionContext): Promise<SealedSecret> {
  if (!plaintext) throw new Error('refusing to encrypt an empty secret')
  const aad = contextAad(ctx)
  const dek = randomBytes(32)
  try {
    const ciphertext = gcmSeal(dek, Buffer.from(plaintext, 'utf8'), aad)
    const { wrapped, keyVersion } = await kms.wrap(dek, aad)
    return { ciphertext, wrapped_key: wrapped, kms_provider: kms.name, kms_key_version: keyVersion }
  } finally {
    dek.fill(0)
  }
}

export async function decryptSecret(kms: KmsProvider, sealed: SealedSecret, ctx: EncryptionContext): Promise<string> {
  if (!sealed.ciphertext || !sealed.wrapped_key) throw new DecryptionError()
  if (sealed.kms_provider !== kms.name) throw new DecryptionError()
  const aad = contextAad(ctx)
  const dek = await kms.unwrap(sealed.wrapped_key, aad, sealed.kms_key_version)
  try {
    return gcmOpen(dek, sealed.ciphertext, aad).toString('utf8')
  } finally {
    dek.fill(0)
  }
}

/**
 * Re-wraps only the data key under the KMS's current key version. The secret's ciphertext is
 * unchanged, so no plaintext is produced; the DEK exists in memory only for this call.
 */
export async function rewrapSecret(kms: KmsProvider, sealed: SealedSecret, ctx: EncryptionContext): Promise<SealedSecret> {
  if (!sealed.ciphertext || !sealed.wrapped_key) throw new DecryptionError()
  if (sealed.kms_provider !== kms.name) throw new DecryptionError()
  const aad = contextAad(ctx)
  const dek = await kms.unwrap(sealed.wrapped_key, aad, sealed.kms_key_version)
  try {
    // Prove the DEK opens this ciphertext before re-wrapping, so a mismatched row is never "fixed".
    gcmOpen(dek, sealed.ciphertext, aad).fill(0)
    const { wrapped, keyVersion } = await kms.wrap(dek, aad)
    return { ciphertext: sealed.ciphertext, wrapped_key: wrapped, kms_provider: kms.name, kms_key_version: keyVersion }
  } finally {
    dek.fill(0)
  }
}

/** The configured KMS. The GCP client is loaded only when used. */
export async function createKms(config: Pick<Config, 'kms'>): Promise<KmsProvider> {
  const k = config.kms
  if (k.provider === 'gcp') {
    if (!k.gcpKeyName) throw new Error('GCP_KMS_KEY_NAME is not set')
    const { GcpKms } = await import('./gcp-kms.js')
    return new GcpKms({ keyName: k.gcpKeyName, endpoint: k.gcpEndpoint, timeoutMs: k.timeoutMs })
  }
  if (!k.localMasterKey) throw new Error('KMS_LOCAL_MASTER_KEY is not set')
  return new LocalKms({ version: k.localMasterKeyVersion, key: k.localMasterKey }, k.localPreviousKeys ?? [])
}
