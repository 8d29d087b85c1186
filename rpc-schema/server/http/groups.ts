/**
 * Delivery service, groups (DESIGN §2 Delivery): create a group, post Commits and messages, read
 * a group's log. Group ids are the MLS group ids chosen by clients, opaque to the server. MLS
 * messages travel as base64url of the MLSMessage encoding (RFC 9420 §6); the server reads only
 * their cleartext framing (group id, epoch, content type), never their content.
 *
 * The roster is of devices (client ids): each device of a user is a member in its own right, with its own log
 * cursor, Welcome inbox and stream; only devices on the roster read the group's log. Commits, messages and reads act
 * as the session's device.
 */
import { Type, type Static } from "@sinclair/typebox"
import {
  Base64Url,
  DeviceId,
  KeyPackageRef,
  MlsClientId,
  ReservationId,
  Strict,
  TimestampMs,
  UserId,
  UserOrClientRef,
  Username,
} from "../../common.js"
import { route } from "./route.js"

/** Most entries one page of a group log or of an inbox holds. */
export const maxPageSize = 500

/** An MLS group id (RFC 9420 §8.1), base64url; 1 to 255 bytes. */
export const GroupId = Base64Url({ minLength: 2, maxLength: 340, description: "MLS group id, base64url" })
export type GroupId = Static<typeof GroupId>

/** A position in a group log: entries are numbered 1, 2, 3… with no gap; 0 is "before the first". */
export const Seq = Type.Integer({ minimum: 0, description: "log sequence number" })

/** An MLS epoch (RFC 9420 §8). */
export const Epoch = Type.Integer({ minimum: 0, description: "MLS epoch" })

/** One MLSMessage, base64url. Its size limit is the server's (256 KiB by default): larger is message_too_large. */
export const EncodedMlsMessage = Base64Url({ minLength: 4, description: "MLSMessage, base64url" })

/** A non-negative integer in a query string (the server does not coerce types). */
export const QueryInt = Type.String({ pattern: "^[0-9]{1,15}$", description: "decimal integer" })

/** What kind of handshake or application message a log entry is (the MLS content type). */
export const EntryKind = Type.Union([Type.Literal("commit"), Type.Literal("proposal"), Type.Literal("application")])
export type EntryKind = Static<typeof EntryKind>

/** One entry of a group log, as HTTP catch-up and the stream both carry it. */
export const LogEntry = Type.Object({
  groupId: GroupId,
  /** Strictly increasing per group, without gaps. */
  seq: Seq,
  /** The epoch the MLS message names. */
  epoch: Epoch,
  kind: EntryKind,
  /** The handle of the account whose device posted it. */
  sender: Username,
  /** The client id of the device that posted it (authenticated by its session). */
  senderClientId: MlsClientId,
  /** The MLSMessage as posted. */
  message: EncodedMlsMessage,
  /** When the server stored it. */
  receivedAt: TimestampMs,
})
export type LogEntry = Static<typeof LogEntry>

export const GroupParams = Strict({ groupId: GroupId })
export type GroupParams = Static<typeof GroupParams>

/**
 * A GroupInfo MLSMessage (RFC 9420 §12.4.3) for external joins: signed by the committer, with the `external_pub`
 * extension and the `ratchet_tree` extension (the server serves no trees), of the epoch the Commit (or the creation)
 * starts.
 */
export const EncodedGroupInfo = Base64Url({ minLength: 4, description: "MLSMessage GroupInfo, base64url" })

export const CreateGroupBody = Strict({
  groupId: GroupId,
  /** The GroupInfo of epoch 0, so that the creator's other devices can join before the first Commit. */
  groupInfo: Type.Optional(EncodedGroupInfo),
})
export type CreateGroupBody = Static<typeof CreateGroupBody>

/** A group as its members see it. */
export const GroupInfoResult = Type.Object({
  groupId: GroupId,
  /** The current epoch: the next Commit must be made at it. */
  epoch: Epoch,
  /** The seq of the newest log entry ever appended (0 for none). */
  lastSeq: Seq,
  /** The handles of the accounts with a device on the roster, sorted. */
  members: Type.Array(Username),
  /** The roster: the devices that may post and read, sorted by client id. */
  devices: Type.Array(Type.Object({ clientId: MlsClientId, userId: UserId, handle: Username, deviceId: DeviceId })),
})
export type GroupInfoResult = Static<typeof GroupInfoResult>

