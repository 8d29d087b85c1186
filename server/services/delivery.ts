/**
 * Delivery service (DESIGN §2): groups, Commits, messages, catch-up and inboxes. It checks the
 * MLS framing and the limits, leaves every state change to one store transaction, and tells the
 * stream hub only after that transaction is committed.
 */
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import {
  maxPageSize,
  type BatchItem,
  type CommitBody,
  type CommitResult,
  type ExternalCommitBody,
  type JoinInfoResult,
  type JoinableGroupsResult,
  type GroupInfoResult,
  type ListGroupsResult,
  type LogResult,
  type MessageBatchResult,
  type PostResult,
} from "../../rpc-schema/server/http/groups.js"
import type { InboxItem, InboxResult } from "../../rpc-schema/server/http/inbox.js"
import type { Clock } from "../clock.js"
import type { ServerConfig } from "../config.js"
import type { DeliveryStore, DeviceRef, StoredGroup } from "../store/types.js"
import type { StreamHub } from "../ws/hub.js"
import { toLogEntry } from "../ws/frames.js"
import type { DirectoryEvents } from "./events.js"
import { checkWelcome, leafIdentity, readExternalCommit, readFraming, readGroupInfo } from "./mlsFraming.js"
import { RateLimiter, takeAll } from "./rateLimiter.js"

export type DeliveryConfig = Pick<
  ServerConfig,
  "maxMessageBytes" | "postBurst" | "postPerMinute" | "deliveryRetentionMs"
>

/** A group id from a route: canonical base64url of its bytes, so one group has one spelling. */
function canonicalGroupId(text: string): string {
  try {
    return toBase64Url(fromBase64Url(text))
  } catch {
    throw new AppError("invalid_request", "the group id is not base64url")
  }
}

export function pageArgs(q: { after?: string; limit?: string }): { after: number; limit: number } {
  const limit = q.limit === undefined ? maxPageSize : Number(q.limit)
  if (limit < 1 || limit > maxPageSize) throw new AppError("invalid_request", `limit must be 1..${maxPageSize}`)
  return { after: q.after === undefined ? 0 : Number(q.after), limit }
}

/** A group as its members see it: handles and the device roster. */
function groupInfo(g: StoredGroup): GroupInfoResult {
  return {
    groupId: g.groupId,
    epoch: g.epoch,
    lastSeq: g.lastSeq,
    members: [...new Set(g.members.map((m) => m.handle))].sort(),
    devices: g.members.map((m) => ({ clientId: m.clientId, userId: m.userId, handle: m.handle, deviceId: m.deviceId })),
  }
}

/** The delivery service acts for devices: rosters, cursors and inboxes are per device, budgets per account. */
export class DeliveryService {
  private readonly postLimiter: RateLimiter

  constructor(
    private readonly store: DeliveryStore,
    private readonly clock: Clock,
    private readonly hub: StreamHub,
    private readonly events: DirectoryEvents,
    private readonly config: DeliveryConfig,
  ) {
    this.postLimiter = new RateLimiter("post", { burst: config.postBurst, perMinute: config.postPerMinute })
    // The directory stored the owner's inbox items with the change itself; its events (raised after
    // that commit) only wake the owner's stream connections.
    const wake = (e: { owner: string }) => hub.inbox(e.owner)
    events.on("reserved", wake).on("spent", wake).on("released", wake).on("poolLow", wake)
  }

  /** Takes `n` posts of the account's budget (a batch counts each message; an account's devices share it). */
  private limitPosts(device: DeviceRef, n = 1): Promise<void> {
    return takeAll(
      this.store,
      this.clock,
      [{ limiter: this.postLimiter, key: device.userId, what: "too many messages" }],
      n,
    )
  }

  private decodeMessage(text: string): Uint8Array {
    const max = this.config.maxMessageBytes
    // Checked on the text first, so an oversized message is never decoded.
    if (Math.floor((text.length * 3) / 4) > max) {
      throw new AppError("message_too_large", `an MLS message may have at most ${max} bytes`, { maxBytes: max })
    }
    return fromBase64Url(text)
  }

  /** The framing of a handshake or application message for `groupId`, or malformed_message. */
  private framing(groupId: string, bytes: Uint8Array) {
    const f = readFraming(bytes)
    if (toBase64Url(f.groupId) !== groupId) throw new AppError("malformed_message", "the message is for another group")
    return f
  }

  /** The GroupInfo sent with a Commit (or a creation), checked to be this group's GroupInfo of epoch `epoch`. */
  private groupInfo(groupId: string, epoch: number, text: string | undefined): Uint8Array | undefined {
    if (text === undefined) return undefined
    const data = this.decodeMessage(text)
    const info = readGroupInfo(data)
    if (toBase64Url(info.groupId) !== groupId)
      throw new AppError("malformed_message", "the GroupInfo is for another group")
    if (info.epoch !== epoch)
      throw new AppError("malformed_message", `the GroupInfo is of epoch ${info.epoch}, not of the new epoch ${epoch}`)
    return data
  }

