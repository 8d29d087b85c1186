import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const daemonHandlers = ({ daemon }: HandlerContext): Pick<Handlers, "daemon.status" | "daemon.reconnect"> => ({
  "daemon.status": () => daemon.status(),
  "daemon.reconnect": () => daemon.reconnect(),
})
