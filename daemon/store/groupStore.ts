/**
 * Groups and their history in SQLite: the serialized MLS state (daemon/mls/groupState.ts), the log cursor, and the
 * decrypted messages. Every change that comes from one log entry is written by the caller inside one transaction
 * (`Db.transaction`), so a crash never applies an entry twice nor loses one.
 */
import type { GroupStatus, GroupSummary } from "../../rpc-schema/daemon/group.js"
import type { StoredMessage } from "../../rpc-schema/daemon/message.js"
import type { SerializedState } from "../mls/groupState.js"
import type { Db } from "./database.js"

export interface StoredGroup {
  id: string
  name: string
  state: SerializedState
  epoch: number
  lastSeq: number
  status: GroupStatus
  joinedAt: number
  joinedBy: string | null
}

interface GroupRow {
  id: string
  name: string
  state: Buffer
  tree_hash: Buffer | null
  epoch: number
  last_seq: number
  status: "active" | "removed"
  out_of_sync: number
  joined_at: number
  joined_by: string | null
}

interface MessageRow {
  group_id: string
  seq: number
  sender: string
  sender_device: string | null
  text: string
  sent_at: number
  received_at: number
  own: number
}

interface TreeSource {
  /** The tree of `hash`, read only when the state is decoded and its tree is not at hand (groupState.ts). */
  treeBytes(groupId: string, hash: Uint8Array): Uint8Array
}

/** A state as stored; one from before migration 9 (no tree hash) holds its tree inside. */
function storedState(trees: TreeSource, groupId: string, core: Buffer, treeHash: Buffer | null): SerializedState {
  const hash = new Uint8Array(treeHash ?? [])
  return { core: new Uint8Array(core), treeHash: hash, tree: () => trees.treeBytes(groupId, hash) }
}

const toGroup = (trees: TreeSource, r: GroupRow): StoredGroup => ({
  id: r.id,
  name: r.name,
  state: storedState(trees, r.id, r.state, r.tree_hash),
  epoch: r.epoch,
  lastSeq: r.last_seq,
  status: r.status === "active" && r.out_of_sync === 1 ? "out_of_sync" : r.status,
  joinedAt: r.joined_at,
  joinedBy: r.joined_by,
})

const toMessage = (r: MessageRow): StoredMessage => ({
  groupId: r.group_id,
  seq: r.seq,
  sender: r.sender,
  senderDevice: r.sender_device,
  text: r.text,
  sentAt: r.sent_at,
  receivedAt: r.received_at,
  own: r.own === 1,
})

export class GroupStore implements TreeSource {
  constructor(readonly db: Db) {}

  get(id: string): StoredGroup | undefined {
    const r = this.db.prepare<[string], GroupRow>("SELECT * FROM groups WHERE id = ?").get(id)
    return r && toGroup(this, r)
  }

  byName(name: string): StoredGroup[] {
    return this.db
      .prepare<[string], GroupRow>("SELECT * FROM groups WHERE name = ? ORDER BY joined_at")
      .all(name)
      .map((r) => toGroup(this, r))
  }

  all(): StoredGroup[] {
    return this.db
      .prepare<[], GroupRow>("SELECT * FROM groups ORDER BY joined_at, id")
      .all()
      .map((r) => toGroup(this, r))
  }

  /** A new group, or a group this profile was removed from and joins again (its history stays). */
  insert(g: StoredGroup): void {
    this.withTree(g.id, g.state, () =>
      this.db
        .prepare(
          `INSERT INTO groups (id, name, state, tree_hash, epoch, last_seq, status, joined_at, joined_by)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state,
             tree_hash = excluded.tree_hash, epoch = excluded.epoch, last_seq = excluded.last_seq,
             status = excluded.status, joined_at = excluded.joined_at, joined_by = excluded.joined_by,
             pending_commit = NULL, pending_state = NULL, pending_tree_hash = NULL, out_of_sync = 0,
             sync_lost_after = NULL`,
        )
        .run(
          g.id,
          g.name,
          g.state.core,
          g.state.treeHash,
          g.epoch,
          g.lastSeq,
          g.status === "removed" ? "removed" : "active",
          g.joinedAt,
          g.joinedBy,
        ),
    )
  }

  /** A new MLS state (and epoch); the cursor moves only when `lastSeq` is given. */
  saveState(id: string, state: SerializedState, epoch: number, lastSeq?: number): void {
    this.withTree(id, state, () =>
      this.db
        .prepare(
          `UPDATE groups SET state = ?, tree_hash = ?, epoch = ?, last_seq = max(last_seq, coalesce(?, last_seq))
           WHERE id = ?`,
        )
        .run(state.core, state.treeHash, epoch, lastSeq ?? null, id),
    )
  }

  /** The Commit in flight and the state it leads to; null clears it. */
  setPending(id: string, pending: { commit: Uint8Array; state: SerializedState } | null): void {
    this.withTree(id, pending?.state, () =>
      this.db
        .prepare("UPDATE groups SET pending_commit = ?, pending_state = ?, pending_tree_hash = ? WHERE id = ?")
        .run(pending?.commit ?? null, pending?.state.core ?? null, pending?.state.treeHash ?? null, id),
    )
  }

