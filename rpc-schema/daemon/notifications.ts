/**
 * Notifications the daemon sends to subscribed connections. Each carries `eventId`: events are recorded durably,
 * and `events.subscribe {since}` replays the ones after that id first, so nothing is lost while no frontend listens.
 */
import { Type, type Static } from "@sinclair/typebox"
import { ConnectionState } from "./daemon.js"
import { GroupStatus, Invitation } from "./group.js"
import { notification } from "./method.js"
import { PoolStatusResult } from "./pool.js"
import { described, DeviceId, MlsClientId, TimestampMs, UserId, Username } from "../common.js"

export const EventId = Type.Integer({ minimum: 1, description: "durable event id, increasing" })

export const PoolChangedParams = Type.Object({
  eventId: EventId,
  reason: described(
    Type.String(),
    "What changed: `maintenance` (a pass finished), `reserved`, `spent`, `released` (a reservation lapsed unused), `low` (the server said so).",
  ),
  status: described(PoolStatusResult, "the pool's figures after the change, as pool.status answers"),
})
export type PoolChangedParams = Static<typeof PoolChangedParams>

export const poolChanged = notification({
  name: "pool.changed",
  summary: "the KeyPackage pool changed",
  description: "The pool changed: a maintenance pass ended (successfully or not) or the server reported a reservation.",
  params: PoolChangedParams,
})

export const ConnectionChangedParams = Type.Object({
  eventId: EventId,
  state: ConnectionState,
  server: described(Type.Union([Type.String(), Type.Null()]), "the server URL; null before registration"),
  error: described(Type.Union([Type.String(), Type.Null()]), "Why the link is down, when it is."),
})
export type ConnectionChangedParams = Static<typeof ConnectionChangedParams>

export const connectionChanged = notification({
  name: "connection.changed",
  summary: "the link to the server went up or down",
  description: "The link to the server went up or down.",
  params: ConnectionChangedParams,
})

export const MessageReceivedParams = Type.Object({
  eventId: EventId,
  groupId: described(Type.String(), "MLS group id, base64url"),
  group: described(Type.String(), "The group's name (members only)."),
  seq: described(Type.Integer({ minimum: 1 }), "the message's position in the group log (server seq)"),
  sender: described(Username, "the sending user's handle"),
  senderDevice: described(
    Type.Union([DeviceId, Type.Null()]),
    "the sending device's id (null for a leaf from before devices whose account was not looked up since)",
  ),
  text: described(Type.String(), "the message text"),
  sentAt: TimestampMs,
})
export type MessageReceivedParams = Static<typeof MessageReceivedParams>

export const messageReceived = notification({
  name: "message.received",
  summary: "a message arrived in a group",
  description:
    "A message of another device (another member's, or another device of this account) was decrypted and stored.",
  params: MessageReceivedParams,
})

export const MessageRefusedParams = Type.Object({
  eventId: EventId,
  groupId: described(Type.String(), "MLS group id, base64url"),
  group: described(Type.String(), "The group's name (members only)."),
  clientId: described(Type.String(), "The `clientId` message.send answered with, base64url."),
  text: described(Type.String(), "the text that was not sent"),
  createdAt: described(TimestampMs, "When message.send stored it in the outbox."),
  code: described(
    Type.String(),
    "The server's stable snake_case code: `not_member`, `group_not_found`, `message_too_large`, `epoch_conflict`, …",
  ),
  message: described(Type.String(), "why, in one line"),
})
export type MessageRefusedParams = Static<typeof MessageRefusedParams>

export const messageRefused = notification({
  name: "message.refused",
  summary: "a queued own message was refused by the server and not sent",
  description:
    "An own message waiting in the outbox was refused by the server for good and dropped: it was not sent. Sent only when no message.send call waits for that answer (the message was queued before a restart, or its call was answered `queued`); a waiting call gets the error itself.",
  params: MessageRefusedParams,
})

/** What group.joined and group.updated both say of the group: where it stands now. */
const groupNow = {
  eventId: EventId,
  groupId: described(Type.String(), "MLS group id, base64url"),
  name: described(Type.String(), "the group's name (members only)"),
  epoch: described(Type.Integer({ minimum: 0 }), "the epoch the group is at now"),
  members: described(Type.Array(Username), "the members' handles, in the order of their first leaf"),
}

/** A device named in a membership change. */
export const DeviceRef = Type.Object({
  username: described(Username, "the device's user (handle)"),
  deviceId: described(Type.Union([DeviceId, Type.Null()]), "the device's id; null for a leaf from before devices"),
  clientId: described(
    Type.String(),
    "the leaf's credential identity (client id, or a bare handle from before devices)",
  ),
})
export type DeviceRef = Static<typeof DeviceRef>

export const GroupJoinedParams = Type.Object({
  ...groupNow,
  by: described(Username, "Who added this profile."),
})
export type GroupJoinedParams = Static<typeof GroupJoinedParams>

