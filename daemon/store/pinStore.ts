/**
 * Signature keys pinned on first sight, per credential identity (the authentication service's memory, DESIGN §3): a
 * device's client id, or the bare user name of a leaf from before devices. Each pin keeps who the directory said the
 * identity is (account, handle, device), so members and senders are shown without asking the server again.
 */
import type { Db } from "./database.js"

export interface Pin {
  identity: string
  handle: string
  userId: string | null
  deviceId: string | null
  clientId: string | null
  signatureKey: Uint8Array
  pinnedAt: number
}

interface Row {
  identity: string
  handle: string
  user_id: string | null
  device_id: string | null
  client_id: string | null
  signature_key: Buffer
  pinned_at: number
}

const fromRow = (r: Row): Pin => ({
  identity: r.identity,
  handle: r.handle,
  userId: r.user_id,
  deviceId: r.device_id,
  clientId: r.client_id,
  signatureKey: new Uint8Array(r.signature_key),
  pinnedAt: r.pinned_at,
})

export class PinStore {
  constructor(readonly db: Db) {}

  get(identity: string): Pin | undefined {
    const r = this.db.prepare<[string], Row>("SELECT * FROM device_pins WHERE identity = ?").get(identity)
    return r && fromRow(r)
  }

  /** Every pinned device of an account: by user id, and the user-name pins carried over from before devices. */
  ofUser(userId: string, handle: string): Pin[] {
    return this.db
      .prepare<[string, string], Row>("SELECT * FROM device_pins WHERE user_id = ? OR (user_id IS NULL AND handle = ?)")
      .all(userId, handle)
      .map(fromRow)
  }

  /** The user names pinned before devices whose device is not known yet. */
  unresolved(): string[] {
    return this.db
      .prepare<[], { identity: string }>("SELECT identity FROM device_pins WHERE user_id IS NULL")
      .all()
      .map((r) => r.identity)
  }

  /** A user-name pin carried over from before devices learns the device it stands for (the account's first). */
  resolveLegacy(handle: string, userId: string, deviceId: string, clientId: string): void {
    this.db
      .prepare(
        "UPDATE device_pins SET user_id = ?, device_id = ?, client_id = ? WHERE identity = ? AND user_id IS NULL",
      )
      .run(userId, deviceId, clientId, handle)
  }

  /**
   * Pins a key unless one is pinned already (the first one stays); fills in the account and device of a user-name pin
   * carried over from before devices. Answers whether the identity was new.
   */
  pin(p: Pin): boolean {
    const fresh =
      this.db
        .prepare(
          `INSERT OR IGNORE INTO device_pins (identity, handle, user_id, device_id, client_id, signature_key, pinned_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(p.identity, p.handle, p.userId, p.deviceId, p.clientId, p.signatureKey, p.pinnedAt).changes > 0
    if (!fresh && p.userId !== null)
      this.db
        .prepare(
          "UPDATE device_pins SET user_id = ?, device_id = ?, client_id = ? WHERE identity = ? AND user_id IS NULL",
        )
        .run(p.userId, p.deviceId, p.clientId, p.identity)
    return fresh
  }
}
