/** `group.*`: chat groups (DESIGN §3 Groups). Group names are known to members only, never to the server. */
import { Type, type Static } from "@sinclair/typebox"
import { described, DeviceId, Strict, TimestampMs, UserId, Username } from "../common.js"
import type { ErrorCode } from "../errors.js"
import { method } from "./method.js"

/** A group by its MLS group id (base64url) or by its name when that name is unique in this profile. */
export const GroupRef = Type.String({ minLength: 1, maxLength: 340, description: "group id, or a unique group name" })

/** The group name shared among members: 1..256 UTF-8 bytes, not blank. */
export const GroupName = Type.String({ minLength: 1, maxLength: 256, description: "group name (members only)" })

/**
 * `active` while a member; `removed` once a Commit removed this member (history stays readable); `out_of_sync` once
 * retention deleted log entries this daemon had not fetched, a Commit among them, so its MLS state cannot follow the
 * group (`group.historyLost` with `canContinue: false`): history stays readable, changes and sends fail with
 * `group_out_of_sync` until a member removes and re-adds this profile (its Welcome makes the group `active` again).
 */
export const GroupStatus = Type.Union([Type.Literal("active"), Type.Literal("removed"), Type.Literal("out_of_sync")], {
  description: "active | removed | out_of_sync",
})
export type GroupStatus = Static<typeof GroupStatus>

export const GroupSummary = Type.Object({
  groupId: Type.String({ description: "MLS group id, base64url" }),
  name: described(Type.String(), "the group's name (members only)"),
  epoch: described(Type.Integer({ minimum: 0 }), "the group's MLS epoch as this profile knows it"),
  members: described(
    Type.Array(Username),
    "The members' handles (a user with several devices once), in the order of their first leaf.",
  ),
  status: GroupStatus,
  /**
   * This member asked to leave (`group.leave`): its Remove proposal is posted and waits for another member's Commit,
   * which makes the group `removed`.
   */
  leaving: Type.Boolean({ description: "this member's leave proposal waits for a Commit; then the group is removed" }),
  /** The last log entry this daemon has processed. */
  lastSeq: described(Type.Integer({ minimum: 0 }), "the last group log entry (server seq) this daemon processed"),
  joinedAt: TimestampMs,
})
export type GroupSummary = Static<typeof GroupSummary>

export const GroupCreateParams = Strict({ name: GroupName })
export type GroupCreateParams = Static<typeof GroupCreateParams>

export const create = method({
  name: "group.create",
  summary: "create a group",
  description: "Creates a group with this profile as its only member (the name never reaches the server).",
  params: GroupCreateParams,
  result: GroupSummary,
  errors: ["not_registered", "invalid_request", "conflict", "server_unreachable", "rate_limited"],
})

export const GroupListParams = Strict({})
export type GroupListParams = Static<typeof GroupListParams>
export const GroupListResult = Type.Object({
  groups: described(Type.Array(GroupSummary), "the groups, oldest first, removed ones included"),
})
export type GroupListResult = Static<typeof GroupListResult>

export const list = method({
  name: "group.list",
  summary: "the profile's groups",
  description: "The groups this profile is in (or was removed from), oldest first.",
  params: GroupListParams,
  result: GroupListResult,
  errors: [],
})

export const GroupMembersParams = Strict({ group: GroupRef })
export type GroupMembersParams = Static<typeof GroupMembersParams>
/** One leaf of the group: a device of a member. */
export const MemberDevice = Type.Object({
  deviceId: described(
    Type.Union([DeviceId, Type.Null()]),
    "the device's id; null for a leaf from before devices whose account was not looked up since",
  ),
  clientId: described(
    Type.String(),
    "the leaf's credential identity: the device's client id, or the bare handle of a leaf from before devices (it stands for the account's first device)",
  ),
  leafIndex: described(Type.Integer({ minimum: 0 }), "the device's leaf in the ratchet tree"),
  signatureKey: described(Type.String(), "The device's Ed25519 MLS signature key, base64url."),
  self: described(Type.Boolean(), "this device"),
})
export type MemberDevice = Static<typeof MemberDevice>

