import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const poolHandlers = ({
  daemon,
}: HandlerContext): Pick<Handlers, "pool.status" | "pool.list" | "pool.refresh" | "pool.usage"> => ({
  "pool.status": () => daemon.poolStatus(),
  "pool.list": (p) => ({ keys: daemon.poolStore().list(p.state, p.limit ?? 1000) }),
  "pool.refresh": () => daemon.poolRefresh(),
  "pool.usage": (p) => daemon.poolUsage(p.sinceMs),
})
