/**
 * Taking members out. group.remove commits the removal of another member. group.leave cannot commit one's own
 * removal (RFC 9420 §12.2): it posts a proposal, and another member's daemon commits it (see IncomingLog).
 */
import { toBase64Url } from "../../rpc-schema/common.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { proposeLeave, removeMembers } from "../mls/group.js"
import { deserializeState, epoch, members, serializeState } from "../mls/groupState.js"
import type { Committer } from "./commits.js"
import type { GroupContext } from "./context.js"
import type { OutboxSender } from "./outbox.js"
import { activeGroup, summarize } from "./queries.js"

export async function removeMember(
  ctx: GroupContext,
  commits: Committer,
  ref: string,
  user: string,
): Promise<GroupSummary> {
  const id = activeGroup(ctx.groups, ref).id
  const cs = await ctx.suite()
  await commits.commitWithRetry(id, async (state) => {
    // Every device of the user; none (an unknown user, or removed meanwhile) is the MLS layer's unknown_member.
    const leaves = members(state).filter((m) => ctx.directory.who(m.identity, m.signaturePublicKey).username === user)
    return removeMembers(state, leaves.length > 0 ? leaves.map((m) => m.identity) : [user], cs, ctx.directory.check)
  })
  return summarize(ctx.groups.get(id)!, ctx.directory)
}

export async function leaveGroup(ctx: GroupContext, sender: OutboxSender, ref: string): Promise<GroupSummary> {
  const g = activeGroup(ctx.groups, ref)
  const cs = await ctx.suite()
  // Own queued messages go before the proposal that takes this member out.
  await sender.flush(g.id)
  const { state, proposal } = await proposeLeave(deserializeState(g.state), cs)
  await ctx.session.call(routes.postMessage, {
    params: { groupId: g.id },
    body: { message: toBase64Url(proposal) },
  })
  ctx.groups.saveState(g.id, serializeState(state), Number(epoch(state)))
  return summarize(ctx.groups.get(g.id)!, ctx.directory)
}
