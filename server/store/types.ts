/**
 * The server's storage interface. Every method that changes state is one transaction; the SQLite
 * implementation groups concurrent ones into a shared commit. A PostgreSQL backend implements the
 * same interface.
 */
import type { KeyPackageRejection } from "../../rpc-schema/errors.js"

/** A KeyPackage that passed every cryptographic check and is ready to store. */
export interface ValidKeyPackage {
  /** KeyPackageRef, base64url. */
  ref: string
  initKey: Uint8Array
  cipherSuite: number
  /** The bare KeyPackage encoding. */
  data: Uint8Array
  /** not_after in milliseconds. */
  notAfter: number
}

export type StoreUploadOutcome =
  | { status: "accepted" | "duplicate"; ref: string; notAfter: number }
  | { status: "rejected"; reason: Extract<KeyPackageRejection, "init_key_reused" | "cap_exceeded"> }

export interface StoredReservation {
  ref: string
  data: Uint8Array
  reservationId: string
  expiresAt: number
  lastResort: boolean
  /** Ordinary keys of the owner still available after this reservation. */
  remainingAvailable: number
}

export interface StoredSpend {
  ref: string
  owner: string
  spentAt: number
  lastResort: boolean
}

export interface KeyCounts {
  available: number
  reserved: number
  spent: number
  expired: number
  expiringSoon: number
  lastUpload: number | null
  lastResort: { ref: string; notAfter: number } | null
  /** Sorted refs of available and reserved ordinary keys. */
  heldRefs: string[]
}

export interface GcReport {
  expiredKeys: number
  lapsedReservations: number
  spentKeys: number
}

export interface ServerStore {
  createUser(username: string, signatureKey: Uint8Array, now: number): Promise<void>
  userKey(username: string): Promise<Uint8Array | undefined>

  createChallenge(id: string, username: string, nonce: Uint8Array, expiresAt: number): Promise<void>
  /** Deletes the challenge and returns it if it was unexpired: a challenge answers once at most. */
  consumeChallenge(id: string, now: number): Promise<{ username: string; nonce: Uint8Array } | undefined>
  createSession(tokenHash: Uint8Array, username: string, expiresAt: number): Promise<void>
  sessionUser(tokenHash: Uint8Array, now: number): Promise<string | undefined>

  addKeyPackages(owner: string, items: ValidKeyPackage[], cap: number, now: number): Promise<StoreUploadOutcome[]>
  setLastResort(owner: string, item: ValidKeyPackage, now: number): Promise<StoreUploadOutcome>
  reserve(
    owner: string,
    cipherSuite: number,
    requester: string,
    reservationId: string,
    now: number,
    expiresAt: number,
  ): Promise<StoredReservation>
  spend(ref: string, reservationId: string, requester: string, now: number): Promise<StoredSpend>
  withdraw(owner: string, ref: string, now: number): Promise<void>
  keyCounts(owner: string, now: number, soonMs: number): Promise<KeyCounts>
  /** The owner's unexpired ordinary refs held by the server. */
  keyRefs(owner: string, now: number): Promise<{ available: string[]; reserved: string[] }>
  collectGarbage(now: number, retentionMs: number): Promise<GcReport>
  close(): void
}