  async createGroup(device: DeviceRef, groupIdText: string, groupInfoText?: string): Promise<GroupInfoResult> {
    await this.limitPosts(device)
    const groupId = canonicalGroupId(groupIdText)
    const info = this.groupInfo(groupId, 0, groupInfoText)
    const g = await this.store.createGroup(groupId, device, this.clock.now(), info)
    this.hub.groupCreated(groupId, device.deviceId)
    return groupInfo(g)
  }

  async getGroup(device: DeviceRef, groupIdText: string): Promise<GroupInfoResult> {
    const groupId = canonicalGroupId(groupIdText)
    const g = await this.store.group(groupId)
    if (!g) throw new AppError("group_not_found", "no group with that id")
    if (!g.members.some((m) => m.deviceId === device.deviceId)) {
      throw new AppError("not_member", `${device.clientId} is not a member of that group`)
    }
    return groupInfo(g)
  }

  async listGroups(device: DeviceRef): Promise<ListGroupsResult> {
    return { groups: await this.store.memberships(device.deviceId) }
  }

  /** The groups of the caller's account that the calling device is not on the roster of (it may join them). */
  async joinableGroups(device: DeviceRef): Promise<JoinableGroupsResult> {
    return { groups: await this.store.joinableGroups(device) }
  }

  async commit(device: DeviceRef, groupIdText: string, body: CommitBody): Promise<CommitResult> {
    await this.limitPosts(device)
    const groupId = canonicalGroupId(groupIdText)
    const data = this.decodeMessage(body.commit)
    const f = this.framing(groupId, data)
    if (f.contentType !== "commit") throw new AppError("malformed_message", `expected a Commit, not ${f.contentType}`)
    // RFC 9420 §12.4.3.1: added members join by the Welcome, so it travels with the Commit that adds them.
    if (body.keyPackages.length > 0 && body.welcome === undefined) {
      throw new AppError("malformed_message", "a Commit that consumes KeyPackages needs its Welcome")
    }
    if (body.keyPackages.length === 0 && body.welcome !== undefined) {
      throw new AppError("malformed_message", "a Welcome without consumed KeyPackages adds nobody")
    }
    if (body.welcome !== undefined) checkWelcome(this.decodeMessage(body.welcome))
    const outcome = await this.store.commit({
      groupId,
      sender: device,
      epoch: f.epoch,
      data,
      consumed: body.keyPackages,
      removes: body.removes,
      welcome: body.welcome,
      groupInfo: this.groupInfo(groupId, f.epoch + 1, body.groupInfo),
      now: this.clock.now(),
    })
    this.hub.commit(outcome)
    for (const s of outcome.spent)
      this.events.emit("spent", { owner: s.owner, ref: s.ref, by: device.deviceId, lastResort: s.lastResort })
    return { seq: outcome.entry.seq, epoch: f.epoch, newEpoch: f.epoch + 1 }
  }

  /**
   * The GroupInfo of the current epoch, for a device entitled to join by external Commit: one on the roster, or one
   * of an account with a device on the roster. The GroupInfo shows the roster (every leaf's client id and key), which
   * all of these see already, themselves or through their account's other device; strangers are refused.
   */
  async getGroupInfo(device: DeviceRef, groupIdText: string): Promise<JoinInfoResult> {
    const groupId = canonicalGroupId(groupIdText)
    const g = await this.store.group(groupId)
    if (!g) throw new AppError("group_not_found", "no group with that id")
    if (!g.members.some((m) => m.userId === device.userId))
      throw new AppError("not_member", `${device.handle} has no device in that group`)
    const info = await this.store.groupInfo(groupId)
    if (!info) throw new AppError("group_info_unavailable", `no GroupInfo of epoch ${g.epoch} was given`)
    return { groupId, epoch: info.epoch, groupInfo: toBase64Url(info.data) }
  }

