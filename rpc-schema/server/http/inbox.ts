/**
 * Delivery service, per-user inbox: Welcomes, removal notices and key-directory events for the
 * caller. Items are numbered by a cursor that only grows; they stay until acknowledged or until
 * the retention period ends.
 */
import { Type, type Static } from "@sinclair/typebox"
import { Strict, Username, KeyPackageRef } from "../../common.js"
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
    /** Who committed the add. */
    by: Username,
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
  }),
  /** One of the caller's KeyPackages was reserved by `by`. */
  Type.Object({
    kind: Type.Literal("keyReserved"),
    ref: KeyPackageRef,
    by: Username,
    lastResort: Type.Boolean(),
    /** Ordinary keys still available after the reservation. */
    remainingAvailable: Type.Integer({ minimum: 0 }),
  }),
  /** One of the caller's KeyPackages was spent by `by` (used in a Commit or spent directly). */
  Type.Object({ kind: Type.Literal("keySpent"), ref: KeyPackageRef, by: Username, lastResort: Type.Boolean() }),
  /** The caller's pool fell under the low watermark: upload more KeyPackages. */
  Type.Object({ kind: Type.Literal("poolLow"), available: Type.Integer({ minimum: 0 }) }),
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
export const InboxResult = Type.Object({ items: Type.Array(InboxEntry) })
export type InboxResult = Static<typeof InboxResult>

/** A page of the caller's unacknowledged inbox items after a cursor. */
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
  /** Deletes every item of the caller's inbox up to and including this cursor. */
  upTo: InboxId,
})
export type AckBody = Static<typeof AckBody>
export const AckResult = Type.Object({ deleted: Type.Integer({ minimum: 0 }) })
export type AckResult = Static<typeof AckResult>

/** Acknowledges inbox items: they are deleted. */
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