/** A member: a user (account) with the devices it has in the group. */
export const GroupMember = Type.Object({
  username: described(Username, "the member's handle"),
  userId: described(
    Type.Union([UserId, Type.Null()]),
    "the member's user id; null when not known (a leaf from before devices)",
  ),
  self: described(Type.Boolean(), "This account (this device or another of its devices)."),
  devices: described(Type.Array(MemberDevice), "the member's devices in the group, in leaf order"),
})
export type GroupMember = Static<typeof GroupMember>
export const GroupMembersResult = Type.Object({
  groupId: described(Type.String(), "MLS group id, base64url"),
  name: described(Type.String(), "the group's name (members only)"),
  epoch: described(Type.Integer({ minimum: 0 }), "the group's MLS epoch as this profile knows it"),
  status: described(
    GroupStatus,
    "As in group.list: `out_of_sync` means these are the members as of the last epoch this profile could follow.",
  ),
  members: described(
    Type.Array(GroupMember),
    "the members (users, each with its devices), in the order of their first leaf",
  ),
})
export type GroupMembersResult = Static<typeof GroupMembersResult>

export const members = method({
  name: "group.members",
  summary: "the members of a group",
  description: "The members of a group as this profile's MLS state has them: users, each with its devices (leaves).",
  params: GroupMembersParams,
  result: GroupMembersResult,
  errors: ["not_found", "conflict"],
})

/**
 * What a method that posts a Commit of this member's own can answer: no profile or group, the group is not active or
 * out of sync, the server refuses (not a member any more, forbidden, rate-limited), the epoch race was lost more
 * times than the retries allow, or the server cannot be reached.
 */
const ownCommitErrors: readonly ErrorCode[] = [
  "not_registered",
  "not_found",
  "conflict",
  "forbidden",
  "not_member",
  "group_out_of_sync",
  "epoch_conflict",
  "rate_limited",
  "server_unreachable",
]

export const GroupInviteParams = Strict({ group: GroupRef, user: Username })
export type GroupInviteParams = Static<typeof GroupInviteParams>

export const invite = method({
  name: "group.invite",
  summary: "add a user to a group",
  description:
    "Adds a user with every active device it has: reserves one KeyPackage per device (a device without one is left out; its user's other devices add it later), checks each against the device's directory key (pinned on first sight: a changed key refuses the invitation with `forbidden` and `credential.refused`), posts ONE add Commit with the Welcome (consuming the reservations); on epoch_conflict catches up and retries with the same reservations. A user some of whose devices are in the group already gets the missing ones added. Answers with the group after the Commit.",
  params: GroupInviteParams,
  result: GroupSummary,
  errors: [...ownCommitErrors, "pool_exhausted", "unknown_user", "reservation_expired"],
})

export const GroupRemoveParams = Strict({ group: GroupRef, user: Username })
export type GroupRemoveParams = Static<typeof GroupRemoveParams>

export const remove = method({
  name: "group.remove",
  summary: "remove a member from a group",
  description: "Removes another member, every device of it, with one Commit; on epoch_conflict catches up and retries.",
  params: GroupRemoveParams,
  result: GroupSummary,
  errors: ownCommitErrors,
})

export const GroupLeaveParams = Strict({ group: GroupRef })
export type GroupLeaveParams = Static<typeof GroupLeaveParams>

export const leave = method({
  name: "group.leave",
  summary: "leave a group",
  description:
    "Leaves a group: posts a proposal to remove this member (RFC 9420 §12.2); another member's daemon commits it. Answers once the proposal is posted.",
  params: GroupLeaveParams,
  result: GroupSummary,
  errors: ["not_registered", "not_found", "conflict", "not_member", "group_out_of_sync", "server_unreachable"],
})

export const GroupSelfUpdateParams = Strict({ group: GroupRef })
export type GroupSelfUpdateParams = Static<typeof GroupSelfUpdateParams>
export const GroupSelfUpdateResult = Type.Object({
  groupId: Type.String({ description: "MLS group id, base64url" }),
  epoch: described(Type.Integer({ minimum: 1 }), "The epoch the update Commit started; every member moves to it."),
})
export type GroupSelfUpdateResult = Static<typeof GroupSelfUpdateResult>

export const selfUpdate = method({
  name: "group.selfUpdate",
  summary: "rotate this member's keys in a group",
  description:
    "Rotates this member's keys in the group for post-compromise security (RFC 9420 §12.4): a Commit with an UpdatePath (new leaf encryption key and path secrets; the signature key stays) and no proposals of its own. Proposals other members made and nobody committed yet (a leave) are committed with it by reference, as §12.4 requires. On epoch_conflict catches up and retries. Answers with the new epoch once the server took the Commit.",
  params: GroupSelfUpdateParams,
  result: GroupSelfUpdateResult,
  errors: ownCommitErrors,
})

