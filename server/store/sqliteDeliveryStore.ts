/**
 * DeliveryStore on better-sqlite3, on the same database and the same WriteBatcher as the key
 * directory, so that a Commit spends its KeyPackages and appends itself in ONE transaction.
 */
import { parseMlsClientId } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import { sameBytes } from "../../shared/bytes.js"
import type { Db } from "./database.js"
import { InboxWriter } from "./inboxWriter.js"
import { KeySpender } from "./keySpending.js"
import type {
  AppendItem,
  DeviceRef,
  CommitInput,
  CommitOutcome,
  DeliveryGcReport,
  DeliveryStore,
  ExpiredReport,
  InboxPage,
  LogPage,
  StoredEntry,
  StoredGroup,
  StoredGroupInfo,
  StoredMembership,
} from "./types.js"
import type { WriteBatcher } from "./writeBatcher.js"
import type { BucketRequest, TokenBuckets } from "../services/rateLimiter.js"

/** An item's refusal, naming the item (details.index) so the sender knows which one. */
export function atIndex(err: unknown, index: number): unknown {
  if (!(err instanceof AppError)) return err
  return new AppError(err.code, `message ${index}: ${err.message}`, { ...err.details, index })
}

interface GroupRow {
  epoch: number
  last_seq: number
}
interface MemberRow {
  joined_seq: number
  removed_seq: number | null
}
export interface RefRow {
  id: string
  user_id: string
  client_id: string
  handle: string
}
export const toRef = (r: RefRow): DeviceRef => ({
  deviceId: r.id,
  userId: r.user_id,
  handle: r.handle,
  clientId: r.client_id,
})
/** A device's names: `d` joined with its account `a`. */
export const refColumns = "d.id, d.user_id, d.client_id, a.handle"
export const accountJoin = "JOIN accounts a ON a.user_id = d.user_id"
/** Joins the device named by `column`, and its account. */
export const refJoin = (column: string) => `JOIN devices d ON d.id = ${column} ${accountJoin}`

export interface EntryRow extends RefRow {
  seq: number
  epoch: number
  kind: StoredEntry["kind"]
  data: Buffer
  received_at: number
}
export const entryColumns = `l.seq, l.epoch, l.kind, l.data, l.received_at, ${refColumns} FROM group_log l ${refJoin("l.sender")}`

export const toEntry = (groupId: string, r: EntryRow): StoredEntry => ({
  groupId,
  seq: r.seq,
  epoch: r.epoch,
  kind: r.kind,
  sender: toRef(r),
  data: r.data,
  receivedAt: r.received_at,
})

/** A consumed key's `user`, when given, must name the device that owns the key: its client id, handle or user id. */
export function checkKeyOwner(user: string | undefined, owner: RefRow | undefined): void {
  if (user === undefined) return
  const d = owner && toRef(owner)
  if (!(d && (user === d.clientId || user === d.handle || user === d.userId))) {
    throw new AppError("reservation_invalid", `that KeyPackage is not ${user}'s`)
  }
}

/** The devices a Commit adds and removes: each named once, and never its sender among the removed. */
export function checkRosterChange(sender: DeviceRef, added: string[], removed: string[]): void {
  const all = [...added, ...removed]
  if (new Set(all).size !== all.length) throw new AppError("conflict", "a device is named twice in the Commit")
  // RFC 9420 §12.4.2: a Commit cannot remove its own sender.
  if (removed.includes(sender.deviceId)) throw new AppError("conflict", "a Commit cannot remove its sender")
}

export class SqliteDeliveryStore implements DeliveryStore {
  private readonly spender: KeySpender
  private readonly inbox: InboxWriter
  private readonly s

