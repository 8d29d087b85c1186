/**
 * The adaptive pool, as pure functions: how fast this profile's keys are claimed, and the target that follows. A
 * refill (a maintenance pass) comes soon after every reservation the server reports, so the pool must hold what is
 * claimed between two passes — the largest such burst seen, with headroom for one that grows — and, should the
 * event-driven passes stop (the stream is down), what the measured rate claims in one maintenance interval. The
 * target stays between the configured minimum (`policy.target`) and the cap.
 */
import type { PoolDemand } from "../../rpc-schema/daemon/pool.js"
import type { MaintenancePolicy } from "./policy.js"

const hourMs = 3600_000
/** The smoothing time constant of the claim rate. */
export const rateTimeConstantMs = hourMs
/** How long a burst is remembered. */
export const peakMemoryMs = 7 * 24 * hourMs
/** The pool holds this many times the largest burst seen: the next one may be larger. */
export const burstHeadroom = 1.5

/**
 * Reservations per hour, exponentially smoothed: each reservation counts e^(-age/τ), so a steady rate r reads r,
 * and a burst fades over a few hours.
 */
export function smoothedRate(reservedAt: readonly number[], now: number): number {
  let sum = 0
  for (const at of reservedAt) sum += Math.exp(-Math.max(0, now - at) / rateTimeConstantMs)
  return sum / (rateTimeConstantMs / hourMs)
}

export interface Measured {
  reservationsPerHour: number
  peakBurst: number
  peakAt: number | null
}

export function targetInForce(
  policy: Pick<MaintenancePolicy, "adaptive" | "target" | "cap" | "maintenanceIntervalMs">,
  m: Measured,
): PoolDemand {
  const measured = {
    reservationsPerHour: Math.round(m.reservationsPerHour * 100) / 100,
    peakBurst: m.peakBurst,
    peakAt: m.peakAt,
  }
  if (!policy.adaptive) {
    return {
      ...measured,
      target: policy.target,
      reason: "fixed",
      why: `adaptive sizing is off: the configured ${policy.target}`,
    }
  }
  const byPeak = Math.ceil(m.peakBurst * burstHeadroom)
  const byRate = Math.ceil((m.reservationsPerHour * policy.maintenanceIntervalMs) / hourMs)
  const wanted = Math.max(byPeak, byRate)
  const figures =
    byPeak >= byRate
      ? `largest burst ${m.peakBurst} between passes × ${burstHeadroom} = ${byPeak}`
      : `${measured.reservationsPerHour}/h over a ${policy.maintenanceIntervalMs / 60_000} min maintenance interval = ${byRate}`
  if (wanted <= policy.target) {
    return {
      ...measured,
      target: policy.target,
      reason: "minimum",
      why: `the configured minimum ${policy.target} covers the demand (${figures})`,
    }
  }
  if (wanted > policy.cap) {
    return {
      ...measured,
      target: policy.cap,
      reason: "cap",
      why: `the demand (${figures}) exceeds the cap ${policy.cap}`,
    }
  }
  return { ...measured, target: wanted, reason: byPeak >= byRate ? "peak" : "rate", why: figures }
}
