import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const messageHandlers = ({ daemon }: HandlerContext): Pick<Handlers, "message.send" | "message.list"> => ({
  "message.send": (p) => daemon.groups().send(p.group, p.text),
  "message.list": (p) => daemon.groups().messages(p.group, p.before, p.limit ?? 50),
})