  constructor(
    db: Db,
    private readonly writes: WriteBatcher,
    private readonly buckets: TokenBuckets,
  ) {
    this.spender = new KeySpender(db)
    this.inbox = new InboxWriter(db)
    this.s = {
      group: db.prepare<[string], GroupRow>("SELECT epoch, last_seq FROM groups WHERE id = ?"),
      insertGroup: db.prepare(
        `INSERT INTO groups (id, epoch, last_seq, created_by, created_at, group_info, group_info_epoch)
         VALUES (?, 0, 0, ?, ?, ?, 0)`,
      ),
      groupInfo: db.prepare<[string], { group_info: Buffer }>(
        "SELECT group_info FROM groups WHERE id = ? AND group_info IS NOT NULL AND group_info_epoch = epoch",
      ),
      joinable: db.prepare<[string, string], { group_id: string; epoch: number }>(
        `SELECT DISTINCT g.id AS group_id, g.epoch FROM group_members m
         JOIN devices d ON d.id = m.device JOIN groups g ON g.id = m.group_id
         WHERE d.user_id = ? AND m.removed_seq IS NULL AND NOT EXISTS (
           SELECT 1 FROM group_members o WHERE o.group_id = g.id AND o.device = ? AND o.removed_seq IS NULL)
         ORDER BY g.id`,
      ),
      mlsKey: db.prepare<[string], { mls_key: Buffer | null }>("SELECT mls_key FROM devices WHERE id = ?"),
      setGroupInfo: db.prepare("UPDATE groups SET group_info = ?, group_info_epoch = ? WHERE id = ?"),
      advance: db.prepare("UPDATE groups SET epoch = ?, last_seq = ? WHERE id = ?"),
      roster: db.prepare<[string], RefRow>(
        `SELECT ${refColumns} FROM group_members m ${refJoin("m.device")}
         WHERE m.group_id = ? AND m.removed_seq IS NULL ORDER BY d.client_id`,
      ),
      deviceRef: db.prepare<[string], RefRow>(`SELECT ${refColumns} FROM devices d ${accountJoin} WHERE d.id = ?`),
      byClientIdRef: db.prepare<[string], RefRow>(
        `SELECT ${refColumns} FROM devices d ${accountJoin} WHERE d.client_id = ?`,
      ),
      rosterOfAccount: db.prepare<[string, string, string], { device: string }>(
        `SELECT m.device FROM group_members m ${refJoin("m.device")}
         WHERE m.group_id = ? AND m.removed_seq IS NULL AND (a.handle = ? OR a.user_id = ?)`,
      ),
      member: db.prepare<[string, string], MemberRow>(
        "SELECT joined_seq, removed_seq FROM group_members WHERE group_id = ? AND device = ?",
      ),
      reader: db.prepare<[string, string], MemberRow & { pruned_seq: number }>(
        `SELECT m.joined_seq, m.removed_seq, g.pruned_seq
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.group_id = ? AND m.device = ?`,
      ),
      memberships: db.prepare<[string], MemberRow & GroupRow & { group_id: string }>(
        `SELECT m.group_id, m.joined_seq, m.removed_seq, g.epoch, g.last_seq
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.device = ? ORDER BY m.group_id`,
      ),
      join: db.prepare(
        `INSERT INTO group_members (group_id, device, joined_seq, removed_seq) VALUES (?, ?, ?, NULL)
         ON CONFLICT (group_id, device) DO UPDATE SET joined_seq = excluded.joined_seq, removed_seq = NULL`,
      ),
      remove: db.prepare("UPDATE group_members SET removed_seq = ? WHERE group_id = ? AND device = ?"),
      insertEntry: db.prepare(
        `INSERT INTO group_log (group_id, seq, epoch, kind, sender, data, received_at, client_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      byClientId: db.prepare<[string, string, Uint8Array], EntryRow>(
        `SELECT ${entryColumns} WHERE l.group_id = ? AND l.sender = ? AND l.client_id = ?`,
      ),
      entries: db.prepare<[string, number, number, number], EntryRow>(
        `SELECT ${entryColumns} WHERE l.group_id = ? AND l.seq > ? AND l.seq <= ? ORDER BY l.seq LIMIT ?`,
      ),
      inbox: db.prepare<[string, number, number], { id: number; item: string; created_at: number }>(
        "SELECT id, item, created_at FROM inbox WHERE device = ? AND id > ? ORDER BY id LIMIT ?",
      ),
      welcomes: db.prepare<[string, number], { group_id: string }>(
        "SELECT group_id FROM inbox WHERE device = ? AND id > ? AND kind = 'welcome'",
      ),
      expired: db.prepare<[string], ExpiredReport>("SELECT count, through FROM inbox_expired WHERE device = ?"),
      ack: db.prepare("DELETE FROM inbox WHERE device = ? AND id <= ?"),
      clearExpired: db.prepare("DELETE FROM inbox_expired WHERE device = ? AND through <= ?"),
      // Per group, the newest entry old enough to go: it and every entry before it are deleted (a prefix).
      oldPrefixes: db.prepare<[number], { group_id: string; seq: number }>(
        "SELECT group_id, max(seq) AS seq FROM group_log WHERE received_at <= ? GROUP BY group_id",
      ),
      deletePrefix: db.prepare("DELETE FROM group_log WHERE group_id = ? AND seq <= ?"),
      setPruned: db.prepare("UPDATE groups SET pruned_seq = max(pruned_seq, ?) WHERE id = ?"),
      oldInboxByDevice: db.prepare<[number], { device: string; count: number; through: number }>(
        "SELECT device, count(*) AS count, max(id) AS through FROM inbox WHERE created_at <= ? GROUP BY device",
      ),
      addExpired: db.prepare(
        `INSERT INTO inbox_expired (device, count, through) VALUES (?, ?, ?)
         ON CONFLICT (device) DO UPDATE SET count = count + excluded.count, through = max(through, excluded.through)`,
      ),
      oldInbox: db.prepare("DELETE FROM inbox WHERE created_at <= ?"),
    }
  }

  takeTokens(buckets: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    return this.buckets.takeTokens(buckets, n, now)
  }

  pruneBuckets(now: number): Promise<void> {
    return this.buckets.pruneBuckets(now)
  }

  createGroup(groupId: string, creator: DeviceRef, now: number, groupInfo?: Uint8Array): Promise<StoredGroup> {
    return this.writes.run((): StoredGroup => {
      if (this.s.group.get(groupId)) throw new AppError("group_exists", "a group with that id exists already")
      this.s.insertGroup.run(groupId, creator.deviceId, now, groupInfo ?? null)
      this.s.join.run(groupId, creator.deviceId, 0)
      return { groupId, epoch: 0, lastSeq: 0, members: [creator] }
    })
  }

  async group(groupId: string): Promise<StoredGroup | undefined> {
    const g = this.s.group.get(groupId)
    if (!g) return undefined
    const members = this.s.roster.all(groupId).map(toRef)
    return { groupId, epoch: g.epoch, lastSeq: g.last_seq, members }
  }

  async joinableGroups(device: DeviceRef): Promise<{ groupId: string; epoch: number }[]> {
    return this.s.joinable.all(device.userId, device.deviceId).map((r) => ({ groupId: r.group_id, epoch: r.epoch }))
  }

  async groupInfo(groupId: string): Promise<StoredGroupInfo | undefined> {
    // One synchronous run: the epoch and the GroupInfo are of the same instant.
    const g = this.s.group.get(groupId)
    const info = g && this.s.groupInfo.get(groupId)
    return g && info ? { epoch: g.epoch, data: info.group_info } : undefined
  }

  async membership(groupId: string, device: string): Promise<StoredMembership | undefined> {
    const g = this.s.group.get(groupId)
    const m = g && this.s.member.get(groupId, device)
    if (!g || !m) return undefined
    return { groupId, epoch: g.epoch, lastSeq: g.last_seq, joinedSeq: m.joined_seq, removedSeq: m.removed_seq }
  }

  async memberships(device: string): Promise<StoredMembership[]> {
    return this.s.memberships.all(device).map((r) => ({
      groupId: r.group_id,
      epoch: r.epoch,
      lastSeq: r.last_seq,
      joinedSeq: r.joined_seq,
      removedSeq: r.removed_seq,
    }))
  }

  /** The group, with `sender` checked to be on its roster; inside a transaction. */
  private postable(groupId: string, sender: DeviceRef): GroupRow {
    const g = this.s.group.get(groupId)
    if (!g) throw new AppError("group_not_found", "no group with that id")
    const m = this.s.member.get(groupId, sender.deviceId)
    if (!m || m.removed_seq !== null)
      throw new AppError("not_member", `${sender.clientId} is not a member of that group`)
    return g
  }

  /** The devices on the roster that `name` names: a client id one device, a handle or user id all of an account's. */
  private rosterDevices(groupId: string, name: string): string[] {
    if (parseMlsClientId(name)) {
      const d = this.s.byClientIdRef.get(name)
      const m = d && this.s.member.get(groupId, d.id)
      if (!d || !m || m.removed_seq !== null) throw new AppError("conflict", `${name} is not a member`)
      return [d.id]
    }
    const devices = this.s.rosterOfAccount.all(groupId, name, name).map((r) => r.device)
    if (devices.length === 0) throw new AppError("conflict", `${name} has no device in the group`)
    return devices
  }

  /**
   * The group, with the sender of an external Commit checked to be entitled to join it: a device of an account that
   * has a device on the roster (a member's new device, or a member that lost sync), never a stranger. Whether it is
   * on the roster itself must match `resync` (a resync removes its own old leaf; a new device has none).
   */
  private joinable(
    groupId: string,
    sender: DeviceRef,
    { resync, signatureKey }: NonNullable<CommitInput["external"]>,
  ): { g: GroupRow; onRoster: boolean } {
    const g = this.s.group.get(groupId)
    if (!g) throw new AppError("group_not_found", "no group with that id")
    // No one joins as another device: the leaf's key is the one the device bound with its first KeyPackage.
    const bound = this.s.mlsKey.get(sender.deviceId)?.mls_key
    if (!bound || !sameBytes(bound, signatureKey))
      throw new AppError("forbidden", `the joiner's signature key is not the MLS key bound to ${sender.clientId}`)
    if (this.s.rosterOfAccount.all(groupId, sender.handle, sender.userId).length === 0)
      throw new AppError("not_member", `${sender.handle} has no device in that group`)
    const m = this.s.member.get(groupId, sender.deviceId)
    const onRoster = m !== undefined && m.removed_seq === null
    if (resync && !onRoster) throw new AppError("conflict", `${sender.clientId} is not on the roster to resync`)
    if (!resync && onRoster)
      throw new AppError("conflict", `${sender.clientId} is a member: it rejoins with a Remove of its old leaf`)
    return { g, onRoster }
  }

  commit(c: CommitInput): Promise<CommitOutcome> {
    return this.writes.run((): CommitOutcome => {
      const { g, onRoster } = c.external
        ? this.joinable(c.groupId, c.sender, c.external)
        : { g: this.postable(c.groupId, c.sender), onRoster: true }
      if (c.epoch !== g.epoch) {
        throw new AppError("epoch_conflict", `the group is at epoch ${g.epoch}, not ${c.epoch}`, {
          currentEpoch: g.epoch,
        })
      }
      const seq = g.last_seq + 1
      // An external joiner reads from the entry after its Commit, as a device added by a Welcome does.
      const joinedExternally = onRoster ? undefined : c.sender.deviceId
      if (joinedExternally !== undefined) this.s.join.run(c.groupId, joinedExternally, seq)
      // Every consumed key under the committing device's own unexpired reservation, or the whole Commit is refused.
      const spent = c.consumed.map((k) => {
        const s = this.spender.spend(k.ref, k.reservationId, c.sender, c.now)
        checkKeyOwner(k.user, this.s.deviceRef.get(s.owner))
        return s
      })
      const added = spent.map((s) => s.owner)
      const removed = c.removes.flatMap((name) => this.rosterDevices(c.groupId, name))
      checkRosterChange(c.sender, added, removed)
      for (const device of added) {
        const m = this.s.member.get(c.groupId, device)
        if (m && m.removed_seq === null) throw new AppError("conflict", `device ${device} is a member already`)
        this.s.join.run(c.groupId, device, seq)
      }
      for (const device of removed) this.s.remove.run(seq, c.groupId, device)

      this.s.insertEntry.run(c.groupId, seq, c.epoch, "commit", c.sender.deviceId, c.data, c.now, null)
      this.s.advance.run(c.epoch + 1, seq, c.groupId)
      // Without one, no GroupInfo is served for the new epoch (the stored one is of an older epoch).
      this.s.setGroupInfo.run(c.groupInfo ?? null, c.epoch + 1, c.groupId)
      const by = { by: c.sender.handle, byClientId: c.sender.clientId }
      const welcome = c.welcome ?? ""
      for (const device of added) {
        this.inbox.add(device, { kind: "welcome", groupId: c.groupId, seq, epoch: c.epoch + 1, ...by, welcome }, c.now)
      }
      for (const device of removed) {
        this.inbox.add(device, { kind: "removed", groupId: c.groupId, seq, epoch: c.epoch, ...by }, c.now)
      }
      const entry: StoredEntry = {
        groupId: c.groupId,
        seq,
        epoch: c.epoch,
        kind: "commit",
        sender: c.sender,
        data: c.data,
        receivedAt: c.now,
      }
      return { entry, spent, added, removed, ...(joinedExternally !== undefined && { joinedExternally }) }
    })
  }

  append(
    groupId: string,
    sender: DeviceRef,
    epoch: number,
    kind: "proposal" | "application",
    data: Uint8Array,
    now: number,
    clientId?: Uint8Array,
  ): Promise<{ entry: StoredEntry; duplicate: boolean }> {
    return this.writes.run(() => this.appendOne(groupId, sender, { epoch, kind, data, clientId }, now))
  }

  appendBatch(
    groupId: string,
    sender: DeviceRef,
    items: readonly AppendItem[],
    now: number,
  ): Promise<{ entry: StoredEntry; duplicate: boolean }[]> {
    // One operation of the batcher, hence one savepoint: an item that throws rolls the whole batch back.
    return this.writes.run(() =>
      items.map((item, index) => {
        try {
          return this.appendOne(groupId, sender, item, now)
        } catch (err) {
          throw atIndex(err, index)
        }
      }),
    )
  }

  /** One append, inside a transaction. */
  private appendOne(
    groupId: string,
    sender: DeviceRef,
    { epoch, kind, data, clientId }: AppendItem,
    now: number,
  ): { entry: StoredEntry; duplicate: boolean } {
    // A retry of an accepted post (its answer lost): the original answers, whatever changed since.
    const first = clientId && this.s.byClientId.get(groupId, sender.deviceId, clientId)
    if (first) return { entry: toEntry(groupId, first), duplicate: true }
    const g = this.postable(groupId, sender)
    // An older epoch is allowed (a message sent just before a Commit landed); a future one cannot exist.
    if (epoch > g.epoch) {
      throw new AppError("epoch_conflict", `the group is at epoch ${g.epoch}, not ${epoch}`, {
        currentEpoch: g.epoch,
      })
    }
    const seq = g.last_seq + 1
    this.s.insertEntry.run(groupId, seq, epoch, kind, sender.deviceId, data, now, clientId ?? null)
    this.s.advance.run(g.epoch, seq, groupId)
    return { entry: { groupId, seq, epoch, kind, sender, data, receivedAt: now }, duplicate: false }
  }

  // Synchronous from the first statement to the last: no transaction can commit between reading how far retention
  // deleted and reading the entries, so the gap reported is exactly the one before these entries.
  async readLog(groupId: string, device: string, after: number, limit: number): Promise<LogPage> {
    const m = this.s.reader.get(groupId, device)
    if (!m) return { entries: [] }
    const from = Math.max(after, m.joined_seq)
    const upper = m.removed_seq ?? Number.MAX_SAFE_INTEGER
    const entries = this.s.entries.all(groupId, from, upper, limit).map((r) => toEntry(groupId, r))
    // Deleted entries this device may read and has not had: (from, min(pruned, upper)].
    const prunedThrough = Math.min(m.pruned_seq, upper)
    return prunedThrough > from ? { entries, prunedThrough } : { entries }
  }

  async pendingWelcomes(device: string, after: number): Promise<Set<string>> {
    return new Set(this.s.welcomes.all(device, after).map((r) => r.group_id))
  }

  // Items and report read in one synchronous run: an item is either among the items or counted in the report.
  async readInbox(device: string, after: number, limit: number): Promise<InboxPage> {
    const items = this.s.inbox
      .all(device, after, limit)
      .map((r) => ({ id: r.id, item: r.item, createdAt: r.created_at }))
    const expired = this.s.expired.get(device)
    return expired ? { items, expired } : { items }
  }

  ack(device: string, upTo: number): Promise<number> {
    return this.writes.run(() => {
      const deleted = this.s.ack.run(device, upTo).changes
      this.s.clearExpired.run(device, upTo)
      return deleted
    })
  }

  collectGarbage(now: number, retentionMs: number): Promise<DeliveryGcReport> {
    const cutoff = now - retentionMs
    return this.writes.run((): DeliveryGcReport => {
      let logEntries = 0
      for (const { group_id, seq } of this.s.oldPrefixes.all(cutoff)) {
        logEntries += this.s.deletePrefix.run(group_id, seq).changes
        this.s.setPruned.run(seq, group_id)
      }
      // Every inbox item is unacknowledged (an ack deletes it): each one deleted here is counted for its device.
      const expired = this.s.oldInboxByDevice.all(cutoff)
      for (const e of expired) this.s.addExpired.run(e.device, e.count, e.through)
      const inboxItems = this.s.oldInbox.run(cutoff).changes
      return { logEntries, inboxItems, expiredDevices: expired.map((e) => e.device) }
    })
  }
}