  /**
   * An external Commit (RFC 9420 §12.4.3.2) by the calling device. Its joiner must be that device (client id; the
   * store checks the bound key), and a Remove in it must remove that device's own leaf in this epoch's ratchet tree
   * (a resync). Who may join at all (a device of an account on the roster) is checked in the store's transaction.
   */
  async externalCommit(device: DeviceRef, groupIdText: string, body: ExternalCommitBody): Promise<CommitResult> {
    await this.limitPosts(device)
    const groupId = canonicalGroupId(groupIdText)
    const data = this.decodeMessage(body.commit)
    const f = this.framing(groupId, data)
    const joiner = readExternalCommit(data)
    if (joiner.identity !== device.clientId)
      throw new AppError("forbidden", `the joiner's credential is ${joiner.identity}, not ${device.clientId}`)
    const resync = joiner.removedLeaf !== undefined
    if (resync) {
      // The GroupInfo of epoch E never changes once stored, and the store checks that the group is still at E.
      const info = await this.store.groupInfo(groupId)
      if (!info || info.epoch !== f.epoch) {
        const g = await this.store.group(groupId)
        if (g && g.epoch !== f.epoch)
          throw new AppError("epoch_conflict", `the group is at epoch ${g.epoch}, not ${f.epoch}`, {
            currentEpoch: g.epoch,
          })
        throw new AppError("group_info_unavailable", "no ratchet tree of this epoch to check the Remove against")
      }
      const removed = leafIdentity(readGroupInfo(info.data).tree, joiner.removedLeaf!)
      if (removed !== device.clientId)
        throw new AppError("forbidden", "an external Commit may remove only the joiner's own old leaf")
    }
    const outcome = await this.store.commit({
      groupId,
      sender: device,
      epoch: f.epoch,
      data,
      consumed: [],
      removes: [],
      welcome: undefined,
      groupInfo: this.groupInfo(groupId, f.epoch + 1, body.groupInfo),
      external: { resync, signatureKey: joiner.signatureKey },
      now: this.clock.now(),
    })
    this.hub.commit(outcome)
    return { seq: outcome.entry.seq, epoch: f.epoch, newEpoch: f.epoch + 1 }
  }

  async post(device: DeviceRef, groupIdText: string, message: string, clientId?: string): Promise<PostResult> {
    await this.limitPosts(device)
    const groupId = canonicalGroupId(groupIdText)
    const data = this.decodeMessage(message)
    const f = this.framing(groupId, data)
    if (f.contentType === "commit") throw new AppError("malformed_message", "a Commit goes to the commits route")
    const id = clientId === undefined ? undefined : fromBase64Url(clientId)
    const { entry, duplicate } = await this.store.append(
      groupId,
      device,
      f.epoch,
      f.contentType,
      data,
      this.clock.now(),
      id,
    )
    // A duplicate was streamed when it was first appended.
    if (!duplicate) this.hub.entry(entry)
    return { seq: entry.seq, epoch: entry.epoch }
  }

  /** Several messages of one sender, appended in order in one transaction; any refused item refuses them all. */
  async postBatch(device: DeviceRef, groupIdText: string, items: readonly BatchItem[]): Promise<MessageBatchResult> {
    await this.limitPosts(device, items.length)
    const groupId = canonicalGroupId(groupIdText)
    const decoded = items.map((item, index) => {
      try {
        const data = this.decodeMessage(item.message)
        const f = this.framing(groupId, data)
        if (f.contentType === "commit") throw new AppError("malformed_message", "a Commit goes to the commits route")
        return { epoch: f.epoch, kind: f.contentType, data, clientId: fromBase64Url(item.clientId) }
      } catch (err) {
        if (!(err instanceof AppError)) throw err
        throw new AppError(err.code, `message ${index}: ${err.message}`, { ...err.details, index })
      }
    })
    const outcomes = await this.store.appendBatch(groupId, device, decoded, this.clock.now())
    // In seq order, after the commit; duplicates were streamed when first appended.
    for (const o of outcomes) if (!o.duplicate) this.hub.entry(o.entry)
    return { results: outcomes.map((o) => ({ seq: o.entry.seq, epoch: o.entry.epoch })) }
  }

  async readLog(device: DeviceRef, groupIdText: string, q: { after?: string; limit?: string }): Promise<LogResult> {
    const groupId = canonicalGroupId(groupIdText)
    const { after, limit } = pageArgs(q)
    const m = await this.store.membership(groupId, device.deviceId)
    if (!m) {
      if (!(await this.store.group(groupId))) throw new AppError("group_not_found", "no group with that id")
      throw new AppError("not_member", `${device.clientId} is not a member of that group`)
    }
    const page = await this.store.readLog(groupId, device.deviceId, after, limit)
    return {
      entries: page.entries.map(toLogEntry),
      lastSeq: m.removedSeq ?? m.lastSeq,
      ...(page.prunedThrough !== undefined && { prunedThrough: page.prunedThrough }),
    }
  }

  async readInbox(device: DeviceRef, q: { after?: string; limit?: string }): Promise<InboxResult> {
    const { after, limit } = pageArgs(q)
    const page = await this.store.readInbox(device.deviceId, after, limit)
    return {
      items: page.items.map((i) => ({ id: i.id, item: JSON.parse(i.item) as InboxItem, createdAt: i.createdAt })),
      ...(page.expired && { expired: page.expired }),
    }
  }

  async ack(device: DeviceRef, upTo: number): Promise<number> {
    return this.store.ack(device.deviceId, upTo)
  }

  /** Retention; the stream connections of devices whose unacknowledged inbox items were deleted are told after the commit. */
  async collectGarbage() {
    const report = await this.store.collectGarbage(this.clock.now(), this.config.deliveryRetentionMs)
    for (const device of report.expiredDevices) this.hub.inbox(device)
    return report
  }
}
