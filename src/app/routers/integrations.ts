// Integrations (SPEC §7): an org stores, checks, reads the status of and deletes its provider
// credentials. Org key only. Responses carry name, fingerprint, status and sanitized error codes;
// the credential itself never leaves the request that submitted it.
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError } from '../errors.js'
import { actorOf } from '../dependencies/auth.js'
import { errorResponses, iso, OrgSlug, Strict } from '../models/common.js'
import { CredentialError } from '../../core/integrations/errors.js'
import {
  deleteCredential,
  getCredentialStatus,
  listCredentials,
  revalidateCredential,
  setupCredential,
  type CredentialDeps,
  type CredentialView,
} from '../../core/integrations/credentials.js'
import { PROVIDER_NAMES } from '../../core/integrations/providers/index.js'

const Provider = Type.Union([Type.Literal('openai'), Type.Literal('anthropic'), Type.Literal('gcp'), Type.Literal('http')])
// The path enum is the registry: a provider added there must be added here (checked at startup).
if (JSON.stringify(Provider.anyOf.map((s) => s.const).sort()) !== JSON.stringify([...PROVIDER_NAMES].sort())) {
  throw new Error('integration route provider enum is out of sync with the provider registry')
}
const ProviderParams = Strict({ org_slug: OrgSlug, provider: Provider })
const OrgParams = Strict({ org_slug: OrgSlug })

const MetadataValue = Type.Union([Type.String({ maxLength: 2048 }), Type.Number({ minimum: -1e15, maximum: 1e15 }), Type.Boolean()])
const SetupBody = Strict({
  credential: Type.String({ minLength: 10, maxLength: 65536 }),
  credential_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f]+$' })),
  metadata: Type.Optional(
    Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), MetadataValue, { maxProperties: 32, additionalProperties: false }),
  ),
  skip_validation: Type.Optional(Type.Boolean()),
  store_invalid: Type.Optional(
    Type.Boolean({ description: 'Store the credential as INVALID (replacing the active one) even when the live check refuses it; default false answers 422 CREDENTIAL_REJECTED and keeps the active one.' }),
  ),
})

const Status = Type.Union([Type.Literal('VALID'), Type.Literal('INVALID'), Type.Literal('PENDING')])
const ErrorCode = Type.Union([Type.String({ maxLength: 32 }), Type.Null()])

const SetupResponse = Strict({
  provider: Provider,
  status: Status,
  credential_id: Type.String({ maxLength: 48 }),
  fingerprint: Type.String({ maxLength: 4 }),
})

const StatusView = Strict({
  provider: Provider,
  status: Type.Union([Type.Literal('VALID'), Type.Literal('INVALID'), Type.Literal('PENDING'), Type.Literal('NOT_CONFIGURED')]),
  credential_id: Type.Union([Type.String({ maxLength: 48 }), Type.Null()]),
  credential_name: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
  fingerprint: Type.Union([Type.String({ maxLength: 4 }), Type.Null()]),
  last_validated_at: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
  last_error_code: ErrorCode,
  created_at: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
  updated_at: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
})

const ListResponse = Strict({
  org_slug: Type.String({ maxLength: 64 }),
  integrations: Type.Array(StatusView, { maxItems: 10 }),
  all_valid: Type.Boolean(),
  providers_configured: Type.Array(Provider, { maxItems: 10 }),
})

const DeleteResponse = Strict({
  provider: Provider,
  deleted: Type.Boolean(),
  credentials_destroyed: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
})

const noStore = { 'Cache-Control': 'no-store' }

function statusView(v: CredentialView) {
  return {
    provider: v.provider,
    status: v.status,
    credential_id: v.credential_id,
    credential_name: v.credential_name,
    fingerprint: v.fingerprint,
    last_validated_at: iso(v.last_validated_at),
    last_error_code: v.last_error_code,
    created_at: iso(v.created_at),
    updated_at: iso(v.updated_at),
  }
}

/** Service errors → the API catalogue. Nothing from the error text reaches the client. */
async function mapped<T>(work: Promise<T>, notConfigured: 'NOT_FOUND' | 'INTEGRATION_NOT_CONFIGURED' = 'NOT_FOUND'): Promise<T> {
  try {
    return await work
  } catch (err) {
    if (!(err instanceof CredentialError)) throw err
    switch (err.code) {
      case 'INVALID_CREDENTIAL_FORMAT':
        throw new ApiError('INVALID_CREDENTIAL_FORMAT', { fields: fieldPaths(err) })
      case 'DESTINATION_NOT_ALLOWED':
      case 'CREDENTIAL_REJECTED':
        // Mapped only by the routes that check a destination or a credential live (the two wrappers below).
        throw err
      case 'UNSUPPORTED_PROVIDER':
        throw new ApiError('UNSUPPORTED_PROVIDER')
      case 'INTEGRATION_NOT_CONFIGURED':
        throw new ApiError(notConfigured)
      case 'CREDENTIAL_INVALID':
      case 'CREDENTIAL_PENDING':
        // Only the use-time checks raise these; the integration routes never do.
        throw err
      case 'CREDENTIAL_UNUSABLE':
        throw new ApiError('CREDENTIAL_UNUSABLE')
      case 'KMS_UNAVAILABLE':
        throw new ApiError('SERVICE_UNAVAILABLE')
    }
  }
}

