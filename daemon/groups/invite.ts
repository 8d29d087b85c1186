/**
 * group.invite through the KeyPackage pool: a user joins with every active device it has. The devices' directory keys
 * (pinned on first sight), one KeyPackage per device reserved on the server, then ONE add Commit with the Welcome that
 * spends the reservations. An epoch race rebuilds the Commit with the same reservations; expired ones are replaced.
 * The same path adds the devices of a user that are missing from a group (its new devices, added by its other ones).
 */
import { fromBase64Url } from "../../rpc-schema/common.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { ReservedKeyPackage } from "../../rpc-schema/server/http/keys.js"
import { keys as keyRoutes } from "../../rpc-schema/server/index.js"
import { addMembers } from "../mls/group.js"
import { GroupError } from "../mls/groupError.js"
import { decodeKeyPackageBytes } from "../mls/groupKeyPackage.js"
import { deserializeState, members } from "../mls/groupState.js"
import type { Committer } from "./commits.js"
import type { GroupContext } from "./context.js"
import type { UsableDevice } from "./directory.js"
import { activeGroup, summarize } from "./queries.js"

/**
 * Reserves a KeyPackage for each of `devices`: with the user's handle when all of its devices are wanted (one call),
 * else by client id, one device at a time. None at all is `pool_exhausted`; a device without a key is left out.
 */
async function reserve(
  ctx: GroupContext,
  user: string,
  devices: UsableDevice[],
  all: boolean,
): Promise<ReservedKeyPackage[]> {
  const wanted = new Set(devices.map((d) => d.clientId))
  const got: ReservedKeyPackage[] = []
  for (const target of all ? [user] : [...wanted]) {
    try {
      const r = await ctx.session.call(keyRoutes.reserve, { body: { target } })
      got.push(...r.keyPackages.filter((k) => wanted.has(k.clientId)))
    } catch (err) {
      if (!(err instanceof AppError && err.code === "no_keypackage_available")) throw err
    }
  }
  if (got.length === 0) throw noKeys(user)
  return got
}

const noKeys = (user: string) =>
  new AppError("pool_exhausted", `${user} has no KeyPackage left on the server; try again later`, { user })

/**
 * Adds `user`'s active devices that are not in the group yet, in one Commit. `none` says what no device to add means:
 * `conflict` (group.invite: the user is in already) or nothing to do (bringing an account's devices in line).
 */
export async function addUserDevices(
  ctx: GroupContext,
  commits: Committer,
  id: string,
  user: string,
  none: "conflict" | "skip",
): Promise<void> {
  const cs = await ctx.suite()
  const account = await ctx.directory.usableDevices(user)
  const missing = (state = deserializeState(ctx.groups.get(id)!.state)) => {
    const present = new Set(members(state).map((m) => ctx.directory.rosterId(m.identity, m.signaturePublicKey)))
    return account.devices.filter((d) => !present.has(d.clientId) && d.clientId !== ctx.clientId)
  }
  // No device has bound an MLS key yet: none ever uploaded a KeyPackage.
  if (account.devices.length === 0 && none === "conflict") throw noKeys(account.handle)
  const wanted = missing()
  if (wanted.length === 0) {
    if (none === "skip") return
    throw new AppError("conflict", `${account.handle} is in the group already`)
  }
  // One call by handle reserves a key of every device of the account: only when all of them are wanted.
  let reserved = await reserve(ctx, account.handle, wanted, wanted.length === account.devices.length)
  await commits.commitWithRetry(
    id,
    async (state) => {
      // After an epoch race: another device of the account may have added some of them meanwhile.
      const still = new Set(missing(state).map((d) => d.clientId))
      const use = reserved.filter((r) => still.has(r.clientId))
      if (use.length === 0) return undefined
      const invitees = use.map((r) => ({
        identity: r.clientId,
        signaturePublicKey: account.devices.find((d) => d.clientId === r.clientId)!.signaturePublicKey,
        keyPackage: decodeKeyPackageBytes(fromBase64Url(r.keyPackage)),
      }))
      const pending = await addMembers(state, invitees, ctx.clock.now(), cs, ctx.directory.check).catch(
        (err: unknown) => {
          const identity = err instanceof GroupError ? err.details?.identity : undefined
          const bad = invitees.find((i) => i.identity === identity)
          if (bad && err instanceof GroupError && err.details?.reason === "signature_key_mismatch")
            ctx.directory.refuseKeyPackage(account.handle, bad.identity, bad.keyPackage.leafNode.signaturePublicKey)
          throw err
        },
      )
      return {
        ...pending,
        keyPackages: use.map((r) => ({ user: r.clientId, ref: r.ref, reservationId: r.reservationId })),
      }
    },
    async (err) => {
      if (err.code !== "reservation_expired") return false
      reserved = await reserve(ctx, account.handle, missing(), false)
      return true
    },
  )
}

export async function inviteMember(
  ctx: GroupContext,
  commits: Committer,
  ref: string,
  user: string,
): Promise<GroupSummary> {
  const id = activeGroup(ctx.groups, ref).id
  await addUserDevices(ctx, commits, id, user, "conflict")
  return summarize(ctx.groups.get(id)!, ctx.directory)
}
