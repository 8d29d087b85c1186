/**
 * The rules for spending a reserved KeyPackage, in one place for both paths that spend: the key
 * directory's `spend` and a Commit that consumes keys (DESIGN §2: a key is used only while the
 * device that reserved it holds the reservation). Runs inside the caller's transaction and throws to refuse; the
 * owner's keySpent inbox item is written in that same transaction.
 */
import { AppError } from "../../rpc-schema/errors.js"
import type { Db } from "./database.js"
import { InboxWriter } from "./inboxWriter.js"
import type { DeviceRef, StoredSpend } from "./types.js"

export class KeySpender {
  private readonly s
  private readonly inbox: InboxWriter

  constructor(db: Db) {
    this.inbox = new InboxWriter(db)
    this.s = {
      key: db.prepare<[string], { owner: string; last_resort: number; state: string; reservation_id: string | null }>(
        "SELECT owner, last_resort, state, reservation_id FROM keypackages WHERE ref = ?",
      ),
      reservation: db.prepare<
        [string],
        { ref: string; requester: string; expires_at: number; spent_at: number | null }
      >("SELECT ref, requester, expires_at, spent_at FROM reservations WHERE id = ?"),
      spendKey: db.prepare("UPDATE keypackages SET state = 'spent', spent_at = ? WHERE ref = ?"),
      spendReservation: db.prepare("UPDATE reservations SET spent_at = ? WHERE id = ?"),
      audit: db.prepare("INSERT INTO audit (at, action, owner, ref, actor, reservation_id) VALUES (?, ?, ?, ?, ?, ?)"),
    }
  }

  /** Spends `ref` under `reservationId` for the `requester` device; call inside a transaction. */
  spend(ref: string, reservationId: string, requester: DeviceRef, now: number): StoredSpend {
    const key = this.s.key.get(ref)
    const r = this.s.reservation.get(reservationId)
    const lastResort = key?.last_resort === 1
    checkSpend(
      key && { state: key.state, lastResort, reservationId: key.reservation_id },
      r && { ref: r.ref, requester: r.requester, expiresAt: r.expires_at, spentAt: r.spent_at },
      ref,
      reservationId,
      requester,
      now,
    )
    // A last-resort key is never consumed (RFC 9750 practice): only its reservation is.
    if (!lastResort) this.s.spendKey.run(now, ref)
    this.s.spendReservation.run(now, reservationId)
    this.s.audit.run(now, "spend", key!.owner, ref, requester.deviceId, reservationId)
    this.inbox.add(key!.owner, keySpentItem(ref, requester, lastResort), now)
    return { ref, owner: key!.owner, spentAt: now, lastResort }
  }
}

/**
 * The spend rule's checks, for both stores: throws the refusal, in an order that tells a device that does not hold
 * the reservation nothing about the key's state (no spend oracle).
 */
export function checkSpend(
  key: { state: string; lastResort: boolean; reservationId: string | null } | undefined,
  r: { ref: string; requester: string; expiresAt: number; spentAt: number | null } | undefined,
  ref: string,
  reservationId: string,
  requester: DeviceRef,
  now: number,
): void {
  if (!key) throw new AppError("keypackage_not_found", "no KeyPackage with that ref")
  if (!r || r.ref !== ref) throw new AppError("reservation_invalid", "that reservation is not one of this KeyPackage")
  if (r.requester !== requester.deviceId) throw new AppError("forbidden", "the reservation belongs to another device")
  if (key.state === "spent") throw new AppError("already_spent", "that KeyPackage was spent already")
  if (r.spentAt !== null) throw new AppError("already_spent", "that reservation was spent already")
  if (r.expiresAt <= now || (!key.lastResort && key.reservationId !== reservationId)) {
    throw new AppError("reservation_expired", "the reservation expired; reserve again")
  }
}

/** The owner's inbox item for a spend of its key. */
export const keySpentItem = (ref: string, requester: DeviceRef, lastResort: boolean) =>
  ({ kind: "keySpent", ref, by: requester.handle, byClientId: requester.clientId, lastResort }) as const
