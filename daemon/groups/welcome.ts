/**
 * Joining from a Welcome in the inbox: find the KeyPackage it was made for in the pool, process it, and in one
 * transaction store the group, consume the key (its private part deleted) and notify. Under `invites = ask` the
 * processed Welcome is not joined: it is stored as a pending invitation (`invite.received`, one transaction; the
 * stream acknowledges the inbox item only after it) and joined by `group.accept` through the same path, or dropped
 * by `group.decline`. A Welcome that cannot be used is reported as `invite.failed` and never stops the daemon; only
 * a passing failure throws (the stream retries the item, a bounded number of times: then `giveUpWelcome`).
 */
import { decodeMlsMessage } from "ts-mls"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import { joinFromWelcome } from "../mls/group.js"
import { GroupError } from "../mls/groupError.js"
import { decodeKeyPackageBytes } from "../mls/groupKeyPackage.js"
import { epoch, groupId, serializeState } from "../mls/groupState.js"
import { purgeWal } from "../store/database.js"
import { invitationItem, invitationView, type StoredInvitation } from "../store/invitationStore.js"
import type { GroupContext } from "./context.js"
import { handles, summarize } from "./queries.js"

export type WelcomeItem = Extract<InboxItem, { kind: "welcome" }>

type PoolKey = NonNullable<ReturnType<GroupContext["pool"]["privateKey"]>>

/** A Welcome processed with our key: the group as joining would leave it, not stored yet. */
interface Opened {
  ref: string
  key: PoolKey
  joined: Awaited<ReturnType<typeof joinFromWelcome>>
}

type Refusal = { code: string; message: string }

function failed(ctx: GroupContext, item: WelcomeItem, { code, message }: Refusal): void {
  ctx.log.warn({ groupId: item.groupId, by: item.by, code, message }, "invite failed")
  ctx.events.emit("invite.failed", { groupId: item.groupId, by: item.by, code, message })
}

/** A Welcome the stream gave up on after repeated passing failures: reported, then acknowledged by the stream. */
export function giveUpWelcome(ctx: GroupContext, item: WelcomeItem, error: string): void {
  failed(ctx, item, { code: "retries_exhausted", message: `not handled after repeated failures (last: ${error})` })
}

/**
 * Processes the Welcome with the pool key it was made for (credentials checked against pins and directory). Pure as
 * far as the store goes: a refusal is returned, a passing failure thrown.
 */
async function openWelcome(ctx: GroupContext, item: WelcomeItem): Promise<Opened | Refusal> {
  const bytes = fromBase64Url(item.welcome)
  let refs: string[]
  try {
    const decoded = decodeMlsMessage(bytes, 0)
    if (decoded === undefined || decoded[0].wireformat !== "mls_welcome") throw new Error("not a Welcome")
    refs = decoded[0].welcome.secrets.map((s) => toBase64Url(s.newMember))
  } catch (err) {
    return { code: "invalid_welcome", message: (err as Error).message }
  }
  const ref = refs.find((r) => ctx.pool.privateKey(r) !== undefined)
  if (ref === undefined) {
    const used = refs.some((r) => ctx.pool.stateOf(r) === "consumed")
    return used
      ? { code: "keypackage_consumed", message: "the Welcome's KeyPackage was used already" }
      : { code: "unknown_keypackage", message: "the Welcome is for no KeyPackage this profile holds" }
  }
  const key = ctx.pool.privateKey(ref)!
  let joined: Opened["joined"]
  try {
    joined = await joinFromWelcome(
      bytes,
      decodeKeyPackageBytes(key.publicData),
      {
        initPrivateKey: key.initPrivate,
        hpkePrivateKey: key.hpkePrivate,
        signaturePrivateKey: ctx.keys.privateKey,
      },
      await ctx.suite(),
      ctx.directory.check,
    )
  } catch (err) {
    const transient = ctx.directory.takeTransient()
    if (transient) throw transient
    const code =
      err instanceof GroupError && err.code === "credential_refused" ? "credential_refused" : "invalid_welcome"
    return { code, message: (err as Error).message }
  }
  if (toBase64Url(groupId(joined.state)) !== item.groupId) {
    return { code: "invalid_welcome", message: "the Welcome is for another group" }
  }
  return { ref, key, joined }
}

/** Stores the group, consumes the key and notifies, in one transaction (with `also`, e.g. dropping the invitation). */
function join(ctx: GroupContext, item: WelcomeItem, { ref, key, joined }: Opened, also?: () => void): void {
  const now = ctx.clock.now()
  ctx.db.transaction(() => {
    also?.()
    ctx.groups.insert({
      id: item.groupId,
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
      groupId: item.groupId,
      name: joined.name,
      epoch: Number(epoch(joined.state)),
      members: handles(ctx.directory, joined.members),
      by: item.by,
    })
  })()
  // The private init key is gone from the file, not only from the table.
  if (!key.lastResort) purgeWal(ctx.db)
  ctx.log.info({ groupId: item.groupId, by: item.by }, "joined group")
}

