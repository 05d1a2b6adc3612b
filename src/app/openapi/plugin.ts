// The API documentation: the OpenAPI 3.1 document (@fastify/swagger, finished by document.ts) at
// /docs/openapi.json and the interactive Swagger UI at /docs. @fastify/swagger-ui serves the UI's
// files from its own package (no CDN, no external validator). Registered only when
// ENABLE_API_DOCS is on (default: on outside production, off in production).
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { App } from '../server.js'
import { TAGS } from './operations.js'
import { transformDocument, transformRoute } from './document.js'

/** Marks the scope whose routes (the UI's pages and assets) are public without declaring a guard. */
export const DOCS_SCOPE = 'tenantflowDocsScope'

export const API_VERSION = '0.1.0'

const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; " +
  "img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self'"

/** Must run before any route is registered: @fastify/swagger collects routes as they are added. */
export async function registerApiDocs(app: App): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'tenantflow',
        version: API_VERSION,
        description:
          'Multi-tenant pipeline orchestration. Org endpoints take the org key in `X-API-Key`; operator endpoints the root key in `X-CA-Root-Key`. ' +
          'Errors are RFC 9457 problem+json with a stable `code`. A walk-through with curl is in docs/guide.md.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      tags: TAGS.map((t) => ({ ...t })),
      components: {
        securitySchemes: {
          rootKey: { type: 'apiKey', in: 'header', name: 'X-CA-Root-Key', description: 'The operator root key (CA_ROOT_API_KEY).' },
          orgKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: "An organization's API key (returned by onboarding and rotation)." },
        },
      },
    },
    transform: transformRoute as never,
    transformObject: transformDocument as never,
  })
  await app.register(async (scope) => {
    scope.decorate(DOCS_SCOPE, true)
    scope.get('/docs/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger())
    await scope.register(swaggerUi, {
      routePrefix: '/docs',
      // Everything from this origin; no upgrade-insecure-requests (the UI must work on plain-http dev servers).
      staticCSP: DOCS_CSP,
      uiConfig: { deepLinking: true, persistAuthorization: false, tryItOutEnabled: false },
      theme: { title: 'tenantflow API' },
    })
  })
}