const fieldPaths = (err: CredentialError) => (err.field ? [`body/${err.field.replace(/\./g, '/')}`] : [])

/** A URL the egress policy refuses (setup; validate of a credential whose host was removed since). */
async function refusedDestination<T>(work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    if (!(err instanceof CredentialError) || err.code !== 'DESTINATION_NOT_ALLOWED') throw err
    throw new ApiError('DESTINATION_NOT_ALLOWED', { fields: fieldPaths(err).map((path) => ({ path, message: 'is not an allowed destination' })) })
  }
}

/** Setup only: the provider refused the credential (nothing stored). */
async function rejectedCredential<T>(work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    if (!(err instanceof CredentialError) || err.code !== 'CREDENTIAL_REJECTED') throw err
    throw new ApiError('CREDENTIAL_REJECTED', { reason: err.reason })
  }
}

export function credentialDeps(ctx: AppContext): CredentialDeps {
  return { db: ctx.db, kms: ctx.kms, egress: ctx.egress, config: ctx.config, now: () => ctx.clock.now(), orgHosts: ctx.egressHosts }
}

export function integrationRoutes(app: App, ctx: AppContext): void {
  const deps = credentialDeps(ctx)

  app.post(
    '/api/v1/integrations/:org_slug/:provider/setup',
    {
      config: { auth: 'org' },
      schema: { params: ProviderParams, body: SetupBody, response: { 200: SetupResponse, ...errorResponses } },
    },
    async (req, reply) => {
      const result = await mapped(rejectedCredential(refusedDestination(
        setupCredential(deps, {
          org_slug: req.params.org_slug,
          provider: req.params.provider,
          credential: req.body.credential,
          credential_name: req.body.credential_name ?? null,
          metadata: req.body.metadata ?? null,
          skip_validation: req.body.skip_validation ?? false,
          store_invalid: req.body.store_invalid ?? false,
          actor: actorOf(req),
          request_id: String(req.id),
        }),
      )))
      reply.headers(noStore)
      return result
    },
  )

  app.post(
    '/api/v1/integrations/:org_slug/:provider/validate',
    { config: { auth: 'org' }, schema: { params: ProviderParams, body: Strict({}), response: { 200: StatusView, ...errorResponses } } },
    async (req, reply) => {
      const view = await mapped(refusedDestination(
        revalidateCredential(deps, { org_slug: req.params.org_slug, provider: req.params.provider, actor: actorOf(req), request_id: String(req.id) }),
      ))
      reply.headers(noStore)
      return statusView(view)
    },
  )

  app.get(
    '/api/v1/integrations/:org_slug',
    { config: { auth: 'org' }, schema: { params: OrgParams, response: { 200: ListResponse, ...errorResponses } } },
    async (req, reply) => {
      const views = await listCredentials(ctx.db, req.params.org_slug)
      reply.headers(noStore)
      const configured = views.filter((v) => v.status !== 'NOT_CONFIGURED')
      return {
        org_slug: req.params.org_slug,
        integrations: views.map(statusView),
        all_valid: configured.length > 0 && configured.every((v) => v.status === 'VALID'),
        providers_configured: configured.map((v) => v.provider),
      }
    },
  )

  app.get(
    '/api/v1/integrations/:org_slug/:provider',
    { config: { auth: 'org' }, schema: { params: ProviderParams, response: { 200: StatusView, ...errorResponses } } },
    async (req, reply) => {
      const view = await mapped(getCredentialStatus(ctx.db, req.params.org_slug, req.params.provider))
      reply.headers(noStore)
      return statusView(view)
    },
  )

  app.delete(
    '/api/v1/integrations/:org_slug/:provider',
    { config: { auth: 'org' }, schema: { params: ProviderParams, body: Strict({}), response: { 200: DeleteResponse, ...errorResponses } } },
    async (req, reply) => {
      const destroyed = await mapped(
        deleteCredential(deps, { org_slug: req.params.org_slug, provider: req.params.provider, actor: actorOf(req), request_id: String(req.id) }),
      )
      reply.headers(noStore)
      return { provider: req.params.provider, deleted: true, credentials_destroyed: destroyed }
    },
  )
}