/** Creates a group at epoch 0 with the caller's device as its only member. */
export const createGroup = route({
  method: "POST",
  path: "/v1/groups",
  auth: true,
  params: undefined,
  body: CreateGroupBody,
  status: 201,
  response: GroupInfoResult,
  errors: ["group_exists", "rate_limited"],
})

/** A group's epoch, head and roster; members only. */
export const getGroup = route({
  method: "GET",
  path: "/v1/groups/:groupId",
  auth: true,
  params: GroupParams,
  body: undefined,
  status: 200,
  response: GroupInfoResult,
  errors: ["group_not_found", "not_member"],
})

/** The calling device's membership of one group. */
export const Membership = Type.Object({
  groupId: GroupId,
  epoch: Epoch,
  lastSeq: Seq,
  /** The caller reads entries after this seq (0 for the creator; the adding Commit's seq for others). */
  joinedSeq: Seq,
  /** The seq of the Commit that removed the caller, whose entries up to it stay readable; null while a member. */
  removedSeq: Type.Union([Seq, Type.Null()]),
})
export type Membership = Static<typeof Membership>
export const ListGroupsResult = Type.Object({ groups: Type.Array(Membership) })
export type ListGroupsResult = Static<typeof ListGroupsResult>

/** The groups the calling device is on the roster of, or was removed from and may still read up to the removal. */
export const listGroups = route({
  method: "GET",
  path: "/v1/groups",
  auth: true,
  params: undefined,
  body: undefined,
  status: 200,
  response: ListGroupsResult,
  errors: [],
})

/** A KeyPackage the Commit consumes: it adds the device that owns it, with the key reserved under `reservationId`. */
export const ConsumedKeyPackage = Strict({
  /**
   * Optional check: the owner of the KeyPackage, as a client id (that device) or a handle or user id (a device of
   * that account). The server knows the owner from the ref; a name that does not match refuses the Commit.
   */
  user: Type.Optional(UserOrClientRef),
  ref: KeyPackageRef,
  /** The caller's unexpired reservation of that key. */
  reservationId: ReservationId,
})
export type ConsumedKeyPackage = Static<typeof ConsumedKeyPackage>

export const CommitBody = Strict({
  /** The Commit, PublicMessage or PrivateMessage framing; its epoch must be the group's current epoch. */
  commit: EncodedMlsMessage,
  /** KeyPackages the Commit's Add proposals consume; each is spent with the Commit (one per added device). */
  keyPackages: Type.Array(ConsumedKeyPackage, { maxItems: 256 }),
  /**
   * Who the Commit removes from the roster: a client id removes that device; a handle or user id every device of
   * that account on the roster.
   */
  removes: Type.Array(UserOrClientRef, { maxItems: 256 }),
  /** The Welcome for the added devices (an MLSMessage); required when keyPackages is not empty. */
  welcome: Type.Optional(EncodedMlsMessage),
  /**
   * The GroupInfo of the new epoch, kept with the group for external joins. Without it no GroupInfo is served until
   * a later Commit brings one (mls-chat's daemons always send it).
   */
  groupInfo: Type.Optional(EncodedGroupInfo),
})
export type CommitBody = Static<typeof CommitBody>

export const PostResult = Type.Object({
  /** Where the message sits in the group log. */
  seq: Seq,
  /** The epoch the message names. */
  epoch: Epoch,
})
export type PostResult = Static<typeof PostResult>

export const CommitResult = Type.Object({
  seq: Seq,
  /** The epoch the Commit was made at. */
  epoch: Epoch,
  /** The group's epoch after the Commit (epoch + 1). */
  newEpoch: Epoch,
})
export type CommitResult = Static<typeof CommitResult>

/**
 * Posts a Commit. In one transaction: the epoch must be the current one (first wins; else
 * epoch_conflict with `details.currentEpoch`), every consumed KeyPackage is spent under the
 * calling device's unexpired reservation, the roster gains the added and loses the removed devices,
 * the Welcome goes to each added device's inbox, a removal notice to each removed device's, the
 * Commit is appended to the log and the epoch advances. Any failure refuses the whole Commit.
 */
