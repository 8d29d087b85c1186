/** A group's MLS state as a daemon stored it, read from its database file (read-only, closed at once). */
import Database from "better-sqlite3"
import { deserializeState, type ChatGroup } from "../../daemon/mls/groupState.js"
import { GroupStore } from "../../daemon/store/groupStore.js"

export function storedGroupState(dbPath: string, groupId: string): ChatGroup {
  const db = new Database(dbPath, { readonly: true })
  try {
    const group = new GroupStore(db).get(groupId)
    if (group === undefined) throw new Error(`no group ${groupId} in ${dbPath}`)
    return deserializeState(group.state)
  } finally {
    db.close()
  }
}
