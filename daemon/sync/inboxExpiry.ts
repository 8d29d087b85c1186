/**
 * The server's report of inbox items retention deleted before this daemon acknowledged them (rpc-schema
 * server/http/inbox.ts `InboxExpired`). The report repeats on every connection until an acknowledgement reaches its
 * `through`; the daemon records `invites.expired` once per report, in the transaction that remembers the report, and
 * acknowledges only after that commit: a crash before it means the report comes again and is recorded then; a crash
 * after it means the same report comes again and is only acknowledged.
 */
import type { InboxExpired } from "../../rpc-schema/server/http/inbox.js"
import type { EventBus } from "../events.js"
import type { CursorStore } from "../store/cursorStore.js"
import type { Db } from "../store/database.js"

/** The last report recorded, as `count:through`. */
const lastReport = "inbox.expired"

/** Records the report unless it is the one recorded last; answers whether it was new. */
export function recordInboxExpiry(
  db: Db,
  cursors: CursorStore,
  events: EventBus,
  report: InboxExpired,
  now: number,
): boolean {
  const key = `${report.count}:${report.through}`
  return db.transaction(() => {
    if (cursors.get(lastReport) === key) return false
    cursors.set(lastReport, key, now)
    events.emit("invites.expired", { count: report.count, through: report.through })
    return true
  })()
}
