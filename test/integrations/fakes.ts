// Local HTTP servers (127.0.0.1, random port) speaking the documented response shapes of the
// providers the integrations talk to. Test data is made here; nothing leaves the machine.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createVerify, generateKeyPairSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'

export interface SeenRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
  body: string
}

export interface Upstream {
  url: string
  requests: SeenRequest[]
  connections: number
  close(): Promise<void>
}

type Handler = (req: SeenRequest, res: ServerResponse) => void

export async function startUpstream(handler: Handler): Promise<Upstream> {
  const requests: SeenRequest[] = []
  const state = { connections: 0 }
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body }
      requests.push(seen)
      handler(seen, res)
    })
  })
  server.on('connection', () => state.connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get connections() {
      return state.connections
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

/** Accepts the connection and never answers. */
export const hang: Handler = () => {}

/** OpenAI GET /v1/models (and the admin users list). A bad key gets OpenAI's 401, which echoes part of the key. */
export function openaiFake(validKey: string): Handler {
  return (req, res) => {
    const auth = req.headers.authorization ?? ''
    if (auth !== `Bearer ${validKey}`) {
      return json(res, 401, {
        error: { message: `Incorrect API key provided: ${auth.slice(7)}.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      })
    }
    if (req.path === '/v1/models') {
      return json(res, 200, {
        object: 'list',
        data: [
          { id: 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' },
          { id: 'text-embedding-3-small', object: 'model', created: 1705948997, owned_by: 'system' },
        ],
      })
    }
    if (req.path.startsWith('/v1/organization/users')) {
      return json(res, 200, { object: 'list', data: [], first_id: null, last_id: null, has_more: false })
    }
    json(res, 404, { error: { message: 'not found' } })
  }
}

/** Anthropic GET /v1/models with x-api-key + anthropic-version. */
export function anthropicFake(validKey: string): Handler {
  return (req, res) => {
    if (req.headers['x-api-key'] !== validKey || req.headers['anthropic-version'] !== '2023-06-01') {
      return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key ${req.headers['x-api-key']}` } })
    }
    if (req.path.startsWith('/v1/models')) {
      return json(res, 200, {
        data: [{ type: 'model', id: 'claude-sonnet-4-20250514', display_name: 'Claude Sonnet 4', created_at: '2025-05-22T00:00:00Z' }],
        has_more: false,
        first_id: 'claude-sonnet-4-20250514',
        last_id: 'claude-sonnet-4-20250514',
      })
    }
    json(res, 404, { type: 'error', error: { type: 'not_found_error', message: 'not found' } })
  }
}

export interface ServiceAccountFixture {
  json: string
  publicKeyPem: string
  clientEmail: string
  projectId: string
}

export function makeServiceAccount(tokenUri: string, projectId = 'acme-billing-1'): ServiceAccountFixture {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const clientEmail = `tenantflow@${projectId}.iam.gserviceaccount.com`
  const sa = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: clientEmail,
    client_id: '104857600000000000001',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUri,
  }
  return { json: JSON.stringify(sa, null, 2), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), clientEmail, projectId }
}

export interface GoogleFakeState {
  /** Claims of the last accepted assertion. */
  claims?: Record<string, unknown>
  token: string
}

/**
 * Google's OAuth2 token endpoint (POST /token, JWT-bearer grant, RS256 verified with the SA's public key)
 * and Cloud Resource Manager GET /v1/projects/{id} with the issued token.
 */
export function googleFake(sa: () => ServiceAccountFixture, audience: () => string, state: GoogleFakeState): Handler {
  return (req, res) => {
    if (req.method === 'POST' && req.path === '/token') {
      const form = new URLSearchParams(req.body)
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(res, 400, { error: 'unsupported_grant_type' })
      const [h, c, s] = (form.get('assertion') ?? '').split('.')
      const ok = !!h && !!c && !!s && createVerify('RSA-SHA256').update(`${h}.${c}`).verify(sa().publicKeyPem, Buffer.from(s, 'base64url'))
      if (!ok) return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' })
      const claims = JSON.parse(Buffer.from(c!, 'base64url').toString()) as Record<string, unknown>
      const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>
      const now = Math.floor(Date.now() / 1000)
      if (
        header.alg !== 'RS256' || claims.iss !== sa().clientEmail || claims.aud !== audience() ||
        claims.scope !== 'https://www.googleapis.com/auth/cloud-platform' ||
        typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || Math.abs(claims.iat - now) > 60 || claims.exp - claims.iat > 3600
      ) {
        return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT claims.' })
      }
      state.claims = claims
      return json(res, 200, { access_token: state.token, expires_in: 3599, token_type: 'Bearer' })
    }
    const m = /^\/v1\/projects\/([^/?]+)$/.exec(req.path)
    if (req.method === 'GET' && m) {
      if (req.headers.authorization !== `Bearer ${state.token}`) {
        return json(res, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } })
      }
      return json(res, 200, { projectNumber: '415104041262', projectId: m[1], lifecycleState: 'ACTIVE', name: 'Acme', createTime: '2024-01-01T00:00:00.000Z' })
    }
    json(res, 404, { error: { code: 404, message: 'not found', status: 'NOT_FOUND' } })
  }
}
