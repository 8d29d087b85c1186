import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const settingsHandlers = ({ daemon }: HandlerContext): Pick<Handlers, "settings.get" | "settings.set"> => ({
  "settings.get": () => ({ invites: daemon.settings.invites() }),
  "settings.set": (p) => {
    if (p.invites !== undefined) daemon.settings.setInvites(p.invites, daemon.opts.clock.now())
    return { invites: daemon.settings.invites() }
  },
})
