/**
 * The profile's one identity row: this device of an account. The handle (column `username`), the server, the device's
 * login key (challenge/response) and MLS signature key (its credentials and KeyPackages), and the ids the server
 * assigned: user id, device id, client id (NULL for a profile from before devices until its first login tells them).
 */
import type { Db } from "./database.js"

/** What the server says this device is (registration, link, login). */
export interface DeviceIds {
  userId: string
  handle: string
  deviceId: string
  clientId: string
}

export interface StoredIdentity {
  /** The account's handle (the user name people type). */
  username: string
  server: string
  /** The MLS signature key pair: credentials, KeyPackages, group messages. */
  signaturePublic: Uint8Array
  signaturePrivate: Uint8Array
  /** The login key pair (the same as the MLS key for a profile from before devices). */
  loginPublic: Uint8Array
  loginPrivate: Uint8Array
  userId: string | null
  deviceId: string | null
  clientId: string | null
  createdAt: number
  /** null while registration (or linking) with the server is pending. */
  registeredAt: number | null
}

interface Row {
  username: string
  server: string
  signature_public: Buffer
  signature_private: Buffer
  login_public: Buffer
  login_private: Buffer
  user_id: string | null
  device_id: string | null
  client_id: string | null
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
        loginPublic: new Uint8Array(r.login_public),
        loginPrivate: new Uint8Array(r.login_private),
        userId: r.user_id,
        deviceId: r.device_id,
        clientId: r.client_id,
        createdAt: r.created_at,
        registeredAt: r.registered_at,
      }
    )
  }

  /** Records a pending identity (replacing another pending one). */
  savePending(
    id: Pick<
      StoredIdentity,
      "username" | "server" | "signaturePublic" | "signaturePrivate" | "loginPublic" | "loginPrivate" | "createdAt"
    >,
  ): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO identity (id, username, server, signature_public, signature_private, login_public,
           login_private, created_at, registered_at)
         VALUES (1, ?, ?, ?, ?, ?, ?, ?, NULL)`,
      )
      .run(
        id.username,
        id.server,
        id.signaturePublic,
        id.signaturePrivate,
        id.loginPublic,
        id.loginPrivate,
        id.createdAt,
      )
  }

  /** Registration or linking succeeded: the ids the server assigned (the handle too: a link learns it here). */
  markRegistered(device: DeviceIds, at: number): void {
    this.db
      .prepare(
        "UPDATE identity SET registered_at = ?, username = ?, user_id = ?, device_id = ?, client_id = ? WHERE id = 1",
      )
      .run(at, device.handle, device.userId, device.deviceId, device.clientId)
  }

  /** A profile from before devices learns its ids at its first login. */
  setDevice(device: DeviceIds): void {
    this.db
      .prepare("UPDATE identity SET username = ?, user_id = ?, device_id = ?, client_id = ? WHERE id = 1")
      .run(device.handle, device.userId, device.deviceId, device.clientId)
  }

  deletePending(): void {
    this.db.prepare("DELETE FROM identity WHERE id = 1 AND registered_at IS NULL").run()
  }
}
