import { groupMessages } from "../../groups/queries.js"
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const messageHandlers = ({ daemon }: HandlerContext): Pick<Handlers, "message.send" | "message.list"> => ({
  // Sends batch themselves onto the group queue (groups/send.ts).
  "message.send": (p) => daemon.groups().sends.send(p.group, p.text),
  "message.list": (p) => {
    const { ctx } = daemon.groups()
    return groupMessages(ctx.groups, ctx.outbox, p.group, p.before, p.limit ?? 50)
  },
})