export const groupJoined = notification({
  name: "group.joined",
  summary: "this profile joined a group",
  description: "This profile joined a group from a Welcome.",
  params: GroupJoinedParams,
})

export const GroupUpdatedParams = Type.Object({
  ...groupNow,
  added: described(Type.Array(Username), "users the change brought in (none of their devices was in the group)"),
  removed: described(Type.Array(Username), "users the change took out (none of their devices is left)"),
  addedDevices: described(Type.Array(DeviceRef), "the devices the change added"),
  removedDevices: described(Type.Array(DeviceRef), "the devices the change removed"),
  by: described(Type.Union([Username, Type.Null()]), "Who committed the change (null when unknown)."),
  reason: described(
    Type.String(),
    "`commit` (a Commit was applied; an external Commit's `by` is the joiner), `removed` (this profile was removed), `leaveProposed` (`by` proposed to leave), `outOfSync` (a Commit in the group's log could not be applied: the group is `out_of_sync` until `group.rejoin` or a new Welcome), `rejoined` (this profile rejoined it by external Commit).",
  ),
})
export type GroupUpdatedParams = Static<typeof GroupUpdatedParams>

export const groupUpdated = notification({
  name: "group.updated",
  summary: "a group's members or epoch changed",
  description: "A group's membership or epoch changed.",
  params: GroupUpdatedParams,
})

export const InviteFailedParams = Type.Object({
  eventId: EventId,
  groupId: described(Type.String(), "MLS group id, base64url"),
  by: described(Username, "Who sent the Welcome."),
  code: described(
    Type.String(),
    "A stable snake_case code: `unknown_keypackage`, `keypackage_consumed`, `credential_refused`, `invalid_welcome`, `retries_exhausted` (handling it failed for a passing reason too many times or for too long; given up), or `removed` (a pending invitation dropped: a member removed this profile before it was accepted).",
  ),
  message: described(Type.String(), "why, in one line"),
})
export type InviteFailedParams = Static<typeof InviteFailedParams>

export const inviteFailed = notification({
  name: "invite.failed",
  summary: "a Welcome could not be used",
  description: "A Welcome could not be used (its KeyPackage is unknown or used, or the group failed validation).",
  params: InviteFailedParams,
})

export const InviteReceivedParams = Type.Object({ eventId: EventId, ...Invitation.properties })
export type InviteReceivedParams = Static<typeof InviteReceivedParams>

export const inviteReceived = notification({
  name: "invite.received",
  summary: "a Welcome waits for consent",
  description:
    "Another user added this profile to a group while `invites` is `ask`: the Welcome is stored as a pending invitation (group.invites) until group.accept or group.decline.",
  params: InviteReceivedParams,
})

export const CredentialRefusedParams = Type.Object({
  eventId: EventId,
  username: described(
    Type.Union([Username, Type.Null()]),
    "the user (handle) whose device was refused; null when the directory knows no such account",
  ),
  clientId: described(Type.String(), "the refused credential identity (a client id, or a bare handle)"),
  reason: described(Type.String(), "Why: the key differs from the pinned one, or from the directory's."),
  signatureKey: described(Type.String(), "The key offered, base64url."),
})
export type CredentialRefusedParams = Static<typeof CredentialRefusedParams>

export const credentialRefused = notification({
  name: "credential.refused",
  summary: "a member's signature key was refused",
  description:
    "A device's credential was refused: its signature key changed since it was pinned, is not the directory's, or the directory does not list the device (removed, unknown).",
  params: CredentialRefusedParams,
})

export const DeviceAddedParams = Type.Object({
  eventId: EventId,
  username: described(Username, "the user (handle) with a new device"),
  userId: described(UserId, "the user's account id"),
  deviceId: described(DeviceId, "the new device's id"),
  clientId: described(MlsClientId, "the new device's client id"),
  signatureKey: described(Type.String(), "its MLS signature key as pinned now, base64url"),
  own: described(Type.Boolean(), "a new device of this account"),
})
export type DeviceAddedParams = Static<typeof DeviceAddedParams>

export const deviceAdded = notification({
  name: "device.added",
  summary: "a known user (or this account) has a new device",
  description:
    "A device of a user this profile already knew a device of was seen for the first time (in a group, or in the directory for this account) and its key pinned, like a safety-number change elsewhere: check with the person that the new device is theirs. Its key is pinned from now on: a later change is refused (`credential.refused`).",
  params: DeviceAddedParams,
})

