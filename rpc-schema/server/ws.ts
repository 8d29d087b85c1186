/**
 * The WebSocket stream at `GET /v1/stream` (upgrade), authenticated with `Authorization: Bearer`
 * on the upgrade request (a bad token is answered 401 with the error body, no upgrade). Frames are
 * JSON text, one message per frame.
 *
 * 1. The client sends `hello` with where it is: per group the last seq it has, and its inbox cursor.
 * 2. The server sends what the client missed (inbox items and log entries), then `caughtUp`, then
 *    live frames as they are stored. There is no gap and no duplicate at that boundary: per group,
 *    entries arrive in seq order, each once per connection.
 * 3. A Welcome's group is streamed only after its `welcome` inbox frame; its entries start after the
 *    adding Commit. A removed member receives entries up to and including the removing Commit, then
 *    the `removed` inbox frame, and nothing of that group after it.
 * 4. Nothing deleted by retention is skipped silently: when a group's entries after the client's cursor
 *    were deleted, a `pruned` frame for that group comes before its next entries (seq jumps only right
 *    after it); when inbox items were deleted unacknowledged, an `inboxExpired` frame comes before the
 *    inbox items read with it (at catch-up, and live when retention deletes more).
 *
 * The server pings every 30 s (configurable) and drops a connection that did not answer the previous
 * ping. A client that reads too slowly for the server's buffer limit is disconnected (the socket
 * is cut, no close frame: 1006 on its side) and resumes from its cursors.
 *
 * Limits: a connection that has not sent a valid `hello` within the hello timeout (10 s, configurable)
 * is closed with `closeCodes.helloTimeout`. A stream lives only as long as the session it was opened
 * with: when that token expires or is revoked (`DELETE /v1/sessions`, or its device removed) it is closed with
 * `closeCodes.sessionEnded`; the client logs in again and resumes from its cursors. One address may
 * hold a limited number of stream connections at once (64, configurable); an upgrade beyond that
 * is answered HTTP 429 `too_many_connections` with the error body, and no WebSocket is opened.
 */
import { Type, type Static } from "@sinclair/typebox"
import { Strict } from "../common.js"
import { errorTable } from "../errors.js"
import { GroupId, LogEntry, Seq } from "./http/groups.js"
import { InboxExpired, InboxId, InboxItem } from "./http/inbox.js"

/** The stream's path (an HTTP GET with Upgrade: websocket). */
export const streamPath = "/v1/stream"

/** Close codes the server uses besides the standard ones. */
export const closeCodes = {
  /** The client sent a frame that is not valid JSON or not a client frame, or a second hello. */
  protocolError: 4000,
  /** The session (bearer token) the stream was opened with expired or was revoked: log in again, then resume. */
  sessionEnded: 4001,
  /** No valid `hello` arrived within the server's hello timeout. */
  helloTimeout: 4002,
  /** The server is shutting down (1001, going away). */
  goingAway: 1001,
} as const

/**
 * The reason text sent with each of the server's closes (a protocol error's reason says what was wrong instead).
 * Clients act on the code; the reason is for people and logs.
 */
export const closeReasons = {
  /** With `closeCodes.sessionEnded`: the token reached its `expiresAt`. */
  sessionExpired: "session expired",
  /** With `closeCodes.sessionEnded`: the token was revoked (logout). */
  sessionRevoked: "session revoked",
  /** With `closeCodes.sessionEnded`: the stream's device was removed from its account; it cannot log in again. */
  deviceRemoved: "device removed",
  /** With `closeCodes.helloTimeout`. */
  helloTimeout: "no hello frame in time",
  /** With `closeCodes.goingAway`. */
  goingAway: "server shutting down",
} as const

/** Where the client is in one group. */
export const GroupCursor = Strict({
  groupId: GroupId,
  /** The last seq the client has of this group (0 for none). */
  after: Seq,
})
export type GroupCursor = Static<typeof GroupCursor>

