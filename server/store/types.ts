/**
 * The server's storage interface. Every method that changes state is one transaction; the SQLite
 * implementation groups concurrent ones into a shared commit. A PostgreSQL backend implements the
 * same interface.
 *
 * Principals: accounts are named by user id (UUID) or handle; everything device-scoped (challenges, sessions,
 * KeyPackages and their owners, reservations and their requesters, group rosters, log senders, inboxes) is keyed by
 * the device id (16 hex digits). Methods that write an inbox item naming an actor take the actor as a `DeviceRef`, so
 * the item can name its handle and client id.
 */
import type { KeyPackageRejection } from "../../rpc-schema/errors.js"
import type { TokenBuckets } from "../services/rateLimiter.js"
import type { Lapse } from "./lapses.js"

/** A device with its account's names: what a session acts as, and how entries and inbox items name an actor. */
export interface DeviceRef {
  deviceId: string
  userId: string
  handle: string
  /** `<userId>:<deviceId>@<domain>`, fixed when the device was created. */
  clientId: string
}

/** A device as the directory shows it. */
export interface StoredDevice extends DeviceRef {
  loginKey: Uint8Array
  /** Bound by the first accepted KeyPackage upload; null until then. */
  mlsKey: Uint8Array | null
  createdAt: number
  /** Null while active. */
  removedAt: number | null
}

export interface StoredAccount {
  userId: string
  handle: string
  createdAt: number
  /** Every device, active and removed, oldest first. */
  devices: StoredDevice[]
}

/** A device to create: ids and client id assigned by the caller (the service). */
export interface NewDevice {
  deviceId: string
  clientId: string
  loginKey: Uint8Array
}

/** What removing a device changed, for the caller to act on after the commit. */
export interface DeviceRemoval {
  removedAt: number
  /** False when the device had been removed before (nothing changed). */
  changed: boolean
  /** The devices whose inboxes got a `deviceRemoved` item. */
  notified: string[]
}

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
  /** The leaf's signature key: bound to the device by its first accepted upload, and required equal after that. */
  signatureKey: Uint8Array
}

export type StoreUploadOutcome =
  | { status: "accepted" | "duplicate"; ref: string; notAfter: number }
  | {
      status: "rejected"
      reason: Extract<KeyPackageRejection, "init_key_reused" | "cap_exceeded" | "credential_mismatch">
    }

export interface StoredReservation {
  /** The device whose key this is. */
  owner: string
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
  /** The device whose key it was. */
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
  /** Reservations that lapsed unused: each owner got a keyReleased inbox item. */
  lapsedReservations: Lapse[]
  spentKeys: number
}