export const GroupRejoinParams = Strict({ group: GroupRef })
export type GroupRejoinParams = Static<typeof GroupRejoinParams>

export const rejoin = method({
  name: "group.rejoin",
  summary: "rejoin a group this profile lost sync with",
  description:
    "Rejoins an `out_of_sync` group (history deleted by retention with a Commit in it, or a Commit this daemon could not apply) by external Commit (RFC 9420 §12.4.3.2): reads the GroupInfo the server keeps for the group's current epoch, checks its tree (every leaf's credential against the directory and the pins), and posts an external Commit that removes this device's old leaf (a resync) and adds a fresh one. On epoch_conflict (another Commit came first, e.g. another device rejoining) it reads the GroupInfo again and retries. Afterwards the group is `active`: `group.historyLost` (`rejoined: true`) tells which log entries this device never read, then `group.updated` (reason `rejoined`). `conflict` when the group is in sync already; `group_info_unavailable` when the server holds no GroupInfo of the current epoch (a member's next Commit brings one).",
  params: GroupRejoinParams,
  result: GroupSummary,
  errors: [...ownCommitErrors, "group_info_unavailable", "malformed_message"],
})

/**
 * A Welcome waiting for consent (`invites = ask`). The Welcome was processed to read the group's name and members
 * (and to check the members' credentials) but the group was not joined: no state is kept active until `group.accept`.
 */
export const Invitation = Type.Object({
  groupId: described(Type.String(), "MLS group id, base64url"),
  name: described(Type.String(), "the group's name, read from the Welcome"),
  inviter: described(Username, "who added this profile (committed the add)"),
  members: described(Type.Array(Username), "the members' handles the Welcome names, this account included"),
  epoch: described(Type.Integer({ minimum: 0 }), "the epoch the Welcome joins at"),
  receivedAt: described(TimestampMs, "when the daemon stored the invitation"),
})
export type Invitation = Static<typeof Invitation>

export const GroupInvitesParams = Strict({})
export type GroupInvitesParams = Static<typeof GroupInvitesParams>
export const GroupInvitesResult = Type.Object({
  invitations: described(Type.Array(Invitation), "the pending invitations, oldest first"),
})
export type GroupInvitesResult = Static<typeof GroupInvitesResult>

export const invites = method({
  name: "group.invites",
  summary: "pending invitations",
  description: "The Welcomes waiting for group.accept or group.decline (received while `invites` was `ask`).",
  params: GroupInvitesParams,
  result: GroupInvitesResult,
  errors: [],
})

/** An invitation by its group id (names are not unique among invitations, nor known to the inviter's choice). */
const InvitationRef = Strict({
  groupId: Type.String({ minLength: 1, maxLength: 340, description: "the invitation's MLS group id, base64url" }),
})

export const GroupAcceptParams = InvitationRef
export type GroupAcceptParams = Static<typeof GroupAcceptParams>

export const accept = method({
  name: "group.accept",
  summary: "join the group of a pending invitation",
  description:
    "Joins from the pending Welcome exactly as `invites = auto` would have (same checks, `group.joined`), then reads the group's log from where the Welcome starts it. A Welcome that cannot be used any more (a member's credential now refused, its key gone) is dropped with `invite.failed` and answered with `conflict`.",
  params: GroupAcceptParams,
  result: GroupSummary,
  errors: ["not_registered", "not_found", "conflict"],
})

export const GroupDeclineParams = InvitationRef
export type GroupDeclineParams = Static<typeof GroupDeclineParams>
export const GroupDeclineResult = Type.Object({
  groupId: described(Type.String(), "the declined invitation's MLS group id, base64url"),
})
export type GroupDeclineResult = Static<typeof GroupDeclineResult>

export const decline = method({
  name: "group.decline",
  summary: "refuse a pending invitation",
  description:
    "Drops the pending Welcome without joining and deletes the private part of the KeyPackage it was made for (the last-resort key excepted: it stays usable). Nothing is sent: the other members keep this profile on their roster as a member that never speaks, until one of them removes it (see daemon/README.md, Invitation consent).",
  params: GroupDeclineParams,
  result: GroupDeclineResult,
  errors: ["not_registered", "not_found"],
})
