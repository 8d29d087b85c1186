/**
 * group.create: a one-member group made locally, registered with the server (which never learns its name) together
 * with its GroupInfo for external joins.
 */
import { toBase64Url } from "../../rpc-schema/common.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import { AppError } from "../../rpc-schema/errors.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { createChatGroup, externalGroupInfo } from "../mls/group.js"
import { groupId, serializeState } from "../mls/groupState.js"
import type { StoredGroup } from "../store/groupStore.js"
import type { GroupContext } from "./context.js"
import { summarize } from "./queries.js"

export async function createGroup(ctx: GroupContext, name: string): Promise<GroupSummary> {
  if (ctx.groups.byName(name).length > 0) throw new AppError("conflict", `a group named "${name}" exists`)
  const cs = await ctx.suite()
  const state = await createChatGroup({
    name,
    creator: { identity: ctx.clientId, keys: ctx.keys },
    now: ctx.clock.now(),
    cs,
  })
  const id = toBase64Url(groupId(state))
  // Epoch 0's GroupInfo, so that this account's other devices can join before the first Commit.
  const groupInfo = toBase64Url(await externalGroupInfo(state, cs))
  await ctx.session.call(routes.createGroup, { body: { groupId: id, groupInfo } })
  const g: StoredGroup = {
    id,
    name,
    state: serializeState(state),
    epoch: 0,
    lastSeq: 0,
    status: "active",
    joinedAt: ctx.clock.now(),
    joinedBy: null,
  }
  ctx.groups.insert(g)
  ctx.log.info({ groupId: id }, "group created")
  return summarize(g, ctx.directory)
}
