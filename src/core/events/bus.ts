// Cross-instance events (cache eviction, run-change hints, offboarding). In-process on the embedded
// store; on PostgreSQL every instance LISTENs on one channel, so a key revoked on one instance is
// evicted on all of them, and the runs of an offboarded org are aborted on every worker. `run.changed`
// only says "re-read this run": watchers take state from the database, never from the event.
import { EventEmitter } from 'node:events'
import pg from 'pg'

export interface BusEvent {
  type: 'auth.evict_org' | 'auth.evict_all' | 'run.changed' | 'org.offboarded'
  org_slug?: string
  run_id?: string
  /** org.offboarded: the dataset id of the incarnation being removed. */
  dataset_id?: string
}

const EVENT_TYPES = new Set<string>(['auth.evict_org', 'auth.evict_all', 'run.changed', 'org.offboarded'])

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

export class PostgresBus implements EventBus {
  private readonly local = new LocalBus()
  private client: pg.Client | null = null
  private closed = false
  private retryTimer: NodeJS.Timeout | null = null

  constructor(private readonly url: string, private readonly pool: pg.Pool) {}

  async start(): Promise<void> {
    await this.connect()
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 60_000 })
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL) return
      const e = parse(msg.payload)
      if (e) void this.local.publish(e)
    })
    client.on('error', () => this.reconnect())
    client.on('end', () => this.reconnect())
    await client.connect()
    await client.query(`LISTEN ${CHANNEL}`)
    this.client = client
  }

  private reconnect(): void {
    if (this.closed || this.retryTimer) return
    this.client = null
    // Events may have been missed while disconnected: drop every cached auth result.
    void this.local.publish({ type: 'auth.evict_all' })
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.connect().catch(() => this.reconnect())
    }, 1000)
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
    const c = this.client
    this.client = null
    if (c) await c.end().catch(() => undefined)
    await this.local.close()
  }
}
