/** Read-only views of the profile's groups: lookup by id or name, summaries, members, history, stream cursors. */
import { toBase64Url } from "../../rpc-schema/common.js"
import type { GroupMember, GroupMembersResult, GroupSummary } from "../../rpc-schema/daemon/group.js"
import type { DeviceRef } from "../../rpc-schema/daemon/notifications.js"
import type { MessageListResult } from "../../rpc-schema/daemon/message.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { GroupCursor } from "../../rpc-schema/server/ws.js"
import { deserializeState, members, ownLeafIndex, leaveProposed, type Member } from "../mls/groupState.js"
import type { GroupStore, StoredGroup } from "../store/groupStore.js"
import type { OutboxStore } from "../store/outboxStore.js"
import type { Directory } from "./directory.js"

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
        "profile fetched it, or a Commit it could not apply; rejoin it (group.rejoin)",
      { groupId: g.id },
    )
}

/** The members' handles, each user once, in the order of their first leaf. */
export function handles(dir: Directory, ms: Member[]): string[] {
  return [...new Set(ms.map((m) => dir.who(m.identity, m.signaturePublicKey).username))]
}

/** Leaves as the devices they are. */
export function deviceRefs(dir: Directory, ms: Member[]): DeviceRef[] {
  return ms.map((m) => {
    const w = dir.who(m.identity, m.signaturePublicKey)
    return { username: w.username, deviceId: w.deviceId, clientId: m.identity }
  })
}

/**
 * What `group.updated` says of a membership change: the users who joined or left (no device in the group before, or
 * none after) and every device added or removed. `after` is the members after the change.
 */
export function changeView(dir: Directory, added: Member[], removed: Member[], after: Member[]) {
  const stayed = new Set(
    handles(
      dir,
      after.filter((m) => !added.some((a) => a.leafIndex === m.leafIndex)),
    ),
  )
  const now = new Set(handles(dir, after))
  return {
    added: handles(dir, added).filter((h) => !stayed.has(h)),
    removed: handles(dir, removed).filter((h) => !now.has(h)),
    addedDevices: deviceRefs(dir, added),
    removedDevices: deviceRefs(dir, removed),
  }
}

export function summarize(g: StoredGroup, dir: Directory): GroupSummary {
  const state = deserializeState(g.state)
  return {
    groupId: g.id,
    name: g.name,
    epoch: g.epoch,
    members: handles(dir, members(state)),
    status: g.status,
    leaving: g.status === "active" && leaveProposed(state),
    lastSeq: g.lastSeq,
    joinedAt: g.joinedAt,
  }
}

export function listGroups(groups: GroupStore, dir: Directory): GroupSummary[] {
  return groups.all().map((g) => summarize(g, dir))
}

/** The members of a group: users (in the order of their first leaf), each with its devices. */
export function groupMembers(groups: GroupStore, dir: Directory, ref: string): GroupMembersResult {
  const g = findGroup(groups, ref)
  const state = deserializeState(g.state)
  const own = ownLeafIndex(state)
  const users = new Map<string, GroupMember>()
  for (const m of members(state)) {
    const w = dir.who(m.identity, m.signaturePublicKey)
    const user = users.get(w.username) ?? { username: w.username, userId: w.userId, self: w.own, devices: [] }
    users.set(w.username, user)
    user.devices.push({
      deviceId: w.deviceId,
      clientId: m.identity,
      leafIndex: m.leafIndex,
      signatureKey: toBase64Url(m.signaturePublicKey),
      self: m.leafIndex === own,
    })
  }
  return { groupId: g.id, name: g.name, epoch: g.epoch, status: g.status, members: [...users.values()] }
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
