import { normalizeName } from "../../../rpc-schema/common.js"
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const identityHandlers = ({
  daemon,
}: HandlerContext): Pick<
  Handlers,
  | "identity.get"
  | "identity.register"
  | "identity.link"
  | "identity.linkCode"
  | "identity.devices"
  | "identity.removeDevice"
> => ({
  "identity.get": () => daemon.identity(),
  // The schema allowed only letters normaliseName folds; the result is always a valid Username.
  "identity.register": (p) => daemon.register(normalizeName(p.username)!, p.server),
  "identity.link": (p) => daemon.link(p.code, p.server),
  "identity.linkCode": () => daemon.linkCode(),
  "identity.devices": () => daemon.devices(),
  "identity.removeDevice": (p) => daemon.removeDevice(p.deviceId),
})
