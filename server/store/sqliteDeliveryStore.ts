/**
 * DeliveryStore on better-sqlite3, on the same database and the same WriteBatcher as the key
 * directory, so that a Commit spends its KeyPackages and appends itself in ONE transaction.
 */
import { AppError } from "../../rpc-schema/errors.js"
import type { Db } from "./database.js"
import { InboxWriter } from "./inboxWriter.js"
import { KeySpender } from "./keySpending.js"
import type {
  AppendItem,
  CommitInput,
  CommitOutcome,
  DeliveryGcReport,
  DeliveryStore,
  ExpiredReport,
  InboxPage,
  LogPage,
  StoredEntry,
  StoredGroup,
  StoredMembership,
} from "./types.js"
import type { WriteBatcher } from "./writeBatcher.js"

/** An item's refusal, naming the item (details.index) so the sender knows which one. */
function atIndex(err: unknown, index: number): unknown {
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
interface EntryRow {
  seq: number
  epoch: number
  kind: StoredEntry["kind"]
  sender: string
  data: Buffer
  received_at: number
}

export class SqliteDeliveryStore implements DeliveryStore {
  private readonly spender: KeySpender
  private readonly inbox: InboxWriter
  private readonly s

  constructor(
    db: Db,
    private readonly writes: WriteBatcher,
  ) {
    this.spender = new KeySpender(db)
    this.inbox = new InboxWriter(db)
    this.s = {
      group: db.prepare<[string], GroupRow>("SELECT epoch, last_seq FROM groups WHERE id = ?"),
      insertGroup: db.prepare(
        "INSERT INTO groups (id, epoch, last_seq, created_by, created_at) VALUES (?, 0, 0, ?, ?)",
      ),
      advance: db.prepare("UPDATE groups SET epoch = ?, last_seq = ? WHERE id = ?"),
      roster: db.prepare<[string], { username: string }>(
        "SELECT username FROM group_members WHERE group_id = ? AND removed_seq IS NULL ORDER BY username",
      ),
      member: db.prepare<[string, string], MemberRow>(
        "SELECT joined_seq, removed_seq FROM group_members WHERE group_id = ? AND username = ?",
      ),
      reader: db.prepare<[string, string], MemberRow & { pruned_seq: number }>(
        `SELECT m.joined_seq, m.removed_seq, g.pruned_seq
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.group_id = ? AND m.username = ?`,
      ),
      memberships: db.prepare<[string], MemberRow & GroupRow & { group_id: string }>(
        `SELECT m.group_id, m.joined_seq, m.removed_seq, g.epoch, g.last_seq
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.username = ? ORDER BY m.group_id`,
      ),
      join: db.prepare(
        `INSERT INTO group_members (group_id, username, joined_seq, removed_seq) VALUES (?, ?, ?, NULL)
         ON CONFLICT (group_id, username) DO UPDATE SET joined_seq = excluded.joined_seq, removed_seq = NULL`,
      ),
      remove: db.prepare("UPDATE group_members SET removed_seq = ? WHERE group_id = ? AND username = ?"),
      insertEntry: db.prepare(
        `INSERT INTO group_log (group_id, seq, epoch, kind, sender, data, received_at, client_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      byClientId: db.prepare<[string, string, Uint8Array], EntryRow>(
        `SELECT seq, epoch, kind, sender, data, received_at FROM group_log
         WHERE group_id = ? AND sender = ? AND client_id = ?`,
      ),
      entries: db.prepare<[string, number, number, number], EntryRow>(
        `SELECT seq, epoch, kind, sender, data, received_at FROM group_log
         WHERE group_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
      ),
      inbox: db.prepare<[string, number, number], { id: number; item: string; created_at: number }>(
        "SELECT id, item, created_at FROM inbox WHERE username = ? AND id > ? ORDER BY id LIMIT ?",
      ),
      welcomes: db.prepare<[string, number], { group_id: string }>(
        "SELECT group_id FROM inbox WHERE username = ? AND id > ? AND kind = 'welcome'",
      ),
      expired: db.prepare<[string], ExpiredReport>("SELECT count, through FROM inbox_expired WHERE username = ?"),
      ack: db.prepare("DELETE FROM inbox WHERE username = ? AND id <= ?"),
      clearExpired: db.prepare("DELETE FROM inbox_expired WHERE username = ? AND through <= ?"),
      // Per group, the newest entry old enough to go: it and every entry before it are deleted (a prefix).
      oldPrefixes: db.prepare<[number], { group_id: string; seq: number }>(
        "SELECT group_id, max(seq) AS seq FROM group_log WHERE received_at <= ? GROUP BY group_id",
      ),
      deletePrefix: db.prepare("DELETE FROM group_log WHERE group_id = ? AND seq <= ?"),
      setPruned: db.prepare("UPDATE groups SET pruned_seq = max(pruned_seq, ?) WHERE id = ?"),
      oldInboxByUser: db.prepare<[number], { username: string; count: number; through: number }>(
        "SELECT username, count(*) AS count, max(id) AS through FROM inbox WHERE created_at <= ? GROUP BY username",
      ),
      addExpired: db.prepare(
        `INSERT INTO inbox_expired (username, count, through) VALUES (?, ?, ?)
         ON CONFLICT (username) DO UPDATE SET count = count + excluded.count, through = max(through, excluded.through)`,
      ),
      oldInbox: db.prepare("DELETE FROM inbox WHERE created_at <= ?"),
    }
  }

  createGroup(groupId: string, creator: string, now: number): Promise<StoredGroup> {
    return this.writes.run((): StoredGroup => {
      if (this.s.group.get(groupId)) throw new AppError("group_exists", "a group with that id exists already")
      this.s.insertGroup.run(groupId, creator, now)
      this.s.join.run(groupId, creator, 0)
      return { groupId, epoch: 0, lastSeq: 0, members: [creator] }
    })
  }

  async group(groupId: string): Promise<StoredGroup | undefined> {
    const g = this.s.group.get(groupId)
    if (!g) return undefined
    const members = this.s.roster.all(groupId).map((r) => r.username)
    return { groupId, epoch: g.epoch, lastSeq: g.last_seq, members }
  }

  async membership(groupId: string, username: string): Promise<StoredMembership | undefined> {
    const g = this.s.group.get(groupId)
    const m = g && this.s.member.get(groupId, username)
    if (!g || !m) return undefined
    return { groupId, epoch: g.epoch, lastSeq: g.last_seq, joinedSeq: m.joined_seq, removedSeq: m.removed_seq }
  }

  async memberships(username: string): Promise<StoredMembership[]> {
    return this.s.memberships.all(username).map((r) => ({
      groupId: r.group_id,
      epoch: r.epoch,
      lastSeq: r.last_seq,
      joinedSeq: r.joined_seq,
      removedSeq: r.removed_seq,
    }))
  }

  /** The group, with `sender` checked to be on its roster; inside a transaction. */
  private postable(groupId: string, sender: string): GroupRow {
    const g = this.s.group.get(groupId)
    if (!g) throw new AppError("group_not_found", "no group with that id")
    const m = this.s.member.get(groupId, sender)
    if (!m || m.removed_seq !== null) throw new AppError("not_member", `${sender} is not a member of that group`)
    return g
  }

  commit(c: CommitInput): Promise<CommitOutcome> {
    return this.writes.run((): CommitOutcome => {
      const g = this.postable(c.groupId, c.sender)
      if (c.epoch !== g.epoch) {
        throw new AppError("epoch_conflict", `the group is at epoch ${g.epoch}, not ${c.epoch}`, {
          currentEpoch: g.epoch,
        })
      }
      const added = c.consumed.map((k) => k.user)
      const all = [...added, ...c.removes]
      if (new Set(all).size !== all.length) throw new AppError("conflict", "a user is named twice in the Commit")
      // RFC 9420 §12.4.2: a Commit cannot remove its own sender.
      if (c.removes.includes(c.sender)) throw new AppError("conflict", "a Commit cannot remove its sender")
      const seq = g.last_seq + 1

      // Every consumed key under the committer's own unexpired reservation, or the whole Commit is refused.
      const spent = c.consumed.map((k) => {
        const s = this.spender.spend(k.ref, k.reservationId, c.sender, c.now)
        if (s.owner !== k.user) throw new AppError("reservation_invalid", `that KeyPackage is not ${k.user}'s`)
        return s
      })
      for (const user of added) {
        const m = this.s.member.get(c.groupId, user)
        if (m && m.removed_seq === null) throw new AppError("conflict", `${user} is a member already`)
        this.s.join.run(c.groupId, user, seq)
      }
      for (const user of c.removes) {
        const m = this.s.member.get(c.groupId, user)
        if (!m || m.removed_seq !== null) throw new AppError("conflict", `${user} is not a member`)
        this.s.remove.run(seq, c.groupId, user)
      }

      this.s.insertEntry.run(c.groupId, seq, c.epoch, "commit", c.sender, c.data, c.now, null)
      this.s.advance.run(c.epoch + 1, seq, c.groupId)
      const by = c.sender
      for (const user of added) {
        const welcome = c.welcome ?? ""
        this.inbox.add(user, { kind: "welcome", groupId: c.groupId, seq, epoch: c.epoch + 1, by, welcome }, c.now)
      }
      for (const user of c.removes) {
        this.inbox.add(user, { kind: "removed", groupId: c.groupId, seq, epoch: c.epoch, by }, c.now)
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
      return { entry, spent, added, removed: c.removes }
    })
  }

  append(
    groupId: string,
    sender: string,
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
    sender: string,
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
    sender: string,
    { epoch, kind, data, clientId }: AppendItem,
    now: number,
  ): { entry: StoredEntry; duplicate: boolean } {
    // A retry of an accepted post (its answer lost): the original answers, whatever changed since.
    const first = clientId && this.s.byClientId.get(groupId, sender, clientId)
    if (first) {
      const entry: StoredEntry = {
        groupId,
        seq: first.seq,
        epoch: first.epoch,
        kind: first.kind,
        sender,
        data: first.data,
        receivedAt: first.received_at,
      }
      return { entry, duplicate: true }
    }
    const g = this.postable(groupId, sender)
    // An older epoch is allowed (a message sent just before a Commit landed); a future one cannot exist.
    if (epoch > g.epoch) {
      throw new AppError("epoch_conflict", `the group is at epoch ${g.epoch}, not ${epoch}`, {
        currentEpoch: g.epoch,
      })
    }
    const seq = g.last_seq + 1
    this.s.insertEntry.run(groupId, seq, epoch, kind, sender, data, now, clientId ?? null)
    this.s.advance.run(g.epoch, seq, groupId)
    return { entry: { groupId, seq, epoch, kind, sender, data, receivedAt: now }, duplicate: false }
  }

  // Synchronous from the first statement to the last: no transaction can commit between reading how far retention
  // deleted and reading the entries, so the gap reported is exactly the one before these entries.
  async readLog(groupId: string, username: string, after: number, limit: number): Promise<LogPage> {
    const m = this.s.reader.get(groupId, username)
    if (!m) return { entries: [] }
    const from = Math.max(after, m.joined_seq)
    const upper = m.removed_seq ?? Number.MAX_SAFE_INTEGER
    const entries = this.s.entries.all(groupId, from, upper, limit).map((r): StoredEntry => ({
      groupId,
      seq: r.seq,
      epoch: r.epoch,
      kind: r.kind,
      sender: r.sender,
      data: r.data,
      receivedAt: r.received_at,
    }))
    // Deleted entries this user may read and has not had: (from, min(pruned, upper)].
    const prunedThrough = Math.min(m.pruned_seq, upper)
    return prunedThrough > from ? { entries, prunedThrough } : { entries }
  }

  async pendingWelcomes(username: string, after: number): Promise<Set<string>> {
    return new Set(this.s.welcomes.all(username, after).map((r) => r.group_id))
  }

  // Items and report read in one synchronous run: an item is either among the items or counted in the report.
  async readInbox(username: string, after: number, limit: number): Promise<InboxPage> {
    const items = this.s.inbox
      .all(username, after, limit)
      .map((r) => ({ id: r.id, item: r.item, createdAt: r.created_at }))
    const expired = this.s.expired.get(username)
    return expired ? { items, expired } : { items }
  }

  ack(username: string, upTo: number): Promise<number> {
    return this.writes.run(() => {
      const deleted = this.s.ack.run(username, upTo).changes
      this.s.clearExpired.run(username, upTo)
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
      // Every inbox item is unacknowledged (an ack deletes it): each one deleted here is counted for its user.
      const expired = this.s.oldInboxByUser.all(cutoff)
      for (const e of expired) this.s.addExpired.run(e.username, e.count, e.through)
      const inboxItems = this.s.oldInbox.run(cutoff).changes
      return { logEntries, inboxItems, expiredUsers: expired.map((e) => e.username) }
    })
  }
}
