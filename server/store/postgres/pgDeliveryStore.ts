/**
 * DeliveryStore on PostgreSQL, the same semantics as ../sqliteDeliveryStore.ts. A Commit or a message takes the
 * group's row lock (`SELECT … FOR UPDATE`) first: posts to one group are one at a time on every instance, the epoch
 * is compared and set under that lock (a Commit is accepted only at the current epoch, so no two Commits of one epoch
 * are both stored), and seqs are drawn and committed in order. Spends, roster change, the entry and the Welcomes are
 * one transaction. Reads that must be one instant (a log page with its retention gap, an inbox page with its report
 * of expired items) are one statement.
 */
import { parseMlsClientId } from "../../../rpc-schema/common.js"
import { AppError } from "../../../rpc-schema/errors.js"
import { sameBytes } from "../../../shared/bytes.js"
import { entryFrame } from "../../ws/frames.js"
import {
  accountJoin,
  atIndex,
  checkKeyOwner,
  checkRosterChange,
  entryColumns,
  refColumns,
  refJoin,
  toEntry,
  toRef,
  type EntryRow,
  type RefRow,
} from "../sqliteDeliveryStore.js"
import type {
  AppendItem,
  CommitInput,
  CommitOutcome,
  DeliveryGcReport,
  DeliveryStore,
  DeviceRef,
  InboxPage,
  LogPage,
  StoredEntry,
  StoredGroup,
  StoredGroupInfo,
  StoredMembership,
} from "../types.js"
import { bytes, type PgDatabase, type Tx } from "./database.js"
import { GroupBatcher, type Outcome } from "./groupBatcher.js"
import { spendKey } from "./keys.js"
import type { BucketRequest } from "../../services/rateLimiter.js"

interface GroupRow {
  epoch: number
  last_seq: number
}
interface MemberRow {
  joined_seq: number
  removed_seq: number | null
}

const memberRow = (q: Pick<Tx, "row">, groupId: string, device: string) =>
  q.row<MemberRow>("SELECT joined_seq, removed_seq FROM group_members WHERE group_id = $1 AND device = $2", [
    groupId,
    device,
  ])

const groupNotFound = () => new AppError("group_not_found", "no group with that id")
const notMember = (sender: DeviceRef) => new AppError("not_member", `${sender.clientId} is not a member of that group`)
const epochConflict = (current: number, given: number) =>
  new AppError("epoch_conflict", `the group is at epoch ${current}, not ${given}`, { currentEpoch: current })

/** One message or proposal to a group, and what storing it answers. */
interface Post {
  sender: DeviceRef
  item: AppendItem
  now: number
}
type Appended = { entry: StoredEntry; duplicate: boolean }

/** Tells the other instances of an entry, with its frame so that their hubs need not read it back. */
const ringEntry = (tx: Tx, e: StoredEntry) =>
  tx.ring({ k: "entry", groupId: e.groupId, seq: e.seq, frame: entryFrame(e) })

export class PgDeliveryStore implements DeliveryStore {
  /** Posts and Commits of one group arriving together share a transaction (groupBatcher.ts). */
  private readonly posts: GroupBatcher<Post>

  constructor(private readonly db: PgDatabase) {
    this.posts = new GroupBatcher(db, (tx, groupId, posts) => this.appendAll(tx, groupId, posts))
  }

  takeTokens(buckets: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    return this.db.buckets.takeTokens(buckets, n, now)
  }

  pruneBuckets(now: number): Promise<void> {
    return this.db.buckets.pruneBuckets(now)
  }

  createGroup(groupId: string, creator: DeviceRef, now: number, groupInfo?: Uint8Array): Promise<StoredGroup> {
    return this.db.transaction(async (tx): Promise<StoredGroup> => {
      const inserted = await tx.run(
        `INSERT INTO groups (id, epoch, last_seq, created_by, created_at, group_info, group_info_epoch)
         VALUES ($1, 0, 0, $2, $3, $4, 0) ON CONFLICT (id) DO NOTHING`,
        [groupId, creator.deviceId, now, groupInfo ? bytes(groupInfo) : null],
      )
      if (inserted === 0) throw new AppError("group_exists", "a group with that id exists already")
      await tx.run("INSERT INTO group_members (group_id, device, joined_seq) VALUES ($1, $2, 0)", [
        groupId,
        creator.deviceId,
      ])
      tx.ring({ k: "created", groupId, device: creator.deviceId })
      return { groupId, epoch: 0, lastSeq: 0, members: [creator] }
    })
  }

