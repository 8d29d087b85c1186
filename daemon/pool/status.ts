/** Pool figures computed from the daemon's own store, in the server's terms so the two can be compared. */
import type { PoolHealth } from "../../rpc-schema/server/http/keys.js"
import { refsDigest } from "../../rpc-schema/server/http/keys.js"
import type { KeyState } from "../../rpc-schema/daemon/pool.js"
import type { LocalKey } from "../store/poolStore.js"

/** The server's "expiring soon" window (DESIGN §2), independent of the rotation policy. */
const expiringSoonMs = 2 * 24 * 3600_000

/** The server's rule: good >= low watermark available, low 3.., critical 1..2, exhausted 0. */
export function healthOf(available: number, lowWatermark: number): PoolHealth {
  if (available === 0) return "exhausted"
  if (available <= 2) return "critical"
  return available < lowWatermark ? "low" : "good"
}

/** The refs the daemon believes the server holds (available and reserved ordinary keys). */
export function heldRefs(keys: readonly LocalKey[], now: number): string[] {
  return keys
    .filter((k) => !k.lastResort && (k.state === "available" || k.state === "reserved") && k.notAfter > now)
    .map((k) => k.ref)
}

export function figures(keys: readonly LocalKey[], now: number, lowWatermark: number) {
  const ordinary = keys.filter((k) => !k.lastResort)
  const count = (state: KeyState) => ordinary.filter((k) => k.state === state).length
  const available = ordinary.filter((k) => k.state === "available" && k.notAfter > now)
  const lastResort = keys.find((k) => k.lastResort && k.state === "available" && k.notAfter > now)
  return {
    available: available.length,
    reserved: ordinary.filter((k) => k.state === "reserved" && k.notAfter > now).length,
    spent: count("spent"),
    expired: count("expired"),
    expiringSoon: available.filter((k) => k.notAfter <= now + expiringSoonMs).length,
    health: healthOf(available.length, lowWatermark),
    lastResort: lastResort ? { ref: lastResort.ref, notAfter: lastResort.notAfter } : null,
    digest: refsDigest(heldRefs(keys, now)),
    created: count("created"),
    consumed: count("consumed"),
    failed: count("failed"),
  }
}