export const GroupHistoryLostParams = Type.Object({
  eventId: EventId,
  groupId: described(Type.String(), "MLS group id, base64url"),
  group: described(Type.String(), "The group's name (members only)."),
  after: described(Type.Integer({ minimum: 0 }), "The last log entry this daemon had processed of the group."),
  prunedThrough: described(
    Type.Integer({ minimum: 1 }),
    "The highest seq retention deleted before this daemon fetched it: every entry in (`after`, `prunedThrough`] is gone for good (messages in it will never be shown); the daemon goes on after it.",
  ),
  lost: described(
    Type.Integer({ minimum: 1 }),
    "How many log seqs were lost: `prunedThrough - after` (own messages among them are in the history already).",
  ),
  canContinue: described(
    Type.Boolean(),
    "true: only entries of this member's current epoch were lost (application messages, proposals); the group goes on (`status` stays `active`). false: a Commit was among them, so this member's MLS state cannot follow the group; it becomes `out_of_sync`, and sends and changes fail with `group_out_of_sync` until it rejoins (`group.rejoin`) or a member re-adds it.",
  ),
  epoch: described(Type.Integer({ minimum: 0 }), "The epoch of this member's MLS state."),
  groupEpoch: described(
    Type.Integer({ minimum: 0 }),
    "The epoch of the group's first entry after the gap (its current epoch when none follows).",
  ),
  status: described(GroupStatus, "The group's status afterwards: `active` or `out_of_sync`."),
  rejoined: described(
    Type.Boolean(),
    "true: sent when this profile rejoined the group by external Commit (`group.rejoin`): the entries in (`after`, `prunedThrough`] — deleted by retention, or after a Commit this daemon could not apply — were never read by it and never will be; `prunedThrough` is the entry before its rejoining Commit. false: retention deleted them (see `canContinue`).",
  ),
})
export type GroupHistoryLostParams = Static<typeof GroupHistoryLostParams>

export const groupHistoryLost = notification({
  name: "group.historyLost",
  summary: "log entries of a group were deleted by retention before this profile fetched them",
  description:
    "Retention on the server deleted log entries of a group before this daemon fetched them (the daemon was offline for longer than the server's retention period). Recorded in the transaction that moves the group's cursor over the gap (and marks the group `out_of_sync` when it cannot continue), so it is sent once and never lost.",
  params: GroupHistoryLostParams,
})

export const InvitesExpiredParams = Type.Object({
  eventId: EventId,
  count: described(
    Type.Integer({ minimum: 1 }),
    "How many of this profile's inbox items the server's retention deleted before the daemon received them (Welcomes, removal notices, key-directory events), counted since the server's report was last cleared. A report that grew before the daemon's acknowledgement reached the server comes again with the larger totals.",
  ),
  through: described(
    Type.Integer({ minimum: 0 }),
    "The server's inbox cursor of the newest of them (the report is acknowledged up to it).",
  ),
})
export type InvitesExpiredParams = Static<typeof InvitesExpiredParams>

export const invitesExpired = notification({
  name: "invites.expired",
  summary: "inbox items (invitations among them) expired on the server before this profile received them",
  description:
    "Inbox items of this profile expired on the server unread: invitations (Welcomes) among them are lost, so a group someone added this profile to may never appear (ask a member to re-add you). Lost key-directory events are repaired by a pool maintenance pass, which the daemon starts. Recorded before the daemon acknowledges the report to the server, and once per report (a report repeated after a restart is not sent again).",
  params: InvitesExpiredParams,
})

export const PoolSuspiciousParams = Type.Object({
  eventId: EventId,
  reason: Type.Union([Type.Literal("lapses"), Type.Literal("strangers")], {
    description:
      "lapses: one requester let more reservations lapse unused than the threshold; strangers: requesters who share " +
      "no group with this profile took most of the recent claims",
  }),
  username: Type.Union([Username, Type.Null()], {
    description: "the requester, for `lapses`; null for `strangers`",
  }),
  count: Type.Integer({
    minimum: 1,
    description: "lapsed reservations of that requester (lapses), or reservations by strangers (strangers)",
  }),
  total: Type.Integer({ minimum: 1, description: "all reservations in the window" }),
  windowMs: Type.Integer({ minimum: 1, description: "the window counted, ending now" }),
  threshold: Type.Number({
    minimum: 0,
    description: "the limit passed: lapses per requester, or the strangers' share of the claims (0..1)",
  }),
})
export type PoolSuspiciousParams = Static<typeof PoolSuspiciousParams>

/**
 * Someone may be draining this profile's pool: a requester keeps reserving keys and letting the reservations lapse,
 * or strangers take most of the claims. At most once per requester (or once for strangers) per window; `pool.usage`
 * has the details.
 */
export const poolSuspicious = notification({
  name: "pool.suspicious",
  summary: "someone may be draining this profile's KeyPackage pool",
  description:
    "Fires when one requester lets more than `policy.suspiciousLapses` reservations lapse within an hour, or when " +
    "requesters who share no group with this profile made more than half of at least 8 claims within an hour; at " +
    "most once per requester (or for strangers) per hour.",
  params: PoolSuspiciousParams,
})