/**
 * A Welcome from the inbox: joined at once (`invites = auto`) or kept as a pending invitation (`ask`). The same
 * item delivered again (a crash before its acknowledgement) finds its invitation stored and changes nothing; a later
 * Welcome for the same group replaces the pending one (the older one's key is released as a decline would).
 * `onKeyConsumed` is told once one of the pool's KeyPackages was used.
 */
export async function onWelcome(ctx: GroupContext, item: WelcomeItem, onKeyConsumed: () => void): Promise<void> {
  if (ctx.groups.get(item.groupId)?.status === "active") return
  const pending = ctx.invitations.get(item.groupId)
  if (pending?.seq === item.seq) return
  const opened = await openWelcome(ctx, item)
  if (!("joined" in opened)) return failed(ctx, item, opened)
  if (ctx.settings.invites() === "auto") {
    join(ctx, item, opened, pending && (() => release(ctx, pending)))
    return onKeyConsumed()
  }
  const invitation: StoredInvitation = {
    groupId: item.groupId,
    keyRef: opened.ref,
    inviter: item.by,
    name: opened.joined.name,
    members: handles(ctx.directory, opened.joined.members),
    seq: item.seq,
    epoch: item.epoch,
    welcome: fromBase64Url(item.welcome),
    receivedAt: ctx.clock.now(),
  }
  ctx.db.transaction(() => {
    if (pending) release(ctx, pending)
    ctx.invitations.put(invitation)
    ctx.events.emit("invite.received", invitationView(invitation))
  })()
  if (pending) purgeWal(ctx.db)
  ctx.log.info({ groupId: item.groupId, by: item.by }, "invitation pending")
}

/**
 * `group.accept`: joins from the pending Welcome as `auto` would have, then reads the group's log after the Welcome
 * (entries the stream delivered meanwhile were ignored: the group was not in the store).
 */
export async function acceptInvitation(
  ctx: GroupContext,
  id: string,
  catchUp: (id: string) => Promise<void>,
  onKeyConsumed: () => void,
): Promise<GroupSummary> {
  const invitation = pendingInvitation(ctx, id)
  const item = invitationItem(invitation)
  const opened = await openWelcome(ctx, item)
  if (!("joined" in opened)) {
    ctx.db.transaction(() => {
      ctx.invitations.delete(id)
      failed(ctx, item, opened)
    })()
    throw new AppError("conflict", `the invitation cannot be used any more (${opened.code}): ${opened.message}`, {
      reason: opened.code,
    })
  }
  join(ctx, item, opened, () => ctx.invitations.delete(id))
  onKeyConsumed()
  try {
    await catchUp(id)
  } catch (err) {
    // Joined all the same: the stream's next connection resumes the group from its cursor.
    ctx.log.warn({ groupId: id, err: (err as Error).message }, "catch-up after accepting failed")
  }
  return summarize(ctx.groups.get(id)!, ctx.directory)
}

/**
 * `group.decline`: the Welcome is never joined. In one transaction the invitation is dropped and its key consumed
 * (private part deleted, the last-resort key excepted). Nothing is sent to the group (see daemon/README.md).
 */
export function declineInvitation(ctx: GroupContext, id: string): { groupId: string } {
  const invitation = pendingInvitation(ctx, id)
  ctx.db.transaction(() => release(ctx, invitation))()
  purgeWal(ctx.db)
  ctx.log.info({ groupId: id, by: invitation.inviter }, "invitation declined")
  return { groupId: id }
}

/**
 * A removal notice for a group whose invitation is pending: the Welcome is useless now. Dropped as a decline would
 * drop it, and told as `invite.failed` (code `removed`) in the same transaction.
 */
export function dropInvitation(ctx: GroupContext, item: { groupId: string; by: string }): void {
  const invitation = ctx.invitations.get(item.groupId)
  if (!invitation) return
  ctx.db.transaction(() => {
    release(ctx, invitation)
    failed(ctx, invitationItem(invitation), {
      code: "removed",
      message: `${item.by} removed this profile from the group before the invitation was accepted`,
    })
  })()
  purgeWal(ctx.db)
}

function pendingInvitation(ctx: GroupContext, id: string): StoredInvitation {
  const invitation = ctx.invitations.get(id)
  if (!invitation) throw new AppError("not_found", `no pending invitation for group ${id}`)
  return invitation
}

/** Drops an invitation and its key's private part; inside the caller's transaction (WAL purged by the caller). */
function release(ctx: GroupContext, invitation: StoredInvitation): void {
  ctx.invitations.delete(invitation.groupId)
  ctx.pool.consume(invitation.keyRef, ctx.clock.now())
}