  async group(groupId: string): Promise<StoredGroup | undefined> {
    const g = await this.db.row<GroupRow>("SELECT epoch, last_seq FROM groups WHERE id = $1", [groupId])
    if (!g) return undefined
    const members = await this.db.rows<RefRow>(
      `SELECT ${refColumns} FROM group_members m ${refJoin("m.device")}
       WHERE m.group_id = $1 AND m.removed_seq IS NULL ORDER BY d.client_id COLLATE "C"`,
      [groupId],
    )
    return { groupId, epoch: g.epoch, lastSeq: g.last_seq, members: members.map(toRef) }
  }

  async joinableGroups(device: DeviceRef): Promise<{ groupId: string; epoch: number }[]> {
    const rows = await this.db.rows<{ group_id: string; epoch: number }>(
      `SELECT g.id AS group_id, g.epoch FROM groups g
       WHERE EXISTS (SELECT 1 FROM group_members m JOIN devices d ON d.id = m.device
                     WHERE m.group_id = g.id AND d.user_id = $1 AND m.removed_seq IS NULL)
         AND NOT EXISTS (SELECT 1 FROM group_members o
                         WHERE o.group_id = g.id AND o.device = $2 AND o.removed_seq IS NULL)
       ORDER BY g.id COLLATE "C"`,
      [device.userId, device.deviceId],
    )
    return rows.map((r) => ({ groupId: r.group_id, epoch: r.epoch }))
  }

  async groupInfo(groupId: string): Promise<StoredGroupInfo | undefined> {
    // One statement: the epoch and the GroupInfo are of the same instant.
    const r = await this.db.row<{ epoch: number; group_info: Buffer }>(
      "SELECT epoch, group_info FROM groups WHERE id = $1 AND group_info IS NOT NULL AND group_info_epoch = epoch",
      [groupId],
    )
    return r && { epoch: r.epoch, data: new Uint8Array(r.group_info) }
  }

  async membership(groupId: string, device: string): Promise<StoredMembership | undefined> {
    const r = await this.db.row<MemberRow & GroupRow>(
      `SELECT m.joined_seq, m.removed_seq, g.epoch, g.last_seq
       FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.group_id = $1 AND m.device = $2`,
      [groupId, device],
    )
    if (!r) return undefined
    return { groupId, epoch: r.epoch, lastSeq: r.last_seq, joinedSeq: r.joined_seq, removedSeq: r.removed_seq }
  }

  async memberships(device: string): Promise<StoredMembership[]> {
    const rows = await this.db.rows<MemberRow & GroupRow & { group_id: string }>(
      `SELECT m.group_id, m.joined_seq, m.removed_seq, g.epoch, g.last_seq
       FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.device = $1 ORDER BY m.group_id COLLATE "C"`,
      [device],
    )
    return rows.map((r) => ({
      groupId: r.group_id,
      epoch: r.epoch,
      lastSeq: r.last_seq,
      joinedSeq: r.joined_seq,
      removedSeq: r.removed_seq,
    }))
  }

  /** The group, locked for this transaction, with `sender` checked to be on its roster. */
  private async postable(tx: Tx, groupId: string, sender: DeviceRef): Promise<GroupRow> {
    const g = await tx.row<GroupRow>("SELECT epoch, last_seq FROM groups WHERE id = $1 FOR UPDATE", [groupId])
    if (!g) throw groupNotFound()
    const m = await memberRow(tx, groupId, sender.deviceId)
    if (!m || m.removed_seq !== null) throw notMember(sender)
    return g
  }

  /**
   * The group, locked for this transaction, with the sender of an external Commit checked to be entitled to join it
   * (as in the SQLite store: a device of an account with a device on the roster, with its bound MLS key; on the roster
   * itself exactly when it resyncs).
   */
  private async joinable(
    tx: Tx,
    groupId: string,
    sender: DeviceRef,
    { resync, signatureKey }: NonNullable<CommitInput["external"]>,
  ): Promise<{ g: GroupRow; onRoster: boolean }> {
    const g = await tx.row<GroupRow>("SELECT epoch, last_seq FROM groups WHERE id = $1 FOR UPDATE", [groupId])
    if (!g) throw groupNotFound()
    const bound = await tx.row<{ mls_key: Buffer | null }>("SELECT mls_key FROM devices WHERE id = $1", [
      sender.deviceId,
    ])
    if (!bound?.mls_key || !sameBytes(bound.mls_key, signatureKey))
      throw new AppError("forbidden", `the joiner's signature key is not the MLS key bound to ${sender.clientId}`)
    const account = await tx.row<{ n: number }>(
      `SELECT 1 AS n FROM group_members m JOIN devices d ON d.id = m.device
       WHERE m.group_id = $1 AND m.removed_seq IS NULL AND d.user_id = $2 LIMIT 1`,
      [groupId, sender.userId],
    )
    if (!account) throw new AppError("not_member", `${sender.handle} has no device in that group`)
    const m = await memberRow(tx, groupId, sender.deviceId)
    const onRoster = m !== undefined && m.removed_seq === null
    if (resync && !onRoster) throw new AppError("conflict", `${sender.clientId} is not on the roster to resync`)
    if (!resync && onRoster)
      throw new AppError("conflict", `${sender.clientId} is a member: it rejoins with a Remove of its old leaf`)
    return { g, onRoster }
  }

