import { notifications, type NotificationName } from "../../../rpc-schema/daemon/index.js"
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

const all = Object.keys(notifications) as NotificationName[]

export const eventHandlers = ({
  daemon,
}: HandlerContext): Pick<Handlers, "events.subscribe" | "events.unsubscribe"> => ({
  "events.subscribe": (p, conn) => {
    const names = p.events ?? all
    const replay = p.after === undefined ? [] : daemon.events.since(p.after, names)
    conn.subscribe(names, replay)
    return { events: names, lastEventId: daemon.events.store.lastId(), replayed: replay.length }
  },
  "events.unsubscribe": (_p, conn) => {
    conn.unsubscribe()
    return { subscribed: false as const }
  },
})
