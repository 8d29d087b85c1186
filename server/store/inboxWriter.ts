/**
 * Writes per-device inbox items, inside the transaction of the change they report: a Welcome with
 * its Commit, a removal with the Commit that removes, a key event with the reserve or spend.
 */
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import type { Db } from "./database.js"
import type { StoredInboxItem } from "./types.js"

export class InboxWriter {
  private readonly insert

  constructor(db: Db) {
    this.insert = db.prepare("INSERT INTO inbox (device, kind, group_id, item, created_at) VALUES (?, ?, ?, ?, ?)")
  }

  /** Adds `item` to the inbox of device `device`; call inside a transaction. */
  add(device: string, item: InboxItem, now: number): StoredInboxItem {
    const json = JSON.stringify(item)
    const groupId = "groupId" in item ? item.groupId : null
    const id = Number(this.insert.run(device, item.kind, groupId, json, now).lastInsertRowid)
    return { id, item: json, createdAt: now }
  }
}