/** client → server, first frame: where the client is. Groups it does not name start at its join point. */
export const HelloFrame = Strict({
  type: Type.Literal("hello"),
  groups: Type.Array(GroupCursor, { maxItems: 10_000 }),
  /** The last inbox cursor the client has seen (0 for none). */
  inboxAfter: InboxId,
})
export type HelloFrame = Static<typeof HelloFrame>

/** client → server: acknowledge (delete) inbox items up to and including `upTo`; clears an `inboxExpired` report it reaches. */
export const AckFrame = Strict({ type: Type.Literal("ack"), upTo: InboxId })
export type AckFrame = Static<typeof AckFrame>

/** Every frame a client may send. */
export const ClientFrame = Type.Union([HelloFrame, AckFrame])
export type ClientFrame = Static<typeof ClientFrame>

/** server → client: one group log entry. */
export const EntryFrame = Type.Composite([Type.Object({ type: Type.Literal("entry") }), LogEntry])
export type EntryFrame = Static<typeof EntryFrame>

/** server → client: one inbox item with its cursor. */
export const InboxFrame = Type.Object({
  type: Type.Literal("inbox"),
  id: InboxId,
  item: InboxItem,
  createdAt: Type.Integer({ minimum: 0 }),
})
export type InboxFrame = Static<typeof InboxFrame>

/** server → client, once per connection: everything stored before this frame has been sent. */
export const CaughtUpFrame = Type.Object({
  type: Type.Literal("caughtUp"),
  /** The client's position per streamed group at that moment. */
  groups: Type.Array(Type.Object({ groupId: GroupId, seq: Seq })),
  /** The last inbox cursor sent. */
  inbox: InboxId,
})
export type CaughtUpFrame = Static<typeof CaughtUpFrame>

/**
 * server → client: retention deleted entries of a group that this client had not received: every seq in
 * (after, prunedThrough] is gone for good. Sent before the group's next entries (the next `entry` of the group has
 * a seq above prunedThrough) and counted as received: the client's cursor for the group becomes prunedThrough. The
 * same gap as `prunedThrough` of the log route; a deleted Commit means the client's MLS state cannot follow the
 * group any more (it must rejoin or be re-added). Never sent when the cursor (or the join point) is at or past the
 * deleted range.
 */
export const PrunedFrame = Type.Object({
  type: Type.Literal("pruned"),
  groupId: GroupId,
  /** Where the stream was in the group: the client's cursor (at least its join point). */
  after: Seq,
  /** The highest deleted seq this client may read (never above its removal). */
  prunedThrough: Seq,
})
export type PrunedFrame = Static<typeof PrunedFrame>

/**
 * server → client: inbox items of the user were deleted by retention before being acknowledged (rpc-schema
 * server/http/inbox.ts `InboxExpired`). Sent before the inbox items read together with it: at catch-up, and live
 * when retention deletes more (then with the new totals). The report stays on the server, and comes again on the
 * next connection, until an `ack` with `upTo >= through` clears it.
 */
export const InboxExpiredFrame = Type.Composite([Type.Object({ type: Type.Literal("inboxExpired") }), InboxExpired])
export type InboxExpiredFrame = Static<typeof InboxExpiredFrame>

/** server → client: a request of the client could not be honoured (the connection stays open). */
export const ErrorFrame = Type.Object({
  type: Type.Literal("error"),
  /** A stable snake_case code of rpc-schema/errors.ts, e.g. not_member for a hello naming a foreign group. */
  code: Type.Union(Object.keys(errorTable).map((c) => Type.Literal(c))),
  message: Type.String(),
  /** The group concerned, if any. */
  groupId: Type.Optional(GroupId),
})
export type ErrorFrame = Static<typeof ErrorFrame>

/** Every frame the server sends. */
export const ServerFrame = Type.Union([
  EntryFrame,
  InboxFrame,
  CaughtUpFrame,
  ErrorFrame,
  PrunedFrame,
  InboxExpiredFrame,
])
export type ServerFrame = Static<typeof ServerFrame>
