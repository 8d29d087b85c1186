/** Durable notification log: each notification gets an increasing id; old ones are pruned. */
import type { Db } from "./database.js"

export interface StoredEvent {
  id: number
  name: string
  params: Record<string, unknown>
}

/** How many events are kept for replay. */
const keep = 1000

export class EventStore {
  constructor(private readonly db: Db) {}

  /** Records an event and returns its id. */
  append(name: string, params: Record<string, unknown>, at: number): number {
    const { lastInsertRowid } = this.db
      .prepare("INSERT INTO events (at, name, params) VALUES (?, ?, ?)")
      .run(at, name, JSON.stringify(params))
    const id = Number(lastInsertRowid)
    if (id % 100 === 0) this.db.prepare("DELETE FROM events WHERE id <= ?").run(id - keep)
    return id
  }

  lastId(): number {
    return this.db.prepare<[], { id: number | null }>("SELECT max(id) AS id FROM events").get()?.id ?? 0
  }

  /** Events after `id` in order, only those named in `names` if given. */
  since(id: number, names?: readonly string[]): StoredEvent[] {
    return this.db
      .prepare<[number], { id: number; name: string; params: string }>(
        "SELECT id, name, params FROM events WHERE id > ? ORDER BY id",
      )
      .all(id)
      .filter((e) => names === undefined || names.includes(e.name))
      .map((e) => ({ id: e.id, name: e.name, params: JSON.parse(e.params) as Record<string, unknown> }))
  }
}
