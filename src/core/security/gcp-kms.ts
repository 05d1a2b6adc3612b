// Cloud KMS as the key-encryption key (KMS_PROVIDER=gcp). Data keys are wrapped with the KMS
// `encrypt` method and unwrapped with `decrypt`, both with the envelope AAD as
// additionalAuthenticatedData, so KMS itself refuses a wrapped key moved to another org or row.
// The REST transport (`fallback: 'rest'`) is used: no gRPC channel, and `GCP_KMS_ENDPOINT` may point
// at any http(s) host:port (tests run a local server speaking the REST shape).
import { KeyManagementServiceClient } from '@google-cloud/kms'
import { DecryptionError, KmsUnavailableError, type KmsProvider } from './kms-encryption.js'

export interface GcpKmsOptions {
  /** projects/*\/locations/*\/keyRings/*\/cryptoKeys/* */
  keyName: string
  /** Override of the API endpoint, e.g. http://127.0.0.1:8085 (null = cloudkms.googleapis.com). */
  endpoint: string | null
  /** Bound on every KMS call. */
  timeoutMs: number
  /** Credentials; by default Application Default Credentials. Tests inject a client holding a fixed token. */
  authClient?: ClientOptions['authClient']
}

type ClientOptions = NonNullable<ConstructorParameters<typeof KeyManagementServiceClient>[0]>
type Cancellable<T> = Promise<T> & { cancel?: () => void }
type InnerCall = (request: object, options: object) => Cancellable<[Record<string, unknown>, unknown, unknown]>

const INVALID_ARGUMENT = 3
const FAILED_PRECONDITION = 9

function endpointOptions(endpoint: string | null): Record<string, unknown> {
  if (!endpoint) return {}
  const u = new URL(endpoint)
  const protocol = u.protocol.replace(':', '')
  return { apiEndpoint: u.hostname, port: Number(u.port || (protocol === 'https' ? 443 : 80)), protocol }
}

function bytesToBase64(v: unknown): string {
  if (typeof v === 'string') return v // proto3 JSON form is already base64
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64')
  throw new KmsUnavailableError('UNAVAILABLE')
}

export class GcpKms implements KmsProvider {
  readonly name = 'gcp' as const
  private readonly client: KeyManagementServiceClient
  private readonly keyName: string
  private readonly timeoutMs: number
  private lastVersion: string | null = null

  constructor(opts: GcpKmsOptions) {
    this.keyName = opts.keyName
    this.timeoutMs = opts.timeoutMs
    this.client = new KeyManagementServiceClient({
      fallback: 'rest',
      ...endpointOptions(opts.endpoint),
      ...(opts.authClient ? { authClient: opts.authClient } : {}),
    })
  }

  /** The key version KMS used for the last wrap (KMS picks the primary); the key name until then. */
  currentKeyVersion(): string {
    return this.lastVersion ?? this.keyName
  }

  async wrap(dek: Buffer, aad: Buffer): Promise<{ wrapped: string; keyVersion: string }> {
    const res = await this.call('encrypt', { name: this.keyName, plaintext: dek, additionalAuthenticatedData: aad })
    const version = res.name
    if (typeof version !== 'string' || !version.startsWith(`${this.keyName}/cryptoKeyVersions/`)) {
      throw new KmsUnavailableError('UNAVAILABLE')
    }
    this.lastVersion = version
    return { wrapped: bytesToBase64(res.ciphertext), keyVersion: version }
  }

  async unwrap(wrapped: string, aad: Buffer, keyVersion: string): Promise<Buffer> {
    // The ciphertext names its version; decrypt is addressed to the CryptoKey.
    if (!keyVersion.startsWith(`${this.keyName}/cryptoKeyVersions/`)) throw new DecryptionError()
    const res = await this.call('decrypt', {
      name: this.keyName,
      ciphertext: Buffer.from(wrapped, 'base64'),
      additionalAuthenticatedData: aad,
    })
    const plaintext = Buffer.from(bytesToBase64(res.plaintext), 'base64')
    if (plaintext.length !== 32) throw new DecryptionError()
    return plaintext
  }

  async close(): Promise<void> {
    await this.client.close()
  }

  /**
   * Calls through `innerApiCalls` (declared public in the client's typings) rather than
   * `client.encrypt()`: that wrapper logs the request, our data key, when GOOGLE_SDK_NODE_LOGGING is
   * set, and returns a promise without the underlying call's cancel(), which the timeout needs.
   */
  private async call(method: 'encrypt' | 'decrypt', request: Record<string, unknown>): Promise<Record<string, unknown>> {
    let timer: NodeJS.Timeout | undefined
    let pending: Cancellable<[Record<string, unknown>, unknown, unknown]> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        pending?.cancel?.()
        reject(new KmsUnavailableError('TIMEOUT'))
      }, this.timeoutMs)
    })
    try {
      const init = this.client.initialize()
      await Promise.race([init, timeout])
      const inner = this.client.innerApiCalls[method] as InnerCall
      pending = inner(request, {
        timeout: this.timeoutMs,
        maxRetries: 0,
        otherArgs: { headers: { 'x-goog-request-params': `name=${encodeURIComponent(this.keyName)}` } },
      })
      const [response] = await Promise.race([pending, timeout])
      return response
    } catch (err) {
      if (err instanceof KmsUnavailableError) throw err
      // KMS answers a wrong AAD or a foreign ciphertext with 400 INVALID_ARGUMENT: the secret is
      // unusable, KMS is fine. Over REST the error carries the HTTP status (gaxios) or the gRPC code (gax).
      const { code, status } = err as { code?: unknown; status?: unknown }
      const invalid = code === INVALID_ARGUMENT || code === FAILED_PRECONDITION || code === 400 || status === 400
      if (method === 'decrypt' && invalid) throw new DecryptionError()
      throw new KmsUnavailableError('UNAVAILABLE')
    } finally {
      clearTimeout(timer)
    }
  }
}
