/** Signature keys pinned on first sight, per user (the authentication service's memory, DESIGN §3). */
import type { Db } from "./database.js"

export class PinStore {
  constructor(private readonly db: Db) {}

  get(username: string): Uint8Array | undefined {
    const r = this.db
      .prepare<[string], { signature_key: Buffer }>("SELECT signature_key FROM pinned_keys WHERE username = ?")
      .get(username)
    return r && new Uint8Array(r.signature_key)
  }

  /** Pins a key unless one is pinned already (the first one stays). */
  pin(username: string, key: Uint8Array, at: number): void {
    this.db
      .prepare("INSERT OR IGNORE INTO pinned_keys (username, signature_key, pinned_at) VALUES (?, ?, ?)")
      .run(username, key, at)
  }
}
