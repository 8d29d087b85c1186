/**
 * Reservations that lapse unused, in one place for every path that finds them (a reservation of the owner's keys,
 * a withdrawal, garbage collection): the key returns to the pool, the audit log records it, and the owner's inbox
 * gets a `keyReleased` item naming who let it lapse — all inside the caller's transaction. Each lapse is reported
 * once (`reservations.lapsed_at`).
 */
import type { Db } from "./database.js"
import { InboxWriter } from "./inboxWriter.js"

export interface Lapse {
  /** The device whose key it is. */
  owner: string
  ref: string
  /** The device that let its reservation lapse. */
  requester: string
}

interface OpenRow {
  id: string
  ref: string
  owner: string
  requester: string
  created_at: number
}

export class LapseReleaser {
  private readonly s
  private readonly inbox: InboxWriter

  constructor(db: Db) {
    this.inbox = new InboxWriter(db)
    const columns = "RETURNING id, ref, owner, requester, created_at"
    this.s = {
      ofOwner: db.prepare<[number, string, number], OpenRow>(
        `UPDATE reservations SET lapsed_at = ? WHERE owner = ? AND expires_at <= ? AND spent_at IS NULL
         AND lapsed_at IS NULL ${columns}`,
      ),
      all: db.prepare<[number, number], OpenRow>(
        `UPDATE reservations SET lapsed_at = ? WHERE expires_at <= ? AND spent_at IS NULL AND lapsed_at IS NULL
         ${columns}`,
      ),
      // A last-resort key is never marked reserved: only ordinary keys go back to the pool.
      release: db.prepare<[string, string], { last_resort: number }>(
        `UPDATE keypackages SET state = 'available', reservation_id = NULL, reserved_by = NULL, reserved_until = NULL
         WHERE ref = ? AND state = 'reserved' AND reservation_id = ? RETURNING last_resort`,
      ),
      lastResort: db.prepare<[string], { last_resort: number }>("SELECT last_resort FROM keypackages WHERE ref = ?"),
      names: db.prepare<[string], { handle: string; client_id: string }>(
        "SELECT a.handle, d.client_id FROM devices d JOIN accounts a ON a.user_id = d.user_id WHERE d.id = ?",
      ),
      audit: db.prepare(
        "INSERT INTO audit (at, action, owner, ref, actor, reservation_id) VALUES (?, 'reservation_expire', ?, ?, NULL, ?)",
      ),
    }
  }

  /** Releases the lapsed reservations of `owner`'s keys, or of everyone's; call inside a transaction. */
  release(now: number, owner?: string): Lapse[] {
    // .all(): runs the UPDATE … RETURNING to completion (NOTES.md trap 2).
    const rows = owner === undefined ? this.s.all.all(now, now) : this.s.ofOwner.all(now, owner, now)
    return rows.map((r) => {
      this.s.release.all(r.ref, r.id)
      const lastResort = this.s.lastResort.get(r.ref)?.last_resort === 1
      this.s.audit.run(now, r.owner, r.ref, r.id)
      // A reservation migrated from before devices may name a user that is gone: it is named as recorded.
      const names = this.s.names.get(r.requester)
      const by = names ? { by: names.handle, byClientId: names.client_id } : { by: r.requester }
      this.inbox.add(r.owner, { kind: "keyReleased", ref: r.ref, ...by, lastResort, reservedAt: r.created_at }, now)
      return { owner: r.owner, ref: r.ref, requester: r.requester }
    })
  }
}
