/**
 * The server's storage interface. Every method that changes state is one transaction; the SQLite
 * implementation groups concurrent ones into a shared commit. A PostgreSQL backend implements the
 * same interface.
 */
import type { KeyPackageRejection } from "../../rpc-schema/errors.js"
import type { Lapse } from "./lapses.js"

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
  /** Reservations that lapsed unused: each owner got a keyReleased inbox item. */
  lapsedReservations: Lapse[]
  spentKeys: number
}

export interface ServerStore {
  createUser(username: string, signatureKey: Uint8Array, now: number): Promise<void>
  userKey(username: string): Promise<Uint8Array | undefined>
  /** Whether both users are on the roster of one group (the key directory serves group-mates first). */
  sharesGroup(a: string, b: string): Promise<boolean>

  /**
   * Stores a challenge unless `username` has `max` unexpired ones already; then answers when the first of those
   * expires, and stores nothing.
   */
  createChallenge(
    id: string,
    username: string,
    nonce: Uint8Array,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined>
  /** Deletes the challenge and returns it if it was unexpired: a challenge answers once at most. */
  consumeChallenge(id: string, now: number): Promise<{ username: string; nonce: Uint8Array } | undefined>
  createSession(tokenHash: Uint8Array, username: string, expiresAt: number): Promise<void>
  /** The unexpired session of that token hash. */
  session(tokenHash: Uint8Array, now: number): Promise<{ username: string; expiresAt: number } | undefined>
  deleteSession(tokenHash: Uint8Array): Promise<void>

  addKeyPackages(owner: string, items: ValidKeyPackage[], cap: number, now: number): Promise<StoreUploadOutcome[]>
  setLastResort(owner: string, item: ValidKeyPackage, now: number): Promise<StoreUploadOutcome>
  /** Reserves a key; the owner's keyReserved (and poolLow) inbox items are written in the same transaction. */
  reserve(
    owner: string,
    cipherSuite: number,
    requester: string,
    reservationId: string,
    now: number,
    expiresAt: number,
    /** Below this many available keys after the reservation, a poolLow item goes to the owner's inbox. */
    lowWatermark: number,
  ): Promise<StoredReservation>
  /** Spends a reserved key (store/keySpending.ts), with the owner's keySpent inbox item. */
  spend(ref: string, reservationId: string, requester: string, now: number): Promise<StoredSpend>
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
  sender: string
  data: Uint8Array
  receivedAt: number
}

export interface StoredGroup {
  groupId: string
  epoch: number
  lastSeq: number
  /** The roster, sorted. */
  members: string[]
}

/** A user's membership of a group, current or ended. */
export interface StoredMembership {
  groupId: string
  epoch: number
  lastSeq: number
  /** The user reads entries with a seq above this. */
  joinedSeq: number
  /** The seq of the Commit that removed the user (still readable); null while on the roster. */
  removedSeq: number | null
}

export interface CommitInput {
  groupId: string
  sender: string
  /** The epoch the Commit names. */
  epoch: number
  data: Uint8Array
  consumed: { user: string; ref: string; reservationId: string }[]
  removes: string[]
  /** The Welcome MLSMessage, base64url, for each added user's inbox. */
  welcome: string | undefined
  now: number
}

export interface CommitOutcome {
  entry: StoredEntry
  spent: StoredSpend[]
  added: string[]
  removed: string[]
}

/** An inbox item; `item` is the wire InboxItem as JSON text, stored and sent as is. */
export interface StoredInboxItem {
  id: number
  item: string
  createdAt: number
}

/** A page of a group log as one user may read it. */
export interface LogPage {
  entries: StoredEntry[]
  /**
   * Set when retention deleted entries this user may read after the cursor: (max(after, joinedSeq), prunedThrough]
   * are gone, and `entries` start after it. Read in the same instant as `entries`.
   */
  prunedThrough?: number
}

/** Unacknowledged inbox items retention deleted: how many, and the highest id among them. */
export interface ExpiredReport {
  count: number
  through: number
}

/** A page of a user's inbox with the report of expired items, read in the same instant. */
export interface InboxPage {
  items: StoredInboxItem[]
  expired?: ExpiredReport
}

export interface DeliveryGcReport {
  logEntries: number
  inboxItems: number
  /** Users some of whose unacknowledged inbox items were deleted (their streams are told). */
  expiredUsers: string[]
}

/** One message of a batch append. */
export interface AppendItem {
  epoch: number
  kind: "proposal" | "application"
  data: Uint8Array
  clientId?: Uint8Array
}

/**
 * Storage of the delivery service: groups, rosters, logs, inboxes. Reads that take a user name
 * return only what that user may read, so access control lives in one place.
 */
export interface DeliveryStore {
  createGroup(groupId: string, creator: string, now: number): Promise<StoredGroup>
  group(groupId: string): Promise<StoredGroup | undefined>
  membership(groupId: string, username: string): Promise<StoredMembership | undefined>
  memberships(username: string): Promise<StoredMembership[]>
  /** The whole Commit transaction of DESIGN §2; throws (changing nothing) to refuse. */
  commit(input: CommitInput): Promise<CommitOutcome>
  /**
   * Appends a proposal or application message from a roster member; the epoch may not be ahead. With `clientId`,
   * an entry of the same sender with that id answers instead (`duplicate`), and nothing is appended.
   */
  append(
    groupId: string,
    sender: string,
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
    sender: string,
    items: readonly AppendItem[],
    now: number,
  ): Promise<{ entry: StoredEntry; duplicate: boolean }[]>
  /**
   * Entries after `after` that `username` may read (joined < seq <= removed), in seq order, and the gap retention
   * left before them, if any.
   */
  readLog(groupId: string, username: string, after: number, limit: number): Promise<LogPage>
  /** Welcome groups waiting in `username`'s inbox after a cursor: they are streamed only after that item. */
  pendingWelcomes(username: string, after: number): Promise<Set<string>>
  /** Items after a cursor, with the user's report of expired items. */
  readInbox(username: string, after: number, limit: number): Promise<InboxPage>
  /** Deletes items up to `upTo`, and the report of expired items if `upTo` reaches its `through`; one transaction. */
  ack(username: string, upTo: number): Promise<number>
  /**
   * Retention, in one transaction: deletes each group log's prefix up to its newest entry received at or before
   * now - retentionMs and records how far (`groups.pruned_seq`); deletes inbox items created by then, adding them to
   * their users' reports of expired items.
   */
  collectGarbage(now: number, retentionMs: number): Promise<DeliveryGcReport>
}
