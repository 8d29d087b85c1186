/**
 * Joining from a Welcome in the inbox: find the KeyPackage it was made for in the pool, join, and in one transaction
 * store the group, consume the key (its private part deleted) and notify. A Welcome that cannot be used is reported
 * as `invite.failed` and never stops the daemon; only a passing failure throws (the stream retries the item, a
 * bounded number of times: then `giveUpWelcome`).
 */
import { decodeMlsMessage } from "ts-mls"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import { joinFromWelcome } from "../mls/group.js"
import { GroupError } from "../mls/groupError.js"
import { decodeKeyPackageBytes } from "../mls/groupKeyPackage.js"
import { epoch, groupId, serializeState } from "../mls/groupState.js"
import { purgeWal } from "../store/database.js"
import type { GroupContext } from "./context.js"

export type WelcomeItem = Extract<InboxItem, { kind: "welcome" }>

function failed(ctx: GroupContext, item: WelcomeItem, code: string, message: string): void {
  ctx.log.warn({ groupId: item.groupId, by: item.by, code, message }, "invite failed")
  ctx.events.emit("invite.failed", { groupId: item.groupId, by: item.by, code, message })
}

/** A Welcome the stream gave up on after repeated passing failures: reported, then acknowledged by the stream. */
export function giveUpWelcome(ctx: GroupContext, item: WelcomeItem, error: string): void {
  failed(ctx, item, "retries_exhausted", `not handled after repeated failures (last: ${error})`)
}

/** Joins the group of `item`; `onKeyConsumed` is told once one of the pool's KeyPackages was used. */
export async function acceptWelcome(ctx: GroupContext, item: WelcomeItem, onKeyConsumed: () => void): Promise<void> {
  if (ctx.groups.get(item.groupId)?.status === "active") return
  const bytes = fromBase64Url(item.welcome)
  let refs: string[]
  try {
    const decoded = decodeMlsMessage(bytes, 0)
    if (decoded === undefined || decoded[0].wireformat !== "mls_welcome") throw new Error("not a Welcome")
    refs = decoded[0].welcome.secrets.map((s) => toBase64Url(s.newMember))
  } catch (err) {
    return failed(ctx, item, "invalid_welcome", (err as Error).message)
  }
  const ref = refs.find((r) => ctx.pool.privateKey(r) !== undefined)
  if (ref === undefined) {
    const used = refs.some((r) => ctx.pool.stateOf(r) === "consumed")
    return used
      ? failed(ctx, item, "keypackage_consumed", "the Welcome's KeyPackage was used already")
      : failed(ctx, item, "unknown_keypackage", "the Welcome is for no KeyPackage this profile holds")
  }
  const key = ctx.pool.privateKey(ref)!
  const cs = await ctx.suite()
  let joined: Awaited<ReturnType<typeof joinFromWelcome>>
  try {
    joined = await joinFromWelcome(
      bytes,
      decodeKeyPackageBytes(key.publicData),
      {
        initPrivateKey: key.initPrivate,
        hpkePrivateKey: key.hpkePrivate,
        signaturePrivateKey: ctx.keys.privateKey,
      },
      cs,
      ctx.directory.check,
    )
  } catch (err) {
    const transient = ctx.directory.takeTransient()
    if (transient) throw transient
    const code =
      err instanceof GroupError && err.code === "credential_refused" ? "credential_refused" : "invalid_welcome"
    return failed(ctx, item, code, (err as Error).message)
  }
  const id = toBase64Url(groupId(joined.state))
  if (id !== item.groupId) return failed(ctx, item, "invalid_welcome", "the Welcome is for another group")
  const now = ctx.clock.now()
  const memberNames = joined.members.map((m) => m.username)
  ctx.db.transaction(() => {
    ctx.groups.insert({
      id,
      name: joined.name,
      state: serializeState(joined.state),
      epoch: Number(epoch(joined.state)),
      lastSeq: item.seq,
      status: "active",
      joinedAt: now,
      joinedBy: item.by,
    })
    ctx.pool.consume(ref, now)
    ctx.events.emit("group.joined", {
      groupId: id,
      name: joined.name,
      epoch: Number(epoch(joined.state)),
      members: memberNames,
      by: item.by,
    })
  })()
  // The private init key is gone from the file, not only from the table.
  if (!key.lastResort) purgeWal(ctx.db)
  ctx.log.info({ groupId: id, by: item.by }, "joined group")
  onKeyConsumed()
}
