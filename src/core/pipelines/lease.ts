// Lease vs heartbeat: a worker renews its leases every heartbeat, and a run whose lease could lapse
// before the next renewal is aborted (fencing). A lease therefore has to span at least
// LEASE_HEARTBEATS heartbeats: one renewal may fail or come late without live runs losing it.
export const LEASE_HEARTBEATS = 2

/** Default heartbeat for a lease: a third of it (10 s for the 30 s default), never below 100 ms. */
export function heartbeatFor(leaseMs: number): number {
  return Math.max(100, Math.floor(leaseMs / 3))
}

/** Throws when `heartbeatMs` cannot keep a `leaseMs` lease alive (same rule as the configuration). */
export function assertLeaseCoversHeartbeats(leaseMs: number, heartbeatMs: number): void {
  if (!(heartbeatMs > 0) || heartbeatMs * LEASE_HEARTBEATS > leaseMs) {
    throw new RangeError(`worker lease ${leaseMs} ms must be at least ${LEASE_HEARTBEATS} heartbeats of ${heartbeatMs} ms`)
  }
}
