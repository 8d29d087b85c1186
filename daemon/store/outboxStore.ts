/**
 * The outbox: encrypted messages the server has not acknowledged yet, in the order they were encrypted. A row is
 * written in the same transaction as the group state that encrypted it, and removed in the same transaction that
 * stores the message in the history with the server's seq.
 */
import type { Db } from "./database.js"

export interface OutboxEntry {
  id: number
  groupId: string
  /** 16 random bytes: the server's idempotency id for this post. */
  clientId: Uint8Array
  message: Uint8Array
  text: string
  createdAt: number
}

interface OutboxRow {
  id: number
  group_id: string
  client_id: Buffer
  message: Buffer
  text: string
  created_at: number
}

const toEntry = (r: OutboxRow): OutboxEntry => ({
  id: r.id,
  groupId: r.group_id,
  clientId: new Uint8Array(r.client_id),
  message: new Uint8Array(r.message),
  text: r.text,
  createdAt: r.created_at,
})

export class OutboxStore {
  private readonly s

  constructor(db: Db) {
    this.s = {
      add: db.prepare(
        "INSERT INTO outbox (group_id, client_id, message, text, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
      ),
      next: db.prepare<[number, number], OutboxRow>("SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?"),
      remove: db.prepare("DELETE FROM outbox WHERE id = ?"),
      queued: db.prepare<[string], OutboxRow>("SELECT * FROM outbox WHERE group_id = ? ORDER BY id"),
      count: db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM outbox WHERE group_id = ?"),
    }
  }

  /** Inside the caller's transaction (with the new group state). */
  add(e: Omit<OutboxEntry, "id">): number {
    const rows = this.s.add.all(e.groupId, e.clientId, e.message, e.text, e.createdAt) as { id: number }[]
    return rows[0]!.id
  }

  /** Entries after `afterId`, oldest first. */
  next(afterId: number, limit: number): OutboxEntry[] {
    return this.s.next.all(afterId, limit).map(toEntry)
  }

  remove(id: number): void {
    this.s.remove.run(id)
  }

  queued(groupId: string): OutboxEntry[] {
    return this.s.queued.all(groupId).map(toEntry)
  }

  count(groupId: string): number {
    return this.s.count.get(groupId)?.n ?? 0
  }
}
