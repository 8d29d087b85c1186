/**
 * group.invite through the KeyPackage pool: the invitee's directory key (pinned on first sight), one of their
 * KeyPackages reserved on the server, then an add Commit with the Welcome that spends the reservation. An epoch race
 * rebuilds the Commit with the same reservation; an expired reservation is replaced.
 */
import { fromBase64Url } from "../../rpc-schema/common.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import { AppError } from "../../rpc-schema/errors.js"
import { keys as keyRoutes } from "../../rpc-schema/server/index.js"
import { addMembers } from "../mls/group.js"
import { GroupError } from "../mls/groupError.js"
import { decodeKeyPackageBytes } from "../mls/groupKeyPackage.js"
import { deserializeState, members } from "../mls/groupState.js"
import type { Committer } from "./commits.js"
import type { GroupContext } from "./context.js"
import { activeGroup, summarize } from "./queries.js"

/** Reserves one of `user`'s KeyPackages; none left is `pool_exhausted`. */
async function reserve(ctx: GroupContext, user: string) {
  try {
    return await ctx.session.call(keyRoutes.reserve, { body: { target: user } })
  } catch (err) {
    if (err instanceof AppError && err.code === "no_keypackage_available")
      throw new AppError("pool_exhausted", `${user} has no KeyPackage left on the server; try again later`, {
        user,
      })
    throw err
  }
}

export async function inviteMember(
  ctx: GroupContext,
  commits: Committer,
  ref: string,
  user: string,
): Promise<GroupSummary> {
  const id = activeGroup(ctx.groups, ref).id
  const cs = await ctx.suite()
  if (members(deserializeState(ctx.groups.get(id)!.state)).some((m) => m.username === user))
    throw new AppError("conflict", `${user} is in the group already`)
  const signaturePublicKey = await ctx.directory.keyFor(user)
  let reservation = await reserve(ctx, user)
  await commits.commitWithRetry(
    id,
    async (state) => {
      const keyPackage = decodeKeyPackageBytes(fromBase64Url(reservation.keyPackage))
      const pending = await addMembers(
        state,
        [{ username: user, signaturePublicKey, keyPackage }],
        ctx.clock.now(),
        cs,
        ctx.directory.check,
      ).catch((err: unknown) => {
        if (err instanceof GroupError && err.details?.reason === "signature_key_mismatch")
          ctx.directory.refuseKeyPackage(user, keyPackage.leafNode.signaturePublicKey)
        throw err
      })
      return { ...pending, keyPackages: [{ user, ref: reservation.ref, reservationId: reservation.reservationId }] }
    },
    async (err) => {
      if (err.code !== "reservation_expired") return false
      reservation = await reserve(ctx, user)
      return true
    },
  )
  return summarize(ctx.groups.get(id)!)
}
