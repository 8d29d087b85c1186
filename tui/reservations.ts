/**
 * "Who reserved which keys lately" for the /pool panel, derived from `pool.list` (each key's `reservedBy` and
 * `reservedAt`). This is the one place to switch to a dedicated usage method once the daemon has one.
 */
import type { KeyInfo } from "../rpc-schema/daemon/pool.js"

export interface Reservation {
  by: string
  at: number
  ref: string
  state: KeyInfo["state"]
}

/** The newest reservations first, at most `limit`. */
export function recentReservations(keys: KeyInfo[], limit = 6): Reservation[] {
  return keys
    .filter((k): k is KeyInfo & { reservedBy: string; reservedAt: number } => !!k.reservedBy && k.reservedAt !== null)
    .map((k) => ({ by: k.reservedBy, at: k.reservedAt, ref: k.ref, state: k.state }))
    .sort((a, b) => b.at - a.at)
    .slice(0, limit)
}
