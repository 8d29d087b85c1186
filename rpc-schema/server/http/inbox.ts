/**
 * Delivery service, per-device inbox: Welcomes, removal notices and key-directory events for the
 * calling device (each device of a user has its own inbox). Items are numbered by a cursor that only grows; they stay until acknowledged or until
 * the retention period ends. Items that retention deletes unacknowledged are counted for the
 * user (`InboxExpired`) until an acknowledgement reaches the highest of them.
 */
import { Type, type Static } from "@sinclair/typebox"
import { DeviceId, Strict, Username, KeyPackageRef, MlsClientId } from "../../common.js"
import { EncodedMlsMessage, Epoch, GroupId, QueryInt, Seq } from "./groups.js"
import { route } from "./route.js"

/** The position of an inbox item; increasing, not contiguous (cursors are server-wide). */
export const InboxId = Type.Integer({ minimum: 0, description: "inbox cursor" })

/** What an inbox item says. */
export const InboxItem = Type.Union([
  /** The caller was added to a group: join with this Welcome (RFC 9420 §12.4.3.1). */
  Type.Object({
    kind: Type.Literal("welcome"),
    groupId: GroupId,
    /** The seq of the adding Commit; the new member's log starts after it. */
    seq: Seq,
    /** The epoch the new member joins at. */
    epoch: Epoch,
    /** Who committed the add: the account's handle. */
    by: Username,
    /** The device that committed it (absent in items stored before devices). */
    byClientId: Type.Optional(MlsClientId),
    /** The Welcome MLSMessage. */
    welcome: EncodedMlsMessage,
  }),
  /** The caller was removed from a group by the Commit at `seq`; nothing after it is delivered. */
  Type.Object({
    kind: Type.Literal("removed"),
    groupId: GroupId,
    seq: Seq,
    /** The epoch the removing Commit was made at. */
    epoch: Epoch,
    by: Username,
    /** The device that committed it (absent in items stored before devices). */
    byClientId: Type.Optional(MlsClientId),
  }),
  /** One of the caller's KeyPackages was reserved by `by`. */
  Type.Object({
    kind: Type.Literal("keyReserved"),
    ref: KeyPackageRef,
    by: Username,
    /** The device that reserved it (absent in items stored before devices). */
    byClientId: Type.Optional(MlsClientId),
    lastResort: Type.Boolean(),
    /** Ordinary keys still available after the reservation. */
    remainingAvailable: Type.Integer({ minimum: 0 }),
  }),
  /** One of the caller's KeyPackages was spent by `by` (used in a Commit or spent directly). */
  Type.Object({
    kind: Type.Literal("keySpent"),
    ref: KeyPackageRef,
    by: Username,
    /** The device that spent it (absent in items stored before devices). */
    byClientId: Type.Optional(MlsClientId),
    lastResort: Type.Boolean(),
  }),
  /**
   * A reservation `by` made of one of the caller's KeyPackages lapsed unused: the key is available again (a
   * last-resort key always was). Key-use transparency: the owner sees who takes keys and never uses them.
   */
  Type.Object({
    kind: Type.Literal("keyReleased"),
    ref: KeyPackageRef,
    by: Username,
    /** The device whose reservation lapsed (absent in items stored before devices). */
    byClientId: Type.Optional(MlsClientId),
    lastResort: Type.Boolean(),
    /** When the reservation was made. */
    reservedAt: Type.Integer({ minimum: 0 }),
  }),
  /** The caller's pool fell under the low watermark: upload more KeyPackages. */
  Type.Object({ kind: Type.Literal("poolLow"), available: Type.Integer({ minimum: 0 }) }),
  /**
   * A device was added to the caller's account (linked with a code, or added directly); every other active device of
   * the account gets this, so that one of them adds the new device to the account's groups.
   */
  Type.Object({
    kind: Type.Literal("deviceAdded"),
    deviceId: DeviceId,
    clientId: MlsClientId,
    /** The device that made the link code or added it. */
    byClientId: MlsClientId,
  }),
  /**
   * A device of the caller's account was removed; every remaining active device of the account gets this, so that
   * one of them removes its leaves from the account's groups.
   */
  Type.Object({
    kind: Type.Literal("deviceRemoved"),
    deviceId: DeviceId,
    clientId: MlsClientId,
    /** The device that removed it. */
    byClientId: MlsClientId,
  }),
])
export type InboxItem = Static<typeof InboxItem>

/** An inbox item with its cursor. */
export const InboxEntry = Type.Object({ id: InboxId, item: InboxItem, createdAt: Type.Integer({ minimum: 0 }) })
export type InboxEntry = Static<typeof InboxEntry>

export const InboxQuery = Strict({
  /** Items after this cursor (default 0). */
  after: Type.Optional(QueryInt),
  /** At most this many items, 1..500 (default 500). */
  limit: Type.Optional(QueryInt),
})
export type InboxQuery = Static<typeof InboxQuery>
/**
 * Inbox items retention deleted before the user acknowledged them. The server keeps one such report per user and
 * adds to it at each deletion; it is repeated by every inbox read and every stream's catch-up until an
 * acknowledgement (`POST /v1/inbox/ack` or the stream's `ack`) with `upTo >= through` clears it, so a lost answer
 * loses nothing. An item the client had received but not yet acknowledged when it was deleted is counted too.
 * What was lost can be read back elsewhere: `GET /v1/groups` lists every membership (a group without its Welcome
 * is a lost invitation: ask a member to re-add you; `removedSeq` a lost removal), and the key directory's status and
 * refs the state of the pool (lost key events).
 */
export const InboxExpired = Type.Object({
  /** How many unacknowledged items were deleted since the report was last cleared (at least 1). */
  count: Type.Integer({ minimum: 1 }),
  /** The highest inbox cursor among them: acknowledging up to it (or past it) clears the report. */
  through: InboxId,
})
export type InboxExpired = Static<typeof InboxExpired>

export const InboxResult = Type.Object({
  items: Type.Array(InboxEntry),
  /** Present while unacknowledged items deleted by retention have not been acknowledged past (see InboxExpired). */
  expired: Type.Optional(InboxExpired),
})
export type InboxResult = Static<typeof InboxResult>

/** A page of the caller's unacknowledged inbox items after a cursor, with the report of expired items if any. */
export const readInbox = route({
  method: "GET",
  path: "/v1/inbox",
  auth: true,
  params: undefined,
  query: InboxQuery,
  body: undefined,
  status: 200,
  response: InboxResult,
  errors: [],
})

export const AckBody = Strict({
  /**
   * Deletes every item of the caller's inbox up to and including this cursor, and clears the report of expired
   * items when this reaches its `through`.
   */
  upTo: InboxId,
})
export type AckBody = Static<typeof AckBody>
export const AckResult = Type.Object({ deleted: Type.Integer({ minimum: 0 }) })
export type AckResult = Static<typeof AckResult>

/** Acknowledges inbox items: they are deleted (and an InboxExpired report they reach is cleared). */
export const ackInbox = route({
  method: "POST",
  path: "/v1/inbox/ack",
  auth: true,
  params: undefined,
  body: AckBody,
  status: 200,
  response: AckResult,
  errors: [],
})
