// The one outbound HTTP client (SPEC §3, §10). Every call made for an org (credential validation,
// processors, webhooks) goes through it: pooled keep-alive sockets with a per-origin bound, connect
// and total timeouts, no redirects, http(s) only, https plus a host allow-list in production, and
// refusal of loopback / private / link-local / metadata addresses. The address check runs inside the
// socket's DNS lookup, so the address that is connected to is the address that was checked (a DNS
// answer that changes between a check and the connect cannot slip through).
import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net'
import { Agent, errors as undiciErrors } from 'undici'
import type { Config } from '../config.js'
import { EgressError, type EgressClient, type EgressRequest, type EgressResponse } from './types.js'

export interface EgressOptions {
  allowLoopback: boolean
  production: boolean
  /** Host names allowed in production. `*.example.com` also matches sub-domains. */
  allowedHosts: string[]
  timeoutMs: number
  maxSockets: number
}

const DEFAULT_MAX_BYTES = 10 * 1024 * 1024
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata', 'metadata.goog', 'instance-data'])

const blocked = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [
  ['::', 128], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64],
] as const) blocked.addSubnet(net, prefix, 'ipv6')
const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

/** Expands an IPv6 literal (no zone) into 8 hextets, or null when malformed. */
function ipv6Hextets(addr: string): number[] | null {
  let text = addr
  const lastColon = text.lastIndexOf(':')
  const tailPart = text.slice(lastColon + 1)
  if (tailPart.includes('.')) {
    if (!isIPv4(tailPart)) return null
    const o = tailPart.split('.').map(Number)
    text = `${text.slice(0, lastColon + 1)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return null
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => (/^[0-9a-f]{1,4}$/.test(h) ? parseInt(h, 16) : NaN)))
  const head = parse(halves[0]!)
  const rest = halves.length === 2 ? parse(halves[1]!) : []
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0
  if (fill < 0) return null
  const out = [...head, ...new Array<number>(fill).fill(0), ...rest]
  return out.length === 8 && out.every((h) => Number.isInteger(h)) ? out : null
}

const v4From = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`

/** IPv4 addresses carried inside an IPv6 one (mapped, compatible, NAT64, 6to4), checked as IPv4. */
function embeddedIPv4(h: number[]): string | null {
  const zeros = (from: number, to: number) => h.slice(from, to).every((x) => x === 0)
  if (zeros(0, 5) && h[5] === 0xffff) return v4From(h[6]!, h[7]!) // ::ffff:a.b.c.d
  if (zeros(0, 6) && (h[6]! !== 0 || h[7]! > 1)) return v4From(h[6]!, h[7]!) // ::a.b.c.d (deprecated)
  if (h[0] === 0x64 && h[1] === 0xff9b && zeros(2, 6)) return v4From(h[6]!, h[7]!) // 64:ff9b::/96
  if (h[0] === 0x2002) return v4From(h[1]!, h[2]!) // 6to4
  return null
}

export type AddressVerdict = 'allowed' | 'loopback' | 'blocked'

/** Classifies a resolved IP address. Anything unparseable is blocked. */
export function classifyAddress(address: string): AddressVerdict {
  const addr = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '')
  if (isIPv4(addr)) {
    if (loopback.check(addr, 'ipv4')) return 'loopback'
    return blocked.check(addr, 'ipv4') || addr === '255.255.255.255' ? 'blocked' : 'allowed'
  }
  if (!isIPv6(addr)) return 'blocked'
  const h = ipv6Hextets(addr.toLowerCase())
  if (!h) return 'blocked'
  const v4 = embeddedIPv4(h)
  if (v4 !== null) return classifyAddress(v4)
  if (loopback.check(addr, 'ipv6')) return 'loopback'
  return blocked.check(addr, 'ipv6') ? 'blocked' : 'allowed'
}

class BlockedAddressError extends Error {
  readonly code = 'EGRESS_BLOCKED'
  constructor() {
    super('destination address refused')
  }
}

function permits(verdict: AddressVerdict, allowLoopback: boolean): boolean {
  return verdict === 'allowed' || (verdict === 'loopback' && allowLoopback)
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string | LookupAddress[], family?: number) => void

/** A `lookup` for net/tls.connect that refuses the connection if any resolved address is not permitted. */
function guardedLookup(allowLoopback: boolean) {
  return (hostname: string, options: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...(options as object), all: true }, (err, addresses) => {
      if (err) return callback(err)
      const list = addresses as LookupAddress[]
      if (list.length === 0 || !list.every((a) => permits(classifyAddress(a.address), allowLoopback))) {
        return callback(new BlockedAddressError())
      }
      if (options.all) return callback(null, list)
      callback(null, list[0]!.address, list[0]!.family)
    })
  }
}

function hostAllowed(host: string, allowedHosts: readonly string[]): boolean {
  return allowedHosts.some((entry) => {
    if (entry.startsWith('*.')) return host.endsWith(entry.slice(1)) && host.length > entry.length - 1
    return host === entry
  })
}

