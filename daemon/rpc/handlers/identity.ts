import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const identityHandlers = ({ daemon }: HandlerContext): Pick<Handlers, "identity.get" | "identity.register"> => ({
  "identity.get": () => daemon.identity(),
  "identity.register": (p) => daemon.register(p.username, p.server),
})
