/** Named sync positions with the server (the stream's resume point), kept across restarts. */
import type { Db } from "./database.js"

export class CursorStore {
  constructor(private readonly db: Db) {}

  get(name: string): string | undefined {
    return this.db.prepare<[string], { value: string }>("SELECT value FROM cursors WHERE name = ?").get(name)?.value
  }

  set(name: string, value: string, at: number): void {
    this.db
      .prepare(
        `INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      )
      .run(name, value, at)
  }

  delete(name: string): void {
    this.db.prepare("DELETE FROM cursors WHERE name = ?").run(name)
  }
}
