/** The profile's one identity row: Ed25519 key pair, user name and server. */
import type { Db } from "./database.js"

export interface StoredIdentity {
  username: string
  server: string
  signaturePublic: Uint8Array
  signaturePrivate: Uint8Array
  createdAt: number
  /** null while registration with the server is pending. */
  registeredAt: number | null
}

interface Row {
  username: string
  server: string
  signature_public: Buffer
  signature_private: Buffer
  created_at: number
  registered_at: number | null
}

export class IdentityStore {
  constructor(private readonly db: Db) {}

  get(): StoredIdentity | undefined {
    const r = this.db.prepare<[], Row>("SELECT * FROM identity WHERE id = 1").get()
    return (
      r && {
        username: r.username,
        server: r.server,
        signaturePublic: new Uint8Array(r.signature_public),
        signaturePrivate: new Uint8Array(r.signature_private),
        createdAt: r.created_at,
        registeredAt: r.registered_at,
      }
    )
  }

  /** Records a pending identity (replacing another pending one). */
  savePending(id: Omit<StoredIdentity, "registeredAt">): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO identity (id, username, server, signature_public, signature_private, created_at, registered_at)
         VALUES (1, ?, ?, ?, ?, ?, NULL)`,
      )
      .run(id.username, id.server, id.signaturePublic, id.signaturePrivate, id.createdAt)
  }

  markRegistered(at: number): void {
    this.db.prepare("UPDATE identity SET registered_at = ? WHERE id = 1").run(at)
  }

  deletePending(): void {
    this.db.prepare("DELETE FROM identity WHERE id = 1 AND registered_at IS NULL").run()
  }
}