  /**
   * Runs `write` (which names `state`'s tree by its hash) in one transaction with the tree: stored first unless a
   * tree of that hash is stored already (so once per epoch), and then the group's trees that neither its state nor
   * its Commit in flight names any more are dropped.
   */
  private withTree(id: string, state: SerializedState | undefined, write: () => void): void {
    this.db.transaction(() => {
      if (state !== undefined && !this.hasTree(id, state.treeHash))
        this.db
          .prepare("INSERT INTO group_trees (group_id, hash, tree) VALUES (?, ?, ?)")
          .run(id, state.treeHash, state.tree())
      write()
      this.db
        .prepare(
          `DELETE FROM group_trees WHERE group_id = ? AND hash NOT IN (
             SELECT tree_hash FROM groups WHERE id = ? AND tree_hash IS NOT NULL
             UNION ALL SELECT pending_tree_hash FROM groups WHERE id = ? AND pending_tree_hash IS NOT NULL)`,
        )
        .run(id, id, id)
    })()
  }

  private hasTree(id: string, hash: Uint8Array): boolean {
    return (
      this.db
        .prepare<[string, Uint8Array], { n: number }>("SELECT 1 AS n FROM group_trees WHERE group_id = ? AND hash = ?")
        .get(id, hash) !== undefined
    )
  }

  pending(id: string): { commit: Uint8Array; state: SerializedState } | undefined {
    const r = this.db
      .prepare<
        [string],
        { pending_commit: Buffer | null; pending_state: Buffer | null; pending_tree_hash: Buffer | null }
      >("SELECT pending_commit, pending_state, pending_tree_hash FROM groups WHERE id = ?")
      .get(id)
    if (!r?.pending_commit || !r.pending_state) return undefined
    return {
      commit: new Uint8Array(r.pending_commit),
      state: storedState(this, id, r.pending_state, r.pending_tree_hash),
    }
  }

  treeBytes(groupId: string, hash: Uint8Array): Uint8Array {
    const r = this.db
      .prepare<[string, Uint8Array], { tree: Buffer }>("SELECT tree FROM group_trees WHERE group_id = ? AND hash = ?")
      .get(groupId, hash)
    if (r === undefined) throw new Error(`group ${groupId}: the ratchet tree its state names is not stored`)
    return new Uint8Array(r.tree)
  }

  advance(id: string, lastSeq: number): void {
    this.db.prepare("UPDATE groups SET last_seq = max(last_seq, ?) WHERE id = ?").run(lastSeq, id)
  }

  /**
   * `out_of_sync` is a flag beside the stored status (migration 4); `active` clears it. Going out of sync records
   * `lostAfter`, the last log entry processed before (migration 8; kept from the first time until the group is
   * active again).
   */
  setStatus(id: string, status: Exclude<GroupStatus, "out_of_sync">): void
  setStatus(id: string, status: "out_of_sync", lostAfter: number): void
  setStatus(id: string, status: GroupStatus, lostAfter?: number): void {
    if (status === "out_of_sync")
      this.db
        .prepare("UPDATE groups SET out_of_sync = 1, sync_lost_after = coalesce(sync_lost_after, ?) WHERE id = ?")
        .run(lostAfter ?? null, id)
    else
      this.db
        .prepare("UPDATE groups SET status = ?, out_of_sync = 0, sync_lost_after = NULL WHERE id = ?")
        .run(status, id)
  }

  /** The last log entry processed before the group went out of sync (undefined when it is not, or not known). */
  syncLostAfter(id: string): number | undefined {
    const r = this.db
      .prepare<[string], { sync_lost_after: number | null }>("SELECT sync_lost_after FROM groups WHERE id = ?")
      .get(id)
    return r?.sync_lost_after ?? undefined
  }

  /** Stores a message once: the same (group, seq) again changes nothing. Answers whether it was new. */
  addMessage(m: StoredMessage): boolean {
    const { changes } = this.db
      .prepare(
        `INSERT OR IGNORE INTO messages (group_id, seq, sender, sender_device, text, sent_at, received_at, own)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(m.groupId, m.seq, m.sender, m.senderDevice, m.text, m.sentAt, m.receivedAt, m.own ? 1 : 0)
    return changes > 0
  }

  hasMessage(groupId: string, seq: number): boolean {
    return (
      this.db
        .prepare<[string, number], { n: number }>("SELECT 1 AS n FROM messages WHERE group_id = ? AND seq = ?")
        .get(groupId, seq) !== undefined
    )
  }

  /** The newest `limit` messages below `before`, oldest first, and whether older ones exist. */
  messages(groupId: string, before: number | undefined, limit: number): { messages: StoredMessage[]; more: boolean } {
    const rows = this.db
      .prepare<[string, number, number], MessageRow>(
        "SELECT * FROM messages WHERE group_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      )
      .all(groupId, before ?? Number.MAX_SAFE_INTEGER, limit + 1)
    const more = rows.length > limit
    return { messages: rows.slice(0, limit).reverse().map(toMessage), more }
  }
}

export type { GroupSummary }