export const commit = route({
  method: "POST",
  path: "/v1/groups/:groupId/commits",
  auth: true,
  params: GroupParams,
  body: CommitBody,
  status: 201,
  response: CommitResult,
  errors: [
    "epoch_conflict",
    "not_member",
    "group_not_found",
    "malformed_message",
    "message_too_large",
    "keypackage_not_found",
    "already_spent",
    "reservation_invalid",
    "reservation_expired",
    "forbidden",
    "conflict",
    "rate_limited",
  ],
})

export const JoinInfoResult = Type.Object({
  groupId: GroupId,
  /** The group's current epoch, which the GroupInfo is of: an external Commit is made at it. */
  epoch: Epoch,
  /** The GroupInfo MLSMessage, with `external_pub` and the ratchet tree. */
  groupInfo: EncodedGroupInfo,
})
export type JoinInfoResult = Static<typeof JoinInfoResult>

/**
 * The GroupInfo of the group's current epoch, for an external join. Readable by the devices on the roster and by
 * every device of an account that has a device on the roster (a member's new device, a member that lost sync): the
 * GroupInfo names every member device, which all of these see (or whose account sees) already; strangers get
 * not_member. group_info_unavailable when the Commit that started the epoch carried none.
 */
export const getGroupInfo = route({
  method: "GET",
  path: "/v1/groups/:groupId/group-info",
  auth: true,
  params: GroupParams,
  body: undefined,
  status: 200,
  response: JoinInfoResult,
  errors: ["group_not_found", "not_member", "group_info_unavailable"],
})

export const JoinableGroupsResult = Type.Object({
  /** Sorted by group id. */
  groups: Type.Array(Type.Object({ groupId: GroupId, epoch: Epoch })),
})
export type JoinableGroupsResult = Static<typeof JoinableGroupsResult>

/**
 * The groups the calling device may join by external Commit without being on their roster: those where another
 * device of its account is (a new device finds its account's groups here, with no other device online).
 */
export const joinableGroups = route({
  method: "GET",
  path: "/v1/joinable-groups",
  auth: true,
  params: undefined,
  body: undefined,
  status: 200,
  response: JoinableGroupsResult,
  errors: [],
})

export const ExternalCommitBody = Strict({
  /**
   * The external Commit (RFC 9420 §12.4.3.2): a PublicMessage from a `new_member_commit` sender at the group's
   * current epoch, whose path leaf's credential is the calling device's client id with its bound MLS key; one
   * ExternalInit and at most one Remove, which must remove the caller's own old leaf (a resync).
   */
  commit: EncodedMlsMessage,
  /** The GroupInfo of the new epoch (as for any Commit). */
  groupInfo: Type.Optional(EncodedGroupInfo),
})
export type ExternalCommitBody = Static<typeof ExternalCommitBody>

/**
 * Joins (or rejoins) a group by external Commit, as the calling device. Accepted only from a device of an account
 * with a device on the roster: a member's new device (it must not be on the roster; it joins it, reading from the
 * entry after the Commit), or a member that lost sync (on the roster; its Commit removes its own old leaf, checked
 * against the ratchet tree of the stored GroupInfo). In one transaction as any Commit: epoch check (first wins),
 * roster, log, epoch, GroupInfo.
 */
export const externalCommit = route({
  method: "POST",
  path: "/v1/groups/:groupId/external-commits",
  auth: true,
  params: GroupParams,
  body: ExternalCommitBody,
  status: 201,
  response: CommitResult,
  errors: [
    "epoch_conflict",
    "not_member",
    "group_not_found",
    "group_info_unavailable",
    "malformed_message",
    "message_too_large",
    "forbidden",
    "conflict",
    "rate_limited",
  ],
})

/** A sender's idempotency id for one post: 16 random bytes, base64url. */
export const ClientId = Base64Url({ minLength: 22, maxLength: 22, description: "16-byte idempotency id, base64url" })

