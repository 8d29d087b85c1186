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
    if (!key) throw new AppError("keypackage_not_found", "no KeyPackage with that ref")
    // Whose reservation it is comes first: anyone else learns nothing about the key's state (no spend oracle).
    const r = this.s.reservation.get(reservationId)
    if (!r || r.ref !== ref) throw new AppError("reservation_invalid", "that reservation is not one of this KeyPackage")
    if (r.requester !== requester.deviceId) throw new AppError("forbidden", "the reservation belongs to another device")
    if (key.state === "spent") throw new AppError("already_spent", "that KeyPackage was spent already")
    if (r.spent_at !== null) throw new AppError("already_spent", "that reservation was spent already")
    const lastResort = key.last_resort === 1
    if (r.expires_at <= now || (!lastResort && key.reservation_id !== reservationId)) {
      throw new AppError("reservation_expired", "the reservation expired; reserve again")
    }
    // A last-resort key is never consumed (RFC 9750 practice): only its reservation is.
    if (!lastResort) this.s.spendKey.run(now, ref)
    this.s.spendReservation.run(now, reservationId)
    this.s.audit.run(now, "spend", key.owner, ref, requester.deviceId, reservationId)
    const by = { by: requester.handle, byClientId: requester.clientId }
    this.inbox.add(key.owner, { kind: "keySpent", ref, ...by, lastResort }, now)
    return { ref, owner: key.owner, spentAt: now, lastResort }
  }
}