/** Parses and checks a URL before any socket is opened. Returns the URL or throws EgressError. */
export function checkUrl(
  raw: string,
  opts: Pick<EgressOptions, 'allowLoopback' | 'production' | 'allowedHosts'>,
  extraAllowedHosts: readonly string[] = [],
): URL {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new EgressError('INVALID_URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressError('INVALID_URL')
  // Credentials in a URL end up in logs and proxies; auth goes in headers.
  if (url.username || url.password) throw new EgressError('INVALID_URL')
  const host = url.hostname.toLowerCase().replace(/\.$/, '')
  if (!host) throw new EgressError('INVALID_URL')
  if (METADATA_HOSTS.has(host)) throw new EgressError('BLOCKED_DESTINATION')
  if (opts.production) {
    if (url.protocol !== 'https:') throw new EgressError('BLOCKED_DESTINATION')
    if (!hostAllowed(host, opts.allowedHosts) && !hostAllowed(host, extraAllowedHosts)) throw new EgressError('BLOCKED_DESTINATION')
  }
  // IP literals skip the DNS lookup hook, so they are checked here.
  const literal = host.replace(/^\[|\]$/g, '')
  if (isIP(literal) && !permits(classifyAddress(literal), opts.allowLoopback)) {
    throw new EgressError('BLOCKED_DESTINATION')
  }
  return url
}

function hostOf(u: string | null): string[] {
  if (!u) return []
  try {
    return [new URL(u).hostname.toLowerCase()]
  } catch {
    return []
  }
}

/** Egress options from the app config: the allow-list is the configured hosts plus the provider hosts. */
export function egressOptionsFromConfig(config: Pick<Config, 'providers' | 'egress' | 'environment'> & Partial<Pick<Config, 'datasets'>>): EgressOptions {
  const p = config.providers
  const bq = config.datasets?.bigquery
  const providerHosts = [
    ...hostOf(bq?.apiEndpoint ?? null), ...hostOf(bq?.tokenUrl ?? null),
    ...hostOf(p.openaiBaseUrl), ...hostOf(p.anthropicBaseUrl), ...hostOf(p.gcpApiBaseUrl),
    ...hostOf(p.gcpTokenUri), ...hostOf(p.bigqueryBaseUrl), 'oauth2.googleapis.com', 'bigquery.googleapis.com', 'cloudbilling.googleapis.com',
  ]
  return {
    allowLoopback: config.egress.allowLoopback,
    production: config.environment === 'production',
    allowedHosts: [...new Set([...config.egress.allowedHosts, ...providerHosts])],
    timeoutMs: config.egress.timeoutMs,
    maxSockets: config.egress.maxSockets,
  }
}

function isCause(err: unknown, pred: (e: unknown) => boolean, depth = 0): boolean {
  if (!err || depth > 4) return false
  if (pred(err)) return true
  return isCause((err as { cause?: unknown }).cause, pred, depth + 1)
}

function mapError(err: unknown, callerAborted: boolean, timedOut: boolean): EgressError {
  if (err instanceof EgressError) return err
  if (isCause(err, (e) => e instanceof BlockedAddressError)) return new EgressError('BLOCKED_DESTINATION')
  if (callerAborted) return new EgressError('ABORTED')
  if (timedOut) return new EgressError('TIMEOUT')
  if (
    isCause(
      err,
      (e) =>
        e instanceof undiciErrors.ConnectTimeoutError ||
        e instanceof undiciErrors.HeadersTimeoutError ||
        e instanceof undiciErrors.BodyTimeoutError ||
        (e as { code?: string }).code === 'ETIMEDOUT',
    )
  ) {
    return new EgressError('TIMEOUT')
  }
  if (err instanceof undiciErrors.InvalidArgumentError) return new EgressError('INVALID_URL')
  return new EgressError('UNREACHABLE')
}

function makeResponse(status: number, headers: Record<string, string>, body: Buffer): EgressResponse {
  return {
    status,
    headers,
    body,
    text: () => body.toString('utf8'),
    json<T>(): T {
      try {
        return JSON.parse(body.toString('utf8')) as T
      } catch {
        throw new EgressError('MALFORMED_RESPONSE')
      }
    },
  }
}

/** Drops a response body we will not read, without an unhandled 'error' event. */
function discard(body: { on(ev: 'error', fn: () => void): unknown; destroy(): unknown }): void {
  body.on('error', () => {})
  body.destroy()
}

function flattenHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  return out
}

export function createEgressClient(opts: EgressOptions): EgressClient & { close(): Promise<void> } {
  const agent = new Agent({
    connections: opts.maxSockets,
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    connect: { timeout: opts.timeoutMs, lookup: guardedLookup(opts.allowLoopback) as never },
  })

  async function request(rawUrl: string, req: EgressRequest = {}): Promise<EgressResponse> {
    const url = checkUrl(rawUrl, opts, req.extraAllowedHosts)
    if (req.signal?.aborted) throw new EgressError('ABORTED')
    const timeoutMs = Math.max(1, Math.min(req.timeoutMs ?? opts.timeoutMs, opts.timeoutMs))
    const maxBytes = req.maxBytes ?? DEFAULT_MAX_BYTES
    const controller = new AbortController()
    let timedOut = false
    let callerAborted = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, timeoutMs)
    const onCallerAbort = () => {
      callerAborted = true
      controller.abort()
    }
    req.signal?.addEventListener('abort', onCallerAbort, { once: true })
    try {
      const res = await agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method ?? 'GET',
        headers: req.headers,
        body: req.body,
        signal: controller.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      })
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
        discard(res.body)
        throw new EgressError('REDIRECT_REFUSED')
      }
      if (req.discardBody) {
        discard(res.body)
        return makeResponse(res.statusCode, flattenHeaders(res.headers), Buffer.alloc(0))
      }
      const declared = Number(res.headers['content-length'])
      if (Number.isFinite(declared) && declared > maxBytes) {
        discard(res.body)
        throw new EgressError('TOO_LARGE')
      }
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > maxBytes) {
          discard(res.body)
          throw new EgressError('TOO_LARGE')
        }
        chunks.push(chunk as Buffer)
      }
      return makeResponse(res.statusCode, flattenHeaders(res.headers), Buffer.concat(chunks))
    } catch (err) {
      throw mapError(err, callerAborted, timedOut)
    } finally {
      clearTimeout(timer)
      req.signal?.removeEventListener('abort', onCallerAbort)
    }
  }

  return { request, close: () => agent.close() }
}