export const MessageBody = Strict({
  /** An application message (PrivateMessage) or a proposal; its epoch may not be ahead of the group's. */
  message: EncodedMlsMessage,
  /**
   * Makes the post idempotent: a second post with the same (group, sender, clientId) appends nothing and answers
   * the first one's seq and epoch (a retry after a lost answer or a crash).
   */
  clientId: Type.Optional(ClientId),
})
export type MessageBody = Static<typeof MessageBody>

/**
 * Appends an application or proposal message to the log; roster members only. With `clientId`, a repeat of an
 * accepted post answers the original seq and appends nothing, even if the sender left the roster since.
 */
export const postMessage = route({
  method: "POST",
  path: "/v1/groups/:groupId/messages",
  auth: true,
  params: GroupParams,
  body: MessageBody,
  status: 201,
  response: PostResult,
  errors: ["not_member", "group_not_found", "malformed_message", "message_too_large", "epoch_conflict", "rate_limited"],
})

/** Most messages one batch post carries. */
export const maxBatchSize = 64

/** One message of a batch post: the clientId is required, so every item is idempotent on its own. */
export const BatchItem = Strict({
  /** An application message (PrivateMessage) or a proposal, as in a single post. */
  message: EncodedMlsMessage,
  clientId: ClientId,
})
export type BatchItem = Static<typeof BatchItem>

export const MessageBatchBody = Strict({
  /** Appended in this order, 1..64 items; the whole body stays under the server's 1 MiB request limit. */
  messages: Type.Array(BatchItem, { minItems: 1, maxItems: maxBatchSize }),
})
export type MessageBatchBody = Static<typeof MessageBatchBody>

export const MessageBatchResult = Type.Object({
  /** One result per item, in the order of the request: its seq and epoch (the first post's for a repeated clientId). */
  results: Type.Array(PostResult),
})
export type MessageBatchResult = Static<typeof MessageBatchResult>

/**
 * Appends several messages of one sender, in order, in ONE transaction: each item as postMessage would (a repeated
 * clientId answers the first post's seq and appends nothing). All or nothing: an item that would be refused refuses
 * the whole batch with that item's error (`details.index` names it) and nothing is stored. Rate limiting counts
 * every item.
 */
export const postMessages = route({
  method: "POST",
  path: "/v1/groups/:groupId/messages/batch",
  auth: true,
  params: GroupParams,
  body: MessageBatchBody,
  status: 201,
  response: MessageBatchResult,
  errors: ["not_member", "group_not_found", "malformed_message", "message_too_large", "epoch_conflict", "rate_limited"],
})

export const LogQuery = Strict({
  /** Entries after this seq (default 0). */
  after: Type.Optional(QueryInt),
  /** At most this many entries, 1..500 (default 500). */
  limit: Type.Optional(QueryInt),
})
export type LogQuery = Static<typeof LogQuery>

export const LogResult = Type.Object({
  /** In seq order. Only entries the caller may read: after it joined, up to its removal. */
  entries: Type.Array(LogEntry),
  /** The seq of the newest entry of the group; more pages follow while the last entry's seq is below it. */
  lastSeq: Seq,
  /**
   * Present only when retention deleted entries the caller was entitled to and had not fetched: every entry with a
   * seq in (max(`after`, joinedSeq), prunedThrough] is gone for good, and `entries` start after it. It is the
   * highest deleted seq the caller may read (never above its removedSeq). Its MLS state cannot follow the group
   * across a deleted Commit: the client must rejoin (or be re-added) rather than go on. Continue paging from
   * prunedThrough when `entries` is empty. Absent when the caller's cursor (or its join point) is at or past the
   * deleted range.
   */
  prunedThrough: Type.Optional(Seq),
})
export type LogResult = Static<typeof LogResult>

/**
 * Catch-up: a page of a group's log after a seq. Retention (`--retention-days`) deletes a prefix of each log, the
 * entries up to the newest one older than the retention period; a read that falls into that prefix says so with
 * `prunedThrough` instead of skipping it silently.
 */
export const readLog = route({
  method: "GET",
  path: "/v1/groups/:groupId/log",
  auth: true,
  params: GroupParams,
  query: LogQuery,
  body: undefined,
  status: 200,
  response: LogResult,
  errors: ["group_not_found", "not_member"],
})
