/** Every HTTP route and the WebSocket frames of the server, declared once for the server and its clients. */
import * as auth from "./http/auth.js"
import * as devices from "./http/devices.js"
import * as groups from "./http/groups.js"
import * as inbox from "./http/inbox.js"
import * as keys from "./http/keys.js"
import type { RouteDescriptor } from "./http/route.js"
import * as ws from "./ws.js"

export * from "./http/errors.js"
export * from "./http/route.js"
export { auth, devices, groups, inbox, keys, ws }

const isRoute = (v: unknown): v is RouteDescriptor =>
  typeof v === "object" && v !== null && "path" in v && "method" in v && "auth" in v

/** All route descriptors, for contract tests and documentation. */
export const routes: readonly RouteDescriptor[] = (
  [
    ...Object.values(auth),
    ...Object.values(devices),
    ...Object.values(keys),
    ...Object.values(groups),
    ...Object.values(inbox),
  ] as unknown[]
).filter(isRoute)
