/** Profile settings persisted in the store, by name (today only `invites`). */
import type { InvitesMode } from "../../rpc-schema/daemon/settings.js"
import type { Db } from "./database.js"

export class SettingsStore {
  constructor(private readonly db: Db) {}

  /** `auto` (join every Welcome at once, the default) or `ask` (keep it as a pending invitation). */
  invites(): InvitesMode {
    const r = this.db.prepare<[], { value: string }>("SELECT value FROM settings WHERE name = 'invites'").get()
    return r?.value === "ask" ? "ask" : "auto"
  }

  setInvites(mode: InvitesMode, at: number): void {
    this.db
      .prepare(
        `INSERT INTO settings (name, value, updated_at) VALUES ('invites', ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      )
      .run(mode, at)
  }
}
