// Operator-managed per-org egress allow-list (root key): the extra hosts one org's credentials,
// runs and webhooks may reach in production. A change is audited and evicts the org's cached list
// on every instance (event bus), so it applies without a restart.
import Type from 'typebox'
import type { App } from '../server.js'
import type { AppContext } from '../context.js'
import { ApiError, type FieldError } from '../errors.js'
import { actorOf } from '../dependencies/auth.js'
import { errorResponses, OrgParams, Strict } from '../models/common.js'
import { recordAudit } from '../../core/orgs/audit.js'
import { listOrgEgressHosts, MAX_ORG_EGRESS_HOSTS, normalizeEgressHost, replaceOrgEgressHosts } from '../../core/http/egress-allowlist.js'

const Host = Type.String({ minLength: 1, maxLength: 253 })
const HostList = Type.Array(Host, { maxItems: MAX_ORG_EGRESS_HOSTS })

const EgressHostsView = Strict({ org_slug: Type.String({ maxLength: 64 }), hosts: HostList })
const EgressHostsBody = Strict({
  hosts: Type.Array(Host, {
    maxItems: MAX_ORG_EGRESS_HOSTS,
    description: 'The whole list (replaces the current one): DNS names (`api.partner.example`) or `*.suffix` wildcards; [] clears it.',
  }),
})
const EgressHostsChange = Strict({ org_slug: Type.String({ maxLength: 64 }), hosts: HostList, added: HostList, removed: HostList })

const BAD_HOST = 'must be a DNS host name or *.name (no IP address, port, path, localhost or internal/metadata name)'

async function requireOrg(ctx: AppContext, orgSlug: string): Promise<void> {
  const org = await ctx.db.kysely.selectFrom('org_profiles').select('org_slug').where('org_slug', '=', orgSlug).limit(1).executeTakeFirst()
  if (!org) throw new ApiError('ORG_NOT_FOUND')
}

export function egressHostRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/admin/organizations/:org_slug/egress-hosts',
    { config: { auth: 'admin' }, schema: { params: OrgParams, response: { 200: EgressHostsView, ...errorResponses } } },
    async (req) => {
      await requireOrg(ctx, req.params.org_slug)
      return { org_slug: req.params.org_slug, hosts: await listOrgEgressHosts(ctx.db.kysely, req.params.org_slug) }
    },
  )

  app.put(
    '/api/v1/admin/organizations/:org_slug/egress-hosts',
    { config: { auth: 'admin' }, schema: { params: OrgParams, body: EgressHostsBody, response: { 200: EgressHostsChange, ...errorResponses } } },
    async (req) => {
      const org = req.params.org_slug
      const bad: FieldError[] = []
      const hosts: string[] = []
      req.body.hosts.forEach((raw, i) => {
        const h = normalizeEgressHost(raw)
        if (h === null) bad.push({ path: `body/hosts/${i}`, message: BAD_HOST })
        else hosts.push(h)
      })
      if (bad.length) throw new ApiError('VALIDATION_FAILED', { fields: bad })
      await requireOrg(ctx, org)
      const now = ctx.clock.now()
      const change = await ctx.db.kysely.transaction().execute(async (trx) => {
        const diff = await replaceOrgEgressHosts(trx, org, hosts, now)
        if (diff.added.length || diff.removed.length) {
          await recordAudit(
            trx,
            { org_slug: org, actor: actorOf(req), action: 'egress_hosts.replaced', resource_type: 'egress_allowlist', resource_id: org, details: diff, request_id: String(req.id) },
            now,
          )
        }
        return diff
      })
      // After the commit: every instance drops its cached list and reads the new one at its next use.
      await ctx.bus.publish({ type: 'egress.changed', org_slug: org })
      return { org_slug: org, hosts: [...new Set(hosts)].sort(), ...change }
    },
  )
}
