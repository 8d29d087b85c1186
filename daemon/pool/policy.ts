/** The pool policy (DESIGN §3) and its defaults; main.ts lets flags override each figure. */
import type { PoolPolicy } from "../../rpc-schema/daemon/pool.js"

const hour = 3600_000
const day = 24 * hour

export interface MaintenancePolicy extends PoolPolicy {
  /** Delay between an event that takes a key from the pool and the pass it triggers; events meanwhile share it. */
  eventDelayMs: number
  /** Backoff after a failed pass: base, doubled per consecutive failure, capped, with jitter. */
  retryBaseMs: number
  retryMaxMs: number
}

export const defaultPolicy: MaintenancePolicy = {
  target: 32,
  lowWatermark: 8,
  cap: 64,
  lifetimeMs: 14 * day,
  rotateBeforeMs: 2 * day,
  graceMs: 24 * hour,
  lastResort: true,
  maintenanceIntervalMs: 10 * 60_000,
  adaptive: true,
  suspiciousLapses: 5,
  eventDelayMs: 1000,
  retryBaseMs: 1000,
  retryMaxMs: 5 * 60_000,
}
