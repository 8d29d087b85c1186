/** Read-only views of the profile's groups: lookup by id or name, summaries, members, history, stream cursors. */
import { toBase64Url } from "../../rpc-schema/common.js"
import type { GroupMembersResult, GroupSummary } from "../../rpc-schema/daemon/group.js"
import type { MessageListResult } from "../../rpc-schema/daemon/message.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { GroupCursor } from "../../rpc-schema/server/ws.js"
import { deserializeState, members, ownLeafIndex, leaveProposed } from "../mls/groupState.js"
import type { GroupStore, StoredGroup } from "../store/groupStore.js"
import type { OutboxStore } from "../store/outboxStore.js"

/** A group by id, or by a name no other group of this profile has. */
export function findGroup(groups: GroupStore, ref: string): StoredGroup {
  const byId = groups.get(ref)
  if (byId) return byId
  const named = groups.byName(ref)
  if (named.length === 1) return named[0]!
  if (named.length > 1)
    throw new AppError("conflict", `${named.length} groups are named "${ref}"; use the group id`, {
      groupIds: named.map((g) => g.id),
    })
  throw new AppError("not_found", `no group "${ref}"`)
}

/**
 * Like findGroup, for changes: a group this profile was removed from is `not_member`; one whose state cannot follow
 * the group any more (history lost, a Commit in it) is `group_out_of_sync`: anything made on that state (a message,
 * a Commit, a proposal) would be at an epoch the other members left, so it fails here instead.
 */
export function activeGroup(groups: GroupStore, ref: string): StoredGroup {
  const g = findGroup(groups, ref)
  requireActive(g)
  return g
}

/** Throws the stable error of a group this profile cannot change: removed, or out of sync. */
export function requireActive(g: StoredGroup): void {
  if (g.status === "removed") throw new AppError("not_member", `removed from group "${g.name}"`)
  if (g.status === "out_of_sync")
    throw new AppError(
      "group_out_of_sync",
      `group "${g.name}" is out of sync: the server deleted part of its history (a Commit among it) before this ` +
        "profile fetched it; ask a member to remove and re-add you",
      { groupId: g.id },
    )
}

export function summarize(g: StoredGroup): GroupSummary {
  const state = deserializeState(g.state)
  return {
    groupId: g.id,
    name: g.name,
    epoch: g.epoch,
    members: members(state).map((m) => m.username),
    status: g.status,
    leaving: g.status === "active" && leaveProposed(state),
    lastSeq: g.lastSeq,
    joinedAt: g.joinedAt,
  }
}

export function listGroups(groups: GroupStore): GroupSummary[] {
  return groups.all().map(summarize)
}

export function groupMembers(groups: GroupStore, ref: string): GroupMembersResult {
  const g = findGroup(groups, ref)
  const state = deserializeState(g.state)
  const own = ownLeafIndex(state)
  return {
    groupId: g.id,
    name: g.name,
    epoch: g.epoch,
    status: g.status,
    members: members(state).map((m) => ({
      username: m.username,
      leafIndex: m.leafIndex,
      signatureKey: toBase64Url(m.signaturePublicKey),
      self: m.leafIndex === own,
    })),
  }
}

/** History below `before`, plus the own messages still waiting in the outbox. */
export function groupMessages(
  groups: GroupStore,
  outbox: OutboxStore,
  ref: string,
  before: number | undefined,
  limit: number,
): MessageListResult {
  const id = findGroup(groups, ref).id
  const queued = outbox
    .queued(id)
    .map((e) => ({ clientId: toBase64Url(e.clientId), text: e.text, createdAt: e.createdAt }))
  return { ...groups.messages(id, before, limit), queued }
}

/**
 * Where the stream resumes, per group this profile is still in (an out-of-sync group too: its cursor keeps moving, so
 * the server does not stream it from the start again).
 */
export function groupCursors(groups: GroupStore): GroupCursor[] {
  return groups
    .all()
    .filter((g) => g.status !== "removed")
    .map((g) => ({ groupId: g.id, after: g.lastSeq }))
}