  /** The devices on the roster that `name` names: a client id one device, a handle or user id all of an account's. */
  private async rosterDevices(tx: Tx, groupId: string, name: string): Promise<string[]> {
    if (parseMlsClientId(name)) {
      const d = await tx.row<{ id: string }>("SELECT id FROM devices WHERE client_id = $1", [name])
      const m = d && (await memberRow(tx, groupId, d.id))
      if (!d || !m || m.removed_seq !== null) throw new AppError("conflict", `${name} is not a member`)
      return [d.id]
    }
    const rows = await tx.rows<{ device: string }>(
      `SELECT m.device FROM group_members m ${refJoin("m.device")}
       WHERE m.group_id = $1 AND m.removed_seq IS NULL AND (a.handle = $2 OR a.user_id = $2)`,
      [groupId, name],
    )
    if (rows.length === 0) throw new AppError("conflict", `${name} has no device in the group`)
    return rows.map((r) => r.device)
  }

  private async insertEntry(tx: Tx, e: StoredEntry, newEpoch: number, clientId: Uint8Array | null) {
    await tx.run(
      `INSERT INTO group_log (group_id, seq, epoch, kind, sender, data, received_at, client_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [e.groupId, e.seq, e.epoch, e.kind, e.sender.deviceId, bytes(e.data), e.receivedAt, clientId && bytes(clientId)],
    )
    await tx.run("UPDATE groups SET epoch = $1, last_seq = $2 WHERE id = $3", [newEpoch, e.seq, e.groupId])
    ringEntry(tx, e)
  }

  commit(c: CommitInput): Promise<CommitOutcome> {
    return this.posts.run(c.groupId, async (tx): Promise<CommitOutcome> => {
      const { g, onRoster } = c.external
        ? await this.joinable(tx, c.groupId, c.sender, c.external)
        : { g: await this.postable(tx, c.groupId, c.sender), onRoster: true }
      // Compare-and-set under the group's lock: only a Commit of the current epoch advances it.
      if (c.epoch !== g.epoch) throw epochConflict(g.epoch, c.epoch)
      const seq = g.last_seq + 1
      // An external joiner reads from the entry after its Commit, as a device added by a Welcome does.
      const joinedExternally = onRoster ? undefined : c.sender.deviceId
      if (joinedExternally !== undefined) await this.join(tx, c.groupId, joinedExternally, seq)
      const spent = []
      for (const k of c.consumed) {
        const s = await spendKey(tx, k.ref, k.reservationId, c.sender, c.now)
        checkKeyOwner(
          k.user,
          await tx.row<RefRow>(`SELECT ${refColumns} FROM devices d ${accountJoin} WHERE d.id = $1`, [s.owner]),
        )
        spent.push(s)
      }
      const added = spent.map((s) => s.owner)
      const removed: string[] = []
      for (const name of c.removes) removed.push(...(await this.rosterDevices(tx, c.groupId, name)))
      checkRosterChange(c.sender, added, removed)
      for (const device of added) {
        const m = await memberRow(tx, c.groupId, device)
        if (m && m.removed_seq === null) throw new AppError("conflict", `device ${device} is a member already`)
        await this.join(tx, c.groupId, device, seq)
      }
      for (const device of removed) {
        await tx.run("UPDATE group_members SET removed_seq = $1 WHERE group_id = $2 AND device = $3", [
          seq,
          c.groupId,
          device,
        ])
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
      await this.insertEntry(tx, entry, c.epoch + 1, null)
      // Without one, no GroupInfo is served for the new epoch (the stored one is of an older epoch).
      await tx.run("UPDATE groups SET group_info = $1, group_info_epoch = $2 WHERE id = $3", [
        c.groupInfo ? bytes(c.groupInfo) : null,
        c.epoch + 1,
        c.groupId,
      ])
      if (removed.length > 0) tx.ring({ k: "ended", groupId: c.groupId, seq, devices: removed })
      if (joinedExternally !== undefined) tx.ring({ k: "joined", groupId: c.groupId, seq, device: joinedExternally })
      const by = { by: c.sender.handle, byClientId: c.sender.clientId }
      const welcome = c.welcome ?? ""
      for (const device of added) {
        tx.addInbox(device, { kind: "welcome", groupId: c.groupId, seq, epoch: c.epoch + 1, ...by, welcome }, c.now)
      }
      for (const device of removed) {
        tx.addInbox(device, { kind: "removed", groupId: c.groupId, seq, epoch: c.epoch, ...by }, c.now)
      }
      return { entry, spent, added, removed, ...(joinedExternally !== undefined && { joinedExternally }) }
    })
  }

  /** `device` on the roster from `seq` on (again, if it was removed before). */
  private async join(tx: Tx, groupId: string, device: string, seq: number): Promise<void> {
    await tx.run(
      `INSERT INTO group_members (group_id, device, joined_seq, removed_seq) VALUES ($1, $2, $3, NULL)
       ON CONFLICT (group_id, device) DO UPDATE SET joined_seq = excluded.joined_seq, removed_seq = NULL`,
      [groupId, device, seq],
    )
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
    return this.posts.post(groupId, { sender, item: { epoch, kind, data, clientId }, now })
  }

  appendBatch(
    groupId: string,
    sender: DeviceRef,
    items: readonly AppendItem[],
    now: number,
  ): Promise<{ entry: StoredEntry; duplicate: boolean }[]> {
    // One operation of the batcher, hence one savepoint: an item refused rolls the whole batch back.
    return this.posts.run(groupId, async (tx) => {
      const outcomes = await this.appendAll(
        tx,
        groupId,
        items.map((item) => ({ sender, item, now })),
      )
      return outcomes.map((o, index) => {
        if (!o.ok) throw atIndex(o.error, index)
        return o.value
      })
    })
  }

  /**
   * Posts to `groupId` in one statement (migrations.ts's `append_entries`): each post's outcome, a refusal (which
   * changed nothing) as an error.
   */
  private async appendAll(tx: Tx, groupId: string, posts: readonly Post[]): Promise<Outcome<Appended>[]> {
    const col = <T>(f: (p: Post) => T) => posts.map(f)
    const rows = await tx.rows<{ i: number; outcome: string; seq: number; group_epoch: number }>(
      "SELECT * FROM append_entries($1, $2, $3, $4, $5, $6, $7)",
      [
        groupId,
        col((p) => p.sender.deviceId),
        col((p) => p.item.epoch),
        col((p) => p.item.kind),
        col((p) => bytes(p.item.data)),
        col((p) => p.now),
        col((p) => (p.item.clientId ? bytes(p.item.clientId) : null)),
      ],
    )
    const outcomes: Outcome<Appended>[] = []
    for (const r of rows) {
      const { sender, item, now } = posts[r.i - 1]!
      const refuse = (error: AppError) => outcomes.push({ ok: false, error })
      switch (r.outcome) {
        case "group_not_found":
          refuse(groupNotFound())
          continue
        case "not_member":
          refuse(notMember(sender))
          continue
        case "epoch_conflict":
          // An older epoch is allowed (a message sent just before a Commit landed); a future one cannot exist.
          refuse(epochConflict(r.group_epoch, item.epoch))
          continue
        case "duplicate": {
          // A retry of an accepted post (its answer lost): the original answers. It rings again, so that a wake-up
          // lost with an instance that died between COMMIT and NOTIFY comes with the client's retry.
          const first = await tx.row<EntryRow>(`SELECT ${entryColumns} WHERE l.group_id = $1 AND l.seq = $2`, [
            groupId,
            r.seq,
          ])
          const entry = toEntry(groupId, first!)
          ringEntry(tx, entry)
          outcomes.push({ ok: true, value: { entry, duplicate: true } })
          continue
        }
      }
      const { epoch, kind, data } = item
      const entry: StoredEntry = { groupId, seq: r.seq, epoch, kind, sender, data, receivedAt: now }
      ringEntry(tx, entry)
      outcomes.push({ ok: true, value: { entry, duplicate: false } })
    }
    return outcomes
  }

  async readLog(groupId: string, device: string, after: number, limit: number): Promise<LogPage> {
    // One statement, one snapshot: the gap reported is exactly the one before these entries.
    const rows = await this.db.rows<MemberRow & { pruned_seq: number } & Partial<EntryRow>>(
      `SELECT m.joined_seq, m.removed_seq, g.pruned_seq, e.*
       FROM group_members m JOIN groups g ON g.id = m.group_id
       LEFT JOIN LATERAL (
         SELECT ${entryColumns}
         WHERE l.group_id = m.group_id AND l.seq > greatest($3, m.joined_seq)
           AND l.seq <= coalesce(m.removed_seq, 9007199254740991)
         ORDER BY l.seq LIMIT $4) e ON true
       WHERE m.group_id = $1 AND m.device = $2 ORDER BY e.seq`,
      [groupId, device, after, limit],
    )
    const m = rows[0]
    if (!m) return { entries: [] }
    const entries = rows.filter((r) => r.seq !== null).map((r) => toEntry(groupId, r as EntryRow))
    const from = Math.max(after, m.joined_seq)
    const prunedThrough = Math.min(m.pruned_seq, m.removed_seq ?? Number.MAX_SAFE_INTEGER)
    return prunedThrough > from ? { entries, prunedThrough } : { entries }
  }

  async pendingWelcomes(device: string, after: number): Promise<Set<string>> {
    const rows = await this.db.rows<{ group_id: string }>(
      "SELECT group_id FROM inbox WHERE device = $1 AND id > $2 AND kind = 'welcome'",
      [device, after],
    )
    return new Set(rows.map((r) => r.group_id))
  }

  async readInbox(device: string, after: number, limit: number): Promise<InboxPage> {
    // One statement: an item is either among the items or counted in the report.
    const rows = await this.db.rows<{
      id: number | null
      item: string | null
      created_at: number | null
      count: number | null
      through: number | null
    }>(
      `SELECT i.id, i.item, i.created_at, e.count, e.through
       FROM (SELECT 1) one
       LEFT JOIN inbox_expired e ON e.device = $1
       LEFT JOIN LATERAL (SELECT id, item, created_at FROM inbox WHERE device = $1 AND id > $2 ORDER BY id LIMIT $3) i
         ON true
       ORDER BY i.id`,
      [device, after, limit],
    )
    const items = rows.filter((r) => r.id !== null).map((r) => ({ id: r.id!, item: r.item!, createdAt: r.created_at! }))
    const e = rows[0]!
    return e.count !== null ? { items, expired: { count: e.count, through: e.through! } } : { items }
  }

  async ack(device: string, upTo: number): Promise<number> {
    // One statement: the items and the report they reach go together.
    const row = await this.db.row<{ n: number }>(
      `WITH acked AS (DELETE FROM inbox WHERE device = $1 AND id <= $2 RETURNING 1),
            cleared AS (DELETE FROM inbox_expired WHERE device = $1 AND through <= $2)
       SELECT count(*) AS n FROM acked`,
      [device, upTo],
    )
    return row!.n
  }

  collectGarbage(now: number, retentionMs: number): Promise<DeliveryGcReport> {
    const cutoff = now - retentionMs
    return this.db.transaction(async (tx): Promise<DeliveryGcReport> => {
      let logEntries = 0
      const prefixes = await tx.rows<{ group_id: string; seq: number }>(
        "SELECT group_id, max(seq) AS seq FROM group_log WHERE received_at <= $1 GROUP BY group_id",
        [cutoff],
      )
      for (const { group_id, seq } of prefixes) {
        logEntries += await tx.run("DELETE FROM group_log WHERE group_id = $1 AND seq <= $2", [group_id, seq])
        await tx.run("UPDATE groups SET pruned_seq = greatest(pruned_seq, $1) WHERE id = $2", [seq, group_id])
      }
      // Every inbox item is unacknowledged (an ack deletes it): each one deleted here is counted for its device.
      const expired = await tx.rows<{ device: string; count: number; through: number }>(
        "SELECT device, count(*) AS count, max(id) AS through FROM inbox WHERE created_at <= $1 GROUP BY device",
        [cutoff],
      )
      for (const e of expired) {
        await tx.run(
          `INSERT INTO inbox_expired (device, count, through) VALUES ($1, $2, $3)
           ON CONFLICT (device) DO UPDATE
           SET count = inbox_expired.count + excluded.count, through = greatest(inbox_expired.through, excluded.through)`,
          [e.device, e.count, e.through],
        )
      }
      const inboxItems = await tx.run("DELETE FROM inbox WHERE created_at <= $1", [cutoff])
      const expiredDevices = expired.map((e) => e.device)
      if (expiredDevices.length > 0) tx.ring({ k: "inbox", devices: expiredDevices })
      return { logEntries, inboxItems, expiredDevices }
    })
  }
}
