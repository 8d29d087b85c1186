import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const groupHandlers = ({
  daemon,
}: HandlerContext): Pick<
  Handlers,
  "group.create" | "group.list" | "group.members" | "group.invite" | "group.remove" | "group.leave" | "group.selfUpdate"
> => ({
  "group.create": (p) => daemon.groups().create(p.name),
  "group.list": () => ({ groups: daemon.identity().registered ? daemon.groups().list() : [] }),
  "group.members": (p) => daemon.groups().members(p.group),
  "group.invite": (p) => daemon.groups().invite(p.group, p.user),
  "group.remove": (p) => daemon.groups().remove(p.group, p.user),
  "group.leave": (p) => daemon.groups().leave(p.group),
  "group.selfUpdate": (p) => daemon.groups().selfUpdate(p.group),
})
