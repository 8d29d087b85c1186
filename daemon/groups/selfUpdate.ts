/**
 * group.selfUpdate: post-compromise security (RFC 9420 §12.4, §16.6). An empty Commit with a fresh UpdatePath gives
 * this member a new leaf encryption key and new path secrets. Once the server took it, the adopted state no longer
 * holds the old private keys, and the WAL is truncated so that no older frame of the file keeps a copy of them.
 */
import type { GroupSelfUpdateResult } from "../../rpc-schema/daemon/group.js"
import { selfUpdate } from "../mls/group.js"
import { purgeWal } from "../store/database.js"
import type { Committer } from "./commits.js"
import type { GroupContext } from "./context.js"
import { activeGroup } from "./queries.js"

export async function updateOwnKeys(
  ctx: GroupContext,
  commits: Committer,
  ref: string,
): Promise<GroupSelfUpdateResult> {
  const id = activeGroup(ctx.groups, ref).id
  const cs = await ctx.suite()
  // Rebuilt on the caught-up state after an epoch race: the new path must be encrypted to the current tree.
  await commits.commitWithRetry(id, (state) => selfUpdate(state, cs, ctx.directory.check))
  purgeWal(ctx.db)
  return { groupId: id, epoch: ctx.groups.get(id)!.epoch }
}