/** Rate-limit buckets live with the store (services/rateLimiter.ts): one set for every instance on the database. */
export interface ServerStore extends TokenBuckets {
  /** Creates an account with its first device; username_taken when the handle is. */
  createAccount(userId: string, handle: string, device: NewDevice, now: number): Promise<void>
  /** The account named by `ref` (its handle or its user id) with all its devices. */
  account(ref: string): Promise<StoredAccount | undefined>
  /** One device, active or removed. */
  device(deviceId: string): Promise<StoredDevice | undefined>
  /**
   * Adds a device to an account, and a `deviceAdded` item naming `by` to the inbox of each other active device of the
   * account (whose ids it answers); conflict when an active device (of any account) has that login key.
   */
  addDevice(userId: string, device: NewDevice, by: DeviceRef, now: number): Promise<string[]>
  /**
   * Stores a link code's hash for `userId`, made by device `createdBy`, unless the account has `max` unexpired ones
   * already; then answers when the first of those expires, and stores nothing.
   */
  createLinkCode(
    codeHash: Uint8Array,
    userId: string,
    createdBy: string,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined>
  /**
   * In one transaction: deletes the unexpired link code of that hash and adds the device `device(userId)` makes to
   * the code's account, as `addDevice` would with the device that made the code as `by`. invalid_link_code (nothing
   * changes) when there is no such code.
   */
  redeemLinkCode(
    codeHash: Uint8Array,
    device: (userId: string) => NewDevice,
    now: number,
  ): Promise<{ userId: string; handle: string; device: NewDevice; notified: string[] }>
  /**
   * In one transaction: marks the device of `by`'s account removed, deletes its sessions, challenges, link codes and
   * KeyPackages (reserved ones and the last-resort key too), and puts a `deviceRemoved` item naming `by` in the inbox
   * of each remaining active device. unknown_device when the account has no such device; conflict when it is the
   * account's last active one.
   */
  removeDevice(by: DeviceRef, deviceId: string, now: number): Promise<DeviceRemoval>
  /** Whether devices of both accounts (user ids) are on the roster of one group (the directory serves group-mates first). */
  sharesGroup(userA: string, userB: string): Promise<boolean>

  /**
   * Stores a challenge for a device unless it has `max` unexpired ones already; then answers when the first of those
   * expires, and stores nothing.
   */
  createChallenge(
    id: string,
    deviceId: string,
    nonce: Uint8Array,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined>
  /** Deletes the challenge and returns it if it was unexpired: a challenge answers once at most. */
  consumeChallenge(id: string, now: number): Promise<{ deviceId: string; nonce: Uint8Array } | undefined>
  createSession(tokenHash: Uint8Array, deviceId: string, expiresAt: number): Promise<void>
  /** The unexpired session of that token hash, with its device (sessions of removed devices are deleted). */
  session(tokenHash: Uint8Array, now: number): Promise<{ device: DeviceRef; expiresAt: number } | undefined>
  deleteSession(tokenHash: Uint8Array): Promise<void>

  /**
   * Stores the device's validated KeyPackages. The first accepted one binds its signature key to the device when none
   * is bound; one with another key than the bound one is rejected credential_mismatch.
   */
  addKeyPackages(owner: string, items: ValidKeyPackage[], cap: number, now: number): Promise<StoreUploadOutcome[]>
  /** Sets the device's last-resort key, with the same key binding as `addKeyPackages`. */
  setLastResort(owner: string, item: ValidKeyPackage, now: number): Promise<StoreUploadOutcome>
  /**
   * Reserves, in one transaction, one key of each device in `owners` (the oldest available ordinary key, else the
   * last-resort key) for `requester`, each under its own reservation id from `newId`; a device with none is listed in
   * `missing`. With none at all: no_keypackage_available, and nothing changes. Each owner's keyReserved (and poolLow)
   * inbox items are written in the same transaction.
   */
  reserve(
    owners: readonly string[],
    cipherSuite: number,
    requester: DeviceRef,
    newId: () => string,
    now: number,
    expiresAt: number,
    /** Below this many available keys after the reservation, a poolLow item goes to the owner's inbox. */
    lowWatermark: number,
  ): Promise<{ reserved: StoredReservation[]; missing: string[] }>
  /** Spends a reserved key (store/keySpending.ts), with the owner's keySpent inbox item. */
  spend(ref: string, reservationId: string, requester: DeviceRef, now: number): Promise<StoredSpend>
  withdraw(owner: string, ref: string, now: number): Promise<void>
  keyCounts(owner: string, now: number, soonMs: number): Promise<KeyCounts>
  /** The owner's unexpired ordinary refs held by the server. */
  keyRefs(owner: string, now: number): Promise<{ available: string[]; reserved: string[] }>
  collectGarbage(now: number, retentionMs: number): Promise<GcReport>
  close(): void
}

/** One stored group log entry. */
export interface StoredEntry {
  groupId: string
  seq: number
  epoch: number
  kind: "commit" | "proposal" | "application"
  sender: DeviceRef
  data: Uint8Array
  receivedAt: number
}

export interface StoredGroup {
  groupId: string
  epoch: number
  lastSeq: number
  /** The roster (devices), sorted by client id. */
  members: DeviceRef[]
}

/** A device's membership of a group, current or ended. */
export interface StoredMembership {
  groupId: string
  epoch: number
  lastSeq: number
  /** The device reads entries with a seq above this. */
  joinedSeq: number
  /** The seq of the Commit that removed the device (still readable); null while on the roster. */
  removedSeq: number | null
}

export interface CommitInput {
  groupId: string
  sender: DeviceRef
  /** The epoch the Commit names. */
  epoch: number
  data: Uint8Array
  /**
   * The reserved keys the Commit spends: each adds the device that owns it. `user`, when given, must name that
   * device (its client id) or its account (handle or user id).
   */
  consumed: { ref: string; reservationId: string; user?: string }[]
  /** Client ids (one device each), handles or user ids (every device of that account on the roster). */
  removes: string[]
  /** The Welcome MLSMessage, base64url, for each added device's inbox. */
  welcome: string | undefined
  /** The GroupInfo MLSMessage of the epoch the Commit starts, kept with the group for external joins. */
  groupInfo: Uint8Array | undefined
  /**
   * Set for an external Commit (RFC 9420 §12.4.3.2): the sender joins by it instead of being on the roster, so the
   * store checks that it is a device of an account with a device on the roster. `resync`: the Commit removes the
   * sender's own old leaf (checked by the service against this epoch's stored ratchet tree), so the device is on the
   * roster and stays; otherwise it must not be, and joins. `signatureKey` (the joiner's leaf key) must be the MLS key
   * bound to the sending device.
   */
  external?: { resync: boolean; signatureKey: Uint8Array }
  now: number
}

export interface CommitOutcome {
  entry: StoredEntry
  spent: StoredSpend[]
  /** Device ids added and removed. */
  added: string[]
  removed: string[]
  /** The device an external Commit put on the roster (it joined by the Commit, without a Welcome). */
  joinedExternally?: string
}

/** A group's GroupInfo for external joins, and the epoch it is of. */
export interface StoredGroupInfo {
  epoch: number
  data: Uint8Array
}

/** An inbox item; `item` is the wire InboxItem as JSON text, stored and sent as is. */
export interface StoredInboxItem {
  id: number
  item: string
  createdAt: number
}

/** A page of a group log as one device may read it. */
export interface LogPage {
  entries: StoredEntry[]
  /**
   * Set when retention deleted entries this device may read after the cursor: (max(after, joinedSeq), prunedThrough]
   * are gone, and `entries` start after it. Read in the same instant as `entries`.
   */
  prunedThrough?: number
}

/** Unacknowledged inbox items retention deleted: how many, and the highest id among them. */
export interface ExpiredReport {
  count: number
  through: number
}

/** A page of a device's inbox with the report of expired items, read in the same instant. */
export interface InboxPage {
  items: StoredInboxItem[]
  expired?: ExpiredReport
}

export interface DeliveryGcReport {
  logEntries: number
  inboxItems: number
  /** Devices some of whose unacknowledged inbox items were deleted (their streams are told). */
  expiredDevices: string[]
}

/** One message of a batch append. */
export interface AppendItem {
  epoch: number
  kind: "proposal" | "application"
  data: Uint8Array
  clientId?: Uint8Array
}

/**
 * Storage of the delivery service: groups, rosters, logs, inboxes, all per device (device ids). Reads that take a
 * device return only what that device may read, so access control lives in one place.
 */
export interface DeliveryStore extends TokenBuckets {
  /** A group at epoch 0 with its creator on the roster, and (optionally) the GroupInfo of epoch 0. */
  createGroup(groupId: string, creator: DeviceRef, now: number, groupInfo?: Uint8Array): Promise<StoredGroup>
  group(groupId: string): Promise<StoredGroup | undefined>
  /** Groups where a device of `device`'s account is on the roster and `device` is not, sorted by id. */
  joinableGroups(device: DeviceRef): Promise<{ groupId: string; epoch: number }[]>
  /** The GroupInfo of the group's current epoch, if the Commit that started it (or the creation) gave one. */
  groupInfo(groupId: string): Promise<StoredGroupInfo | undefined>
  membership(groupId: string, device: string): Promise<StoredMembership | undefined>
  memberships(device: string): Promise<StoredMembership[]>
  /** The whole Commit transaction of DESIGN §2; throws (changing nothing) to refuse. */
  commit(input: CommitInput): Promise<CommitOutcome>
  /**
   * Appends a proposal or application message from a roster member; the epoch may not be ahead. With `clientId`,
   * an entry of the same sender with that id answers instead (`duplicate`), and nothing is appended.
   */
  append(
    groupId: string,
    sender: DeviceRef,
    epoch: number,
    kind: "proposal" | "application",
    data: Uint8Array,
    now: number,
    clientId?: Uint8Array,
  ): Promise<{ entry: StoredEntry; duplicate: boolean }>
  /**
   * Appends several items of one sender in order, each as `append` would, in ONE transaction; an item that is
   * refused refuses them all (its error carries `details.index`) and nothing is appended.
   */
  appendBatch(
    groupId: string,
    sender: DeviceRef,
    items: readonly AppendItem[],
    now: number,
  ): Promise<{ entry: StoredEntry; duplicate: boolean }[]>
  /**
   * Entries after `after` that `device` may read (joined < seq <= removed), in seq order, and the gap retention
   * left before them, if any.
   */
  readLog(groupId: string, device: string, after: number, limit: number): Promise<LogPage>
  /** Welcome groups waiting in `device`'s inbox after a cursor: they are streamed only after that item. */
  pendingWelcomes(device: string, after: number): Promise<Set<string>>
  /** Items after a cursor, with the device's report of expired items. */
  readInbox(device: string, after: number, limit: number): Promise<InboxPage>
  /** Deletes items up to `upTo`, and the report of expired items if `upTo` reaches its `through`; one transaction. */
  ack(device: string, upTo: number): Promise<number>
  /**
   * Retention, in one transaction: deletes each group log's prefix up to its newest entry received at or before
   * now - retentionMs and records how far (`groups.pruned_seq`); deletes inbox items created by then, adding them to
   * their devices' reports of expired items.
   */
  collectGarbage(now: number, retentionMs: number): Promise<DeliveryGcReport>
}
