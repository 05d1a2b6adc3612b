// Cross-instance events (cache eviction, run-change hints, offboarding). In-process on the embedded
// store; on PostgreSQL every instance LISTENs on one channel, so a key revoked on one instance is
// evicted on all of them, and the runs of an offboarded org are aborted on every worker;
// `egress.changed` evicts one org's cached egress allow-list. `run.changed`
// only says "re-read this run": watchers take state from the database, never from the event.
// The LISTEN connection is kept alive, reconnected with backoff, and caches are cleared on reconnect.
import { EventEmitter } from 'node:events'
import pg from 'pg'

export interface BusEvent {
  type: 'auth.evict_org' | 'auth.evict_all' | 'run.changed' | 'org.offboarded' | 'egress.changed'
  org_slug?: string
  run_id?: string
  /** org.offboarded: the dataset id of the incarnation being removed. */
  dataset_id?: string
}

const EVENT_TYPES = new Set<string>(['auth.evict_org', 'auth.evict_all', 'run.changed', 'org.offboarded', 'egress.changed'])

export interface EventBus {
  publish(event: BusEvent): Promise<void>
  subscribe(handler: (event: BusEvent) => void): void
  close(): Promise<void>
}

const CHANNEL = 'tenantflow_events'

export class LocalBus implements EventBus {
  private readonly emitter = new EventEmitter()
  async publish(event: BusEvent): Promise<void> {
    this.emitter.emit('event', event)
  }
  subscribe(handler: (event: BusEvent) => void): void {
    this.emitter.on('event', handler)
  }
  async close(): Promise<void> {
    this.emitter.removeAllListeners()
  }
}

function parse(payload: string | undefined): BusEvent | null {
  if (!payload || payload.length > 1000) return null
  try {
    const e = JSON.parse(payload) as BusEvent
    if (!e || typeof e !== 'object' || !EVENT_TYPES.has(e.type)) return null
    if (e.org_slug !== undefined && typeof e.org_slug !== 'string') return null
    if (e.run_id !== undefined && typeof e.run_id !== 'string') return null
    if (e.dataset_id !== undefined && (typeof e.dataset_id !== 'string' || e.dataset_id.length > 128)) return null
    return e
  } catch {
    return null
  }
}

export interface PostgresBusOptions {
  /** Reconnect delay: base × 2^(attempt-1), capped, with ±20 % jitter. */
  reconnectBaseMs?: number
  reconnectMaxMs?: number
  /** A ping on the LISTEN connection every interval; no answer within the timeout = dead connection. */
  pingIntervalMs?: number
  pingTimeoutMs?: number
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
}

/**
 * LISTENs on a dedicated connection. It is kept alive (TCP keepalive plus a periodic ping, so a
 * silently dropped connection is noticed) and reconnected with exponential backoff. Events sent while
 * disconnected are lost, so every cached auth result is dropped when the connection is lost AND again
 * once it is back (anything cached during the outage may predate a missed revocation).
 */
export class PostgresBus implements EventBus {
  private readonly local = new LocalBus()
  private client: pg.Client | null = null
  private closed = false
  private retryTimer: NodeJS.Timeout | null = null
  private pingTimer: NodeJS.Timeout | null = null
  private attempt = 0
  private pinging = false
  private readonly o: Required<Omit<PostgresBusOptions, 'logger'>> & Pick<PostgresBusOptions, 'logger'>

  constructor(private readonly url: string, private readonly pool: pg.Pool, opts: PostgresBusOptions = {}) {
    this.o = {
      reconnectBaseMs: opts.reconnectBaseMs ?? 500,
      reconnectMaxMs: opts.reconnectMaxMs ?? 30_000,
      pingIntervalMs: opts.pingIntervalMs ?? 15_000,
      pingTimeoutMs: opts.pingTimeoutMs ?? 5_000,
      logger: opts.logger,
    }
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.client !== null
  }

  /** The PostgreSQL backend pid of the LISTEN connection (operations and tests), null while disconnected. */
  get backendPid(): number | null {
    return (this.client as unknown as { processID?: number } | null)?.processID ?? null
  }

  async start(): Promise<void> {
    await this.connect()
    this.pingTimer = setInterval(() => void this.ping(), this.o.pingIntervalMs)
    this.pingTimer.unref()
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'tenantflow-events',
    })
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL) return
      const e = parse(msg.payload)
      if (e) void this.local.publish(e)
    })
    client.on('error', () => this.lost(client))
    client.on('end', () => this.lost(client))
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANNEL}`)
    } catch (err) {
      await client.end().catch(() => undefined)
      throw err
    }
    if (this.closed) {
      await client.end().catch(() => undefined)
      return
    }
    const reconnected = this.attempt > 0
    this.client = client
    this.attempt = 0
    if (reconnected) {
      // Events sent while we were away are lost: nothing cached meanwhile can be trusted.
      void this.local.publish({ type: 'auth.evict_all' })
      this.o.logger?.info({}, 'event bus reconnected; auth caches cleared')
    }
  }

  /** A ping that does not answer in time means the connection died without telling us. */
  private async ping(): Promise<void> {
    const client = this.client
    if (!client || this.pinging) return
    this.pinging = true
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        client.query('SELECT 1'),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('ping timeout')), this.o.pingTimeoutMs))),
      ])
    } catch {
      this.lost(client)
    } finally {
      clearTimeout(timer)
      this.pinging = false
    }
  }

  private lost(client: pg.Client): void {
    if (this.client === client) {
      this.client = null
      this.o.logger?.warn({}, 'event bus connection lost; reconnecting')
      // Events may be missed while disconnected: drop every cached auth result now (and again on reconnect).
      void this.local.publish({ type: 'auth.evict_all' })
      // A silently dead socket would never finish a graceful end: destroy it.
      ;(client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy()
      client.end().catch(() => undefined)
      this.scheduleReconnect()
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return
    this.attempt++
    const base = Math.min(this.o.reconnectMaxMs, this.o.reconnectBaseMs * 2 ** Math.min(this.attempt - 1, 20))
    const delay = Math.round(base * (0.8 + Math.random() * 0.4))
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.connect().catch(() => this.scheduleReconnect())
    }, delay)
    this.retryTimer.unref()
  }

  async publish(event: BusEvent): Promise<void> {
    await this.local.publish(event)
    await this.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(event)])
  }

  subscribe(handler: (event: BusEvent) => void): void {
    this.local.subscribe(handler)
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.pingTimer) clearInterval(this.pingTimer)
    const c = this.client
    this.client = null
    if (c) await c.end().catch(() => undefined)
    await this.local.close()
  }
}
