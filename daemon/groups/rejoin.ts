/**
 * Joining by external Commit (RFC 9420 §12.4.3.2) from the GroupInfo the server keeps for the group's current epoch:
 *
 * - `group.rejoin` for a group this device's state cannot follow any more (`out_of_sync`): the Commit removes this
 *   device's old leaf (a resync) and the group is `active` again, with `group.historyLost` naming what was never read;
 * - a new device joining its account's groups on its own (`joinAccountGroups`, run by the device pass), with no other
 *   device of the account online.
 *
 * Only one Commit per epoch wins: on epoch_conflict (another device rejoining, a member's Commit) the GroupInfo is
 * read again and the Commit made again on it, a bounded number of times. Nothing is stored before the server took the
 * Commit: a lost answer leaves the group as it was, and a later attempt resyncs again (its tree then holds the leaf
 * the lost Commit made, with this device's key, which the new Commit removes).
 */
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import { AppError } from "../../rpc-schema/errors.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { joinByExternalCommit, type ExternalJoin } from "../mls/group.js"
import { epoch, members, serializeState } from "../mls/groupState.js"
import type { GroupContext } from "./context.js"
import { changeView, findGroup, handles, summarize } from "./queries.js"

/** How many times an external Commit is made again after losing an epoch race before giving up. */
const maxJoinAttempts = 8

/** Reads the GroupInfo, makes the external Commit and posts it; on epoch_conflict again. Answers the Commit's seq. */
async function externalJoin(ctx: GroupContext, id: string, name: string): Promise<{ join: ExternalJoin; seq: number }> {
  const cs = await ctx.suite()
  for (let attempt = 1; ; attempt++) {
    const info = await ctx.session.call(routes.getGroupInfo, { params: { groupId: id } })
    let join: ExternalJoin
    try {
      join = await joinByExternalCommit(
        fromBase64Url(info.groupInfo),
        { identity: ctx.clientId, keys: ctx.keys },
        name,
        ctx.clock.now(),
        cs,
        ctx.directory.check,
      )
    } catch (err) {
      // A directory lookup that failed for a passing reason is that failure, not a refusal of the tree.
      throw ctx.directory.takeTransient() ?? err
    }
    try {
      const r = await ctx.session.call(routes.externalCommit, {
        params: { groupId: id },
        body: { commit: toBase64Url(join.commit), groupInfo: toBase64Url(join.groupInfo) },
      })
      return { join, seq: r.seq }
    } catch (err) {
      if (!(err instanceof AppError && err.code === "epoch_conflict") || attempt >= maxJoinAttempts) throw err
      ctx.log.info({ groupId: id, attempt }, "external Commit lost an epoch race; trying again")
    }
  }
}

/** `group.rejoin`: an `out_of_sync` group joined again by external Commit (resync), in one transaction once taken. */
export async function rejoinGroup(ctx: GroupContext, ref: string): Promise<GroupSummary> {
  const g = findGroup(ctx.groups, ref)
  if (g.status === "removed") throw new AppError("not_member", `removed from group "${g.name}"`)
  if (g.status === "active") throw new AppError("conflict", `group "${g.name}" is in sync: nothing to rejoin`)
  const lostAfter = ctx.groups.syncLostAfter(g.id) ?? g.lastSeq
  const { join, seq } = await externalJoin(ctx, g.id, g.name)
  const ep = Number(epoch(join.state))
  const now = members(join.state)
  ctx.db.transaction(() => {
    ctx.groups.saveState(g.id, serializeState(join.state), ep, seq)
    ctx.groups.setPending(g.id, null)
    ctx.groups.setStatus(g.id, "active")
    // Everything after the last entry processed and before the rejoining Commit was never read here.
    if (seq - 1 > lostAfter)
      ctx.events.emit("group.historyLost", {
        groupId: g.id,
        group: g.name,
        after: lostAfter,
        prunedThrough: seq - 1,
        lost: seq - 1 - lostAfter,
        canContinue: true,
        epoch: ep,
        groupEpoch: ep,
        status: "active",
        rejoined: true,
      })
    ctx.events.emit("group.updated", {
      groupId: g.id,
      name: g.name,
      epoch: ep,
      members: handles(ctx.directory, now),
      ...changeView(ctx.directory, [], [], []),
      by: ctx.username,
      reason: "rejoined",
    })
  })()
  ctx.log.info({ groupId: g.id, seq, resync: join.resync }, "rejoined group")
  return summarize(ctx.groups.get(g.id)!, ctx.directory)
}

/**
 * A group of this account that this device is not in (the server's joinable groups): joined by external Commit and
 * stored, with `group.joined`. The group's name is not known to this device (names never reach the server, and no
 * Welcome brings it): it stays empty until renamed locally. A group stored already (joined meanwhile by a Welcome from
 * another device of the account) is left alone.
 */
export async function joinAccountGroup(ctx: GroupContext, id: string): Promise<void> {
  if (ctx.groups.get(id) !== undefined) return
  const { join, seq } = await externalJoin(ctx, id, "")
  const ep = Number(epoch(join.state))
  ctx.db.transaction(() => {
    ctx.groups.insert({
      id,
      name: "",
      state: serializeState(join.state),
      epoch: ep,
      lastSeq: seq,
      status: "active",
      joinedAt: ctx.clock.now(),
      joinedBy: ctx.username,
    })
    ctx.events.emit("group.joined", {
      groupId: id,
      name: "",
      epoch: ep,
      members: handles(ctx.directory, members(join.state)),
      by: ctx.username,
    })
  })()
  ctx.log.info({ groupId: id, seq }, "joined an account group by external Commit")
}
